//! Talking to the Kafka listener as Kafka clients do: the Python clients
//! of tests/kafka/clients.py (kafka-python, confluent-kafka), and raw
//! requests encoded with the `kafka-protocol` crate for what no client
//! library sends.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};

use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use serde_json::Value;

/// A `tests/kafka/clients.py` subcommand against `bootstrap`, its JSON
/// lines on stdout.
pub fn clients(bootstrap: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(crate::kafka_python());
    cmd.arg(crate::workspace_root().join("tests/kafka/clients.py"))
        .arg(bootstrap)
        .args(args)
        .stdout(Stdio::piped());
    cmd
}

/// Runs a client to completion and returns its JSON lines.
pub fn run_json(mut cmd: Command) -> Vec<Value> {
    let out = cmd
        .stderr(Stdio::inherit())
        .output()
        .expect("running a Kafka client");
    assert!(
        out.status.success(),
        "the Kafka client failed: {:?}",
        out.status
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l:?}: {e}")))
        .collect()
}

/// One request on a raw connection, its answer decoded as a client would.
pub fn call<Q, A>(s: &mut TcpStream, key: i16, version: i16, correlation: i32, request: &Q) -> A
where
    Q: Encodable,
    A: Decodable,
{
    let api = ApiKey::try_from(key).unwrap();
    let header = RequestHeader::default()
        .with_request_api_key(key)
        .with_request_api_version(version)
        .with_correlation_id(correlation)
        .with_client_id(Some(StrBytes::from_static_str("raw")));
    let mut body = bytes::BytesMut::new();
    header
        .encode(&mut body, api.request_header_version(version))
        .unwrap();
    request.encode(&mut body, version).unwrap();
    s.write_all(&(body.len() as i32).to_be_bytes()).unwrap();
    s.write_all(&body).unwrap();
    let mut len = [0u8; 4];
    s.read_exact(&mut len)
        .unwrap_or_else(|e| panic!("no answer to {api:?} v{version}: {e}"));
    let mut answer = vec![0u8; i32::from_be_bytes(len) as usize];
    s.read_exact(&mut answer).unwrap();
    let mut answer = bytes::Bytes::from(answer);
    let header = ResponseHeader::decode(&mut answer, api.response_header_version(version)).unwrap();
    assert_eq!(header.correlation_id, correlation, "{api:?} v{version}");
    let decoded = A::decode(&mut answer, version)
        .unwrap_or_else(|e| panic!("{api:?} v{version} answer: {e}"));
    assert!(
        answer.is_empty(),
        "{api:?} v{version}: bytes after the answer"
    );
    decoded
}
