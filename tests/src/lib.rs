//! Harness for the end-to-end tests: builds the `brook` binary, starts it as
//! a real process on ephemeral ports with a temporary data directory, and
//! stops it (SIGTERM, or SIGKILL to simulate a crash). Every process started
//! here is killed when its handle is dropped.

pub mod group;
pub mod kafka;
pub mod otlp;
pub mod queue;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use brook_protocol::batch::{Batch, BatchBuilder, batches};
use brook_protocol::v1;
use tonic::transport::Channel;

/// How long any single wait in these tests may take before it fails.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// A `cargo` command without the variables cargo sets for a test process
/// (CARGO_MANIFEST_DIR=tests/ and the like): some build scripts (ring's)
/// track them, and inheriting them made every nested build recompile the
/// TLS stack and the broker whenever it alternated with a plain `cargo build`.
fn nested_cargo() -> Command {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    for (key, _) in std::env::vars_os() {
        let Some(key) = key.to_str() else { continue };
        if key.starts_with("CARGO_PKG_")
            || key.starts_with("CARGO_BIN_EXE_")
            || matches!(
                key,
                "CARGO_MANIFEST_DIR"
                    | "CARGO_MANIFEST_PATH"
                    | "CARGO_CRATE_NAME"
                    | "CARGO_PRIMARY_PACKAGE"
                    | "CARGO_TARGET_TMPDIR"
                    | "CARGO_MANIFEST_LINKS"
            )
        {
            cmd.env_remove(key);
        }
    }
    cmd
}

/// Path of the `brook` binary, built once per test process with the same
/// profile as the tests (so `cargo test` needs nothing built beforehand).
/// The workspace root (tests/ is one of its members).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// The Python of the virtual environment `scripts/kafka-clients.sh` makes,
/// with kafka-python, confluent-kafka and its schema-registry serializers
/// (or `BROOK_KAFKA_PYTHON`).
pub fn kafka_python() -> PathBuf {
    let p = std::env::var_os("BROOK_KAFKA_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target/kafka-venv/bin/python"));
    assert!(
        p.exists(),
        "{} is missing: run scripts/kafka-clients.sh (installs kcat, kafka-python and confluent-kafka)",
        p.display()
    );
    p
}

/// Runs the `brook` command line against `b` (`BROOK_URL` set to its gRPC
/// address) with `args`, feeding it `stdin`; its output when it exits.
pub fn brook_cli(b: &Broker, args: &[&str], stdin: Option<&str>) -> std::process::Output {
    use std::io::Write;
    let mut child = Command::new(brook_binary())
        .args(args)
        .env("BROOK_URL", format!("http://{}", b.grpc))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting brook");
    let mut input = child.stdin.take().expect("stdin is piped");
    if let Some(text) = stdin {
        input
            .write_all(text.as_bytes())
            .expect("writing brook's stdin");
    }
    drop(input);
    child.wait_with_output().expect("waiting for brook")
}

pub fn brook_binary() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        // target/<profile>/deps/<test-binary>
        let exe = std::env::current_exe().expect("test binary path");
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("target/<profile>")
            .to_path_buf();
        let target_dir = profile_dir.parent().expect("target dir").to_path_buf();
        let release = profile_dir.file_name().is_some_and(|n| n == "release");
        let mut cmd = nested_cargo();
        cmd.args([
            "build",
            "--quiet",
            "-p",
            "brook",
            "--bin",
            "brook",
            "--target-dir",
        ])
        .arg(&target_dir);
        if release {
            cmd.arg("--release");
        }
        let status = cmd
            .status()
            .expect("running cargo build for the brook binary");
        assert!(status.success(), "cargo build -p brook failed");
        profile_dir.join("brook")
    })
}

/// Path of an example of the client crate, built like [`brook_binary`].
pub fn client_example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>")
        .to_path_buf();
    let target_dir = profile_dir.parent().expect("target dir").to_path_buf();
    let mut cmd = nested_cargo();
    cmd.args([
        "build",
        "--quiet",
        "-p",
        "brook-client",
        "--example",
        name,
        "--target-dir",
    ])
    .arg(&target_dir);
    if profile_dir.file_name().is_some_and(|n| n == "release") {
        cmd.arg("--release");
    }
    assert!(
        cmd.status().expect("running cargo build").success(),
        "building example {name} failed"
    );
    profile_dir.join("examples").join(name)
}

