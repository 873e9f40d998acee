//! Generates the gRPC types from `proto/brook/v1/*.proto` when the `grpc`
//! feature is on, with protox instead of a system `protoc`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    #[cfg(feature = "grpc")]
    {
        let files = [
            "brook/v1/common.proto",
            "brook/v1/topics.proto",
            "brook/v1/log.proto",
            "brook/v1/groups.proto",
            "brook/v1/cluster.proto",
            "brook/v1/acls.proto",
            "brook/v1/queues.proto",
            "brook/v1/schemas.proto",
            "brook/v1/rules.proto",
        ];
        println!("cargo:rerun-if-changed=proto");
        let fds = protox::compile(files, ["proto"])?;
        let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
        // Kept for gRPC server reflection.
        std::fs::write(
            out.join("brook_descriptor.bin"),
            prost::Message::encode_to_vec(&fds),
        )?;
        tonic_prost_build::configure().bytes(".").compile_fds(fds)?;
    }
    Ok(())
}
