//! A stop has a deadline: a request that never ends cannot hold the broker
//! past `--shutdown-timeout-ms`, and a second signal stops waiting at once.
//! Either way the log closes cleanly and keeps what was acknowledged.

use std::path::Path;

use brook_protocol::v1;
use brook_tests::{Broker, DEADLINE, batch_of, create_topic, fetch_all};

/// Has one record acknowledged, then starts a request whose body never
/// completes (the gRPC message prefix promises 100 bytes; none follow): an
/// in-flight request that never ends, as from a stalled client. Returns
/// what keeps it open.
async fn stuck_request(b: &Broker) -> Stalled {
    let mut producer = b.producer().await;
    let ack = producer
        .produce(v1::ProduceRequest {
            topic: "t".into(),
            partition: 0,
            batch: batch_of(Some(b"k"), &[b"acked"]).into_bytes(),
            acks: 0,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ack.base_offset, 0);
    let tcp = tokio::net::TcpStream::connect(b.grpc).await.unwrap();
    let (client, mut connection) = h2::client::handshake(tcp).await.unwrap();
    let mut ping_pong = connection.ping_pong().unwrap();
    let connection = tokio::spawn(connection);
    let mut client = client.ready().await.unwrap();
    let req = http::Request::post(format!("http://{}/brook.v1.Producer/Produce", b.grpc))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())
        .unwrap();
    let (response, mut body) = client.send_request(req, false).unwrap();
    body.send_data(bytes::Bytes::from_static(&[0, 0, 0, 0, 100]), false)
        .unwrap();
    // Frames are read in order: once the ping comes back, the broker has the
    // request, and a stop that begins now must wait for it.
    ping_pong.ping(h2::Ping::opaque()).await.unwrap();
    Stalled {
        _client: client,
        _body: body,
        _response: response,
        _connection: connection,
    }
}

/// A stalled request's HTTP/2 handles: dropping them ends the connection.
struct Stalled {
    _client: h2::client::SendRequest<bytes::Bytes>,
    _body: h2::SendStream<bytes::Bytes>,
    _response: h2::client::ResponseFuture,
    _connection: tokio::task::JoinHandle<Result<(), h2::Error>>,
}

fn clean_markers(dir: &Path) -> bool {
    dir.join("t/0/.clean-shutdown").exists()
}

async fn stopped_cleanly_with_the_acked_record(dir: &Path, log: &str) {
    assert!(clean_markers(dir), "closed cleanly; log:\n{log}");
    let broker = Broker::start(dir, &[]).await;
    let records = fetch_all(&broker, "t", 0, 0).await;
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].2, b"acked");
    broker.terminate();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_that_never_ends_cannot_hold_a_stop_past_the_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("broker.log");
    let data = dir.path().join("data");
    let broker = Broker::spawn_logged(&data, &["--shutdown-timeout-ms", "1000"], &log);
    broker.wait_serving().await;
    create_topic(&broker, "t", 1).await;
    let _open = stuck_request(&broker).await;
    broker.signal(libc::SIGTERM);
    // Without the deadline this waits for the stream forever (and fails at DEADLINE).
    let status = broker.wait_exit();
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(status.success(), "{status}; log:\n{text}");
    assert!(text.contains("shutdown timeout"), "{text}");
    stopped_cleanly_with_the_acked_record(&data, &text).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_signal_stops_waiting_for_requests_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("broker.log");
    let data = dir.path().join("data");
    // A timeout far past the test's deadline: only the second signal can end the wait.
    let timeout = (DEADLINE.as_millis() * 10).to_string();
    let broker = Broker::spawn_logged(&data, &["--shutdown-timeout-ms", &timeout], &log);
    broker.wait_serving().await;
    create_topic(&broker, "t", 1).await;
    let _open = stuck_request(&broker).await;
    broker.signal(libc::SIGINT);
    // Once stopping, the broker accepts no new connection: then it waits on the stream.
    let grpc = broker.grpc;
    brook_tests::eventually("the broker to stop accepting", async || {
        tokio::net::TcpStream::connect(grpc).await.is_err()
    })
    .await;
    broker.signal(libc::SIGTERM);
    let status = broker.wait_exit();
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(status.success(), "{status}; log:\n{text}");
    assert!(text.contains("a second stop signal came"), "{text}");
    stopped_cleanly_with_the_acked_record(&data, &text).await;
}