/// `brook serve` over `data_dir` on the given addresses, with `extra`
/// flags, warnings logged, and stdout piped (for the listening line).
fn serve_command(data_dir: &Path, listen: &str, metrics: &str, extra: &[&str]) -> Command {
    serve_command_logging(data_dir, listen, metrics, extra, "warn")
}

/// [`serve_command`] logging at `level` (`RUST_LOG`).
fn serve_command_logging(
    data_dir: &Path,
    listen: &str,
    metrics: &str,
    extra: &[&str],
    level: &str,
) -> Command {
    let mut cmd = Command::new(brook_binary());
    cmd.arg("serve").arg("--data-dir").arg(data_dir).args([
        "--listen",
        listen,
        "--metrics-listen",
        metrics,
    ]);
    // The Kafka listener's default port would clash between tests.
    if !extra.contains(&"--kafka-listen") {
        cmd.args(["--kafka-listen", "127.0.0.1:0"]);
    }
    cmd.args(extra)
        .env("RUST_LOG", level)
        .stdout(Stdio::piped());
    cmd
}

/// A running `brook serve` process.
pub struct Broker {
    child: Child,
    data_dir: PathBuf,
    /// gRPC address.
    pub grpc: SocketAddr,
    /// Metrics address.
    pub metrics: SocketAddr,
    /// Kafka-protocol address (`None` when turned off or not known yet).
    pub kafka: Option<SocketAddr>,
}

impl Broker {
    /// Starts `brook serve` on ephemeral ports over `data_dir`, with extra flags.
    /// Returns once the ports are bound (the log may still be recovering).
    pub fn spawn(data_dir: &Path, extra: &[&str]) -> Broker {
        Broker::spawn_at(data_dir, "127.0.0.1:0", extra)
    }

    /// Like [`Broker::spawn`], with the gRPC address given.
    pub fn spawn_at(data_dir: &Path, listen: &str, extra: &[&str]) -> Broker {
        Broker::spawn_on(data_dir, listen, "127.0.0.1:0", extra)
    }

    /// Like [`Broker::spawn_at`], with the metrics address given too. A
    /// restart names every address it re-binds: a port left to the kernel
    /// (`:0`) is bound before the Kafka listener and could be handed the
    /// Kafka port the killed broker just freed.
    fn spawn_on(data_dir: &Path, listen: &str, metrics: &str, extra: &[&str]) -> Broker {
        let out = Stdio::inherit();
        Broker::spawn_with(data_dir, (listen, metrics), extra, out, None, "warn")
    }

    /// Like [`Broker::spawn`], with the process's file-descriptor limit
    /// (soft and hard) set to `nofile`, to run it out of descriptors.
    pub fn spawn_with_nofile(data_dir: &Path, extra: &[&str], nofile: u64) -> Broker {
        Broker::spawn_with(
            data_dir,
            ("127.0.0.1:0", "127.0.0.1:0"),
            extra,
            Stdio::inherit(),
            Some((libc::RLIMIT_NOFILE, nofile)),
            "warn",
        )
    }

    /// Like [`Broker::spawn`], with the process's address space limited to
    /// `bytes`: an allocation a request could make the broker attempt fails
    /// (aborts) here as it would on a host that does not overcommit memory.
    pub fn spawn_with_address_space(data_dir: &Path, extra: &[&str], bytes: u64) -> Broker {
        Broker::spawn_with(
            data_dir,
            ("127.0.0.1:0", "127.0.0.1:0"),
            extra,
            Stdio::inherit(),
            Some((libc::RLIMIT_AS, bytes)),
            "warn",
        )
    }

    /// Like [`Broker::spawn`], with the broker's log (stderr, level `info`:
    /// what it did, not only what went wrong) written to `log` for the test
    /// to read.
    pub fn spawn_logged(data_dir: &Path, extra: &[&str], log: &Path) -> Broker {
        let file = std::fs::File::create(log).expect("creating the log file");
        Broker::spawn_with(
            data_dir,
            ("127.0.0.1:0", "127.0.0.1:0"),
            extra,
            Stdio::from(file),
            None,
            "info",
        )
    }

    /// `listen` is the gRPC and the metrics address.
    fn spawn_with(
        data_dir: &Path,
        (listen, metrics): (&str, &str),
        extra: &[&str],
        stderr: Stdio,
        limit: Option<(libc::__rlimit_resource_t, u64)>,
        level: &str,
    ) -> Broker {
        let mut cmd = serve_command_logging(data_dir, listen, metrics, extra, level);
        if let Some((resource, n)) = limit {
            use std::os::unix::process::CommandExt;
            let lim = libc::rlimit {
                rlim_cur: n as libc::rlim_t,
                rlim_max: n as libc::rlim_t,
            };
            // SAFETY: setrlimit is async-signal-safe; it runs in the child
            // between fork and exec and touches only its own limits.
            unsafe {
                cmd.pre_exec(move || {
                    if libc::setrlimit(resource, &lim) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        let mut child = cmd.stderr(stderr).spawn().expect("spawning brook");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(line)) = lines.next() {
                let _ = tx.send(line);
            }
            // Keep draining so the broker never blocks on a full pipe.
            for _ in lines {}
        });
        let line = rx
            .recv_timeout(DEADLINE)
            .expect("brook printed its listening line");
        let addr = |key: &str| -> SocketAddr {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(key))
                .and_then(|a| a.parse().ok())
                .unwrap_or_else(|| panic!("no {key} in {line:?}"))
        };
        let kafka = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix("kafka="))
            .and_then(|a| a.parse().ok());
        Broker {
            grpc: addr("grpc="),
            metrics: addr("metrics="),
            kafka,
            child,
            data_dir: data_dir.to_path_buf(),
        }
    }

    /// Starts `brook serve` on ports picked beforehand and returns at once,
    /// while the log may still be recovering (the listening line is printed
    /// only once the broker serves, so it cannot be waited for here).
    pub fn spawn_recovering(data_dir: &Path, extra: &[&str]) -> Broker {
        let free = || {
            std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("a free port")
        };
        let (grpc, metrics) = (free(), free());
        let mut child = serve_command(data_dir, &grpc.to_string(), &metrics.to_string(), extra)
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawning brook");
        let stdout = child.stdout.take().expect("piped stdout");
        std::thread::spawn(move || for _ in BufReader::new(stdout).lines() {});
        Broker {
            child,
            data_dir: data_dir.to_path_buf(),
            grpc,
            metrics,
            kafka: None,
        }
    }

    /// Runs `brook serve` expecting it to refuse to start: returns its exit
    /// status, its stdout and its stderr once it exits (fails after [`DEADLINE`]).
    pub fn run_refused(data_dir: &Path, extra: &[&str]) -> (ExitStatus, String, String) {
        let mut child = serve_command(data_dir, "127.0.0.1:0", "127.0.0.1:0", extra)
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawning brook");
        let status = wait_for_exit(&mut child, "brook did not exit");
        let read = |r: Option<&mut dyn std::io::Read>| {
            let mut s = String::new();
            if let Some(r) = r {
                let _ = r.read_to_string(&mut s);
            }
            s
        };
        let out = read(child.stdout.as_mut().map(|r| r as &mut dyn std::io::Read));
        let err = read(child.stderr.as_mut().map(|r| r as &mut dyn std::io::Read));
        (status, out, err)
    }

    /// The broker's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Starts a broker and waits until gRPC health says SERVING.
    pub async fn start(data_dir: &Path, extra: &[&str]) -> Broker {
        let b = Broker::spawn(data_dir, extra);
        b.wait_serving().await;
        b
    }

    /// Polls gRPC health until SERVING.
    pub async fn wait_serving(&self) {
        use tonic_health::pb::{
            HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
        };
        let mut health = HealthClient::new(self.channel().await);
        eventually("the broker to become SERVING", async || {
            let status = health
                .check(HealthCheckRequest {
                    service: String::new(),
                })
                .await;
            status.is_ok_and(|s| s.into_inner().status == ServingStatus::Serving as i32)
        })
        .await;
    }

    /// A new connection to the broker.
    pub async fn channel(&self) -> Channel {
        // A broker just spawned may not have bound its port yet: retry.
        let endpoint = Channel::from_shared(format!("http://{}", self.grpc)).unwrap();
        let deadline = Instant::now() + DEADLINE;
        loop {
            match endpoint.connect().await {
                Ok(channel) => return channel,
                Err(e) => assert!(Instant::now() < deadline, "connecting to brook: {e}"),
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The broker's `/metrics` page (see [`http_get`]).
    pub async fn metrics_text(&self) -> String {
        http_get(self.metrics, "/metrics").await
    }

    /// Topic admin client.
    pub async fn topics(&self) -> v1::topics_client::TopicsClient<Channel> {
        v1::topics_client::TopicsClient::new(self.channel().await)
    }

    /// Producer client.
    pub async fn producer(&self) -> v1::producer_client::ProducerClient<Channel> {
        v1::producer_client::ProducerClient::new(self.channel().await)
    }

    /// Consumer client (responses up to 64 MiB).
    pub async fn consumer(&self) -> v1::consumer_client::ConsumerClient<Channel> {
        v1::consumer_client::ConsumerClient::new(self.channel().await)
            .max_decoding_message_size(64 << 20)
    }

    /// SIGTERM, then wait for the exit (graceful shutdown).
    pub fn terminate(mut self) -> ExitStatus {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        wait_for_exit(&mut self.child, "brook did not exit after SIGTERM")
    }

    /// Sends `signal` (e.g. `libc::SIGTERM`) and returns at once.
    pub fn signal(&self, signal: i32) {
        unsafe { libc::kill(self.child.id() as i32, signal) };
    }

    /// Waits for the process to exit (fails after [`DEADLINE`]).
    pub fn wait_exit(mut self) -> ExitStatus {
        wait_for_exit(&mut self.child, "brook did not exit")
    }

    /// SIGKILL, keeping the handle for [`Broker::restart`].
    pub fn kill9_in_place(&mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reaping brook");
    }

    /// Starts the broker again on the same data, gRPC and Kafka addresses,
    /// and waits until it serves.
    pub async fn restart(&mut self) {
        let (dir, listen) = (self.data_dir.clone(), self.grpc.to_string());
        let (metrics, kafka) = (self.metrics.to_string(), self.kafka.map(|a| a.to_string()));
        let extra: Vec<&str> = match &kafka {
            Some(k) => vec!["--kafka-listen", k],
            None => vec![],
        };
        *self = Broker::spawn_on(&dir, &listen, &metrics, &extra);
        self.wait_serving().await;
    }

    /// Starts the broker again on the same data and gRPC address, with its
    /// Kafka listener on a new port (for tests that do not need Kafka
    /// clients to find it again: re-binding a port another test may have
    /// taken meanwhile is one more way to fail), and waits until it serves.
    pub async fn restart_on_a_new_kafka_port(&mut self) {
        let (dir, listen) = (self.data_dir.clone(), self.grpc.to_string());
        *self = Broker::spawn_at(&dir, &listen, &[]);
        self.wait_serving().await;
    }

    /// The Kafka listener's `host:port` (the broker was started with it on).
    pub fn kafka_bootstrap(&self) -> String {
        self.kafka.expect("the Kafka listener is on").to_string()
    }

    /// SIGKILL: a crash, with no chance to flush or close.
    pub fn kill9(mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reaping brook");
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// `brook token create` for `principal` into the tokens file `file`; returns the token.
pub fn create_token(principal: &str, file: &Path) -> String {
    let out = Command::new(brook_binary())
        .args(["token", "create", principal, "--tokens-file"])
        .arg(file)
        .output()
        .expect("running brook token create");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("a token is text")
        .trim()
        .to_string()
}

/// Creates a topic with `partitions` partitions and the broker's defaults otherwise.
pub async fn create_topic(b: &Broker, name: &str, partitions: u32) -> v1::TopicDescription {
    let config = v1::TopicConfig {
        partitions,
        ..Default::default()
    };
    b.topics()
        .await
        .create_topic(v1::CreateTopicRequest {
            name: name.into(),
            config: Some(config),
        })
        .await
        .expect("create topic")
        .into_inner()
}

/// The topic's description (DescribeTopic), failing the test on an error.
pub async fn describe_topic(b: &Broker, name: &str) -> v1::TopicDescription {
    b.topics()
        .await
        .describe_topic(v1::DescribeTopicRequest { name: name.into() })
        .await
        .expect("describe topic")
        .into_inner()
}

/// A batch of `values` with keys `key`, in the batch format.
pub fn batch_of(key: Option<&[u8]>, values: &[&[u8]]) -> Batch {
    let mut b = BatchBuilder::new();
    for v in values {
        b.push(
            1_700_000_000_000,
            key,
            Some(v),
            &[("correlation-id", b"c-1")],
        );
    }
    Batch::parse(b.build(0)).expect("valid batch")
}

/// Every stored batch of a partition from the one holding `from` to the
/// current end, as the broker serves them (compressed ones too).
pub async fn fetch_batches(b: &Broker, topic: &str, partition: u32, from: u64) -> Vec<Batch> {
    let mut consumer = b.consumer().await;
    let mut out = Vec::new();
    let mut next = from;
    loop {
        let req = v1::FetchRequest {
            topic: topic.into(),
            partition,
            offset: next,
            ..Default::default()
        };
        let r = consumer.fetch(req).await.expect("fetch").into_inner();
        if r.batches.is_empty() {
            return out;
        }
        out.extend(batches(r.batches).map(|b| b.expect("valid batch")));
        next = r.next_offset;
    }
}

/// Every record of a partition from `from` to its current end, as (offset, key, value).
pub async fn fetch_all(
    b: &Broker,
    topic: &str,
    partition: u32,
    from: u64,
) -> Vec<(u64, Option<Vec<u8>>, Vec<u8>)> {
    let mut out = Vec::new();
    for batch in fetch_batches(b, topic, partition, from).await {
        for rec in batch.records() {
            let rec = rec.expect("valid record");
            if rec.offset >= from {
                out.push((
                    rec.offset,
                    rec.key.map(|k| k.to_vec()),
                    rec.value.map(|v| v.to_vec()).unwrap_or_default(),
                ));
            }
        }
    }
    out
}

/// The raw HTTP/1.1 response (status line, headers, body) to `GET path` on
/// `addr`; empty if the connection fails (a broker out of descriptors).
pub async fn http_get(addr: SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut out = String::new();
    if let Ok(mut s) = tokio::net::TcpStream::connect(addr).await {
        let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        if s.write_all(request.as_bytes()).await.is_ok() {
            let _ = s.read_to_string(&mut out).await;
        }
    }
    out
}

/// An HTTP/1.1 request to `addr` with `headers` (`Name: value` lines; the
/// `Host` is `addr` unless they name one) and `body`: the response's status
/// code and body (`(0, "")` if the connection fails).
pub async fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[&str],
    body: &str,
) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut s) = tokio::net::TcpStream::connect(addr).await else {
        return (0, String::new());
    };
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    // The address as the host unless the caller names one.
    if !headers
        .iter()
        .any(|h| h.to_ascii_lowercase().starts_with("host:"))
    {
        request.push_str(&format!("Host: {addr}\r\n"));
    }
    for h in headers {
        request.push_str(h);
        request.push_str("\r\n");
    }
    request.push_str("\r\n");
    request.push_str(body);
    let mut out = String::new();
    if s.write_all(request.as_bytes()).await.is_err() || s.read_to_string(&mut out).await.is_err() {
        return (0, String::new());
    }
    let status = out
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = out.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (status, body.to_string())
}

/// Waits for `child` to exit (polling, up to [`DEADLINE`]); kills it and
/// fails with `what` if it does not.
pub fn wait_for_exit(child: &mut Child, what: &str) -> ExitStatus {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(status) = child.try_wait().expect("waiting for brook") {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{what}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Polls `f` until it returns true or the deadline passes.
pub async fn eventually<F: AsyncFnMut() -> bool>(what: &str, f: F) {
    eventually_within(what, DEADLINE, f).await
}

/// [`eventually`] with a deadline of `within` (for waits on third-party
/// clients, which take longer than the broker alone).
pub async fn eventually_within<F: AsyncFnMut() -> bool>(what: &str, within: Duration, mut f: F) {
    let deadline = Instant::now() + within;
    while !f().await {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The `google.rpc.ErrorInfo` reason a status carries (docs/broker.md, "Errors").
pub fn reason(status: &tonic::Status) -> Option<String> {
    use tonic_types::StatusExt;
    status.get_details_error_info().map(|info| info.reason)
}

/// One entry of the `ErrorInfo` metadata a status carries.
pub fn error_metadata(status: &tonic::Status, key: &str) -> Option<String> {
    use tonic_types::StatusExt;
    status.get_details_error_info()?.metadata.get(key).cloned()
}
