//! What a shared broker needs against its clients: a bound on open
//! connections, and dead peers noticed by HTTP/2 keepalive pings.

use brook_tests::{Broker, http_get};

/// The value of a sample line that starts with `name ` in the metrics.
async fn metric(b: &Broker, name: &str) -> f64 {
    let text = http_get(b.metrics, "/metrics").await;
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {text}"))
}

/// An HTTP/2 connection whose client side is driven (it answers pings).
async fn live_connection(b: &Broker) -> h2::client::SendRequest<bytes::Bytes> {
    let tcp = tokio::net::TcpStream::connect(b.grpc).await.unwrap();
    let (client, connection) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(connection);
    client.ready().await.unwrap()
}

/// Whether a new connection is served: a ListTopics call over it succeeds.
async fn served(b: &Broker) -> bool {
    let Ok(channel) = tonic::transport::Endpoint::from_shared(format!("http://{}", b.grpc))
        .unwrap()
        .connect()
        .await
    else {
        return false;
    };
    brook_protocol::v1::topics_client::TopicsClient::new(channel)
        .list_topics(brook_protocol::v1::ListTopicsRequest {})
        .await
        .is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_the_limit_are_closed_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), &["--max-connections", "2"]).await;
    // The start's own health-check connection closes on its own time.
    brook_tests::eventually("no connection left open", async || {
        metric(&broker, "brook_open_connections").await == 0.0
    })
    .await;
    let first = live_connection(&broker).await;
    let second = live_connection(&broker).await;
    // The client's handshake can finish before the broker's accept.
    brook_tests::eventually("both connections accepted", async || {
        metric(&broker, "brook_open_connections").await == 2.0
    })
    .await;
    assert!(!served(&broker).await, "a third is closed on arrival");
    assert!(metric(&broker, "brook_connections_refused_total").await >= 1.0);
    drop((first, second));
    brook_tests::eventually("a connection to be served again", async || {
        served(&broker).await
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_stops_answering_pings_is_disconnected() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(
        dir.path(),
        &[
            "--keepalive-interval-ms",
            "200",
            "--keepalive-timeout-ms",
            "200",
        ],
    )
    .await;
    // A live connection stays: its pings are answered.
    let live = live_connection(&broker).await;
    // A connection whose client side is never driven again: a dead peer.
    let tcp = tokio::net::TcpStream::connect(broker.grpc).await.unwrap();
    let (_client, _silent) = h2::client::handshake(tcp).await.unwrap();
    brook_tests::eventually("the broker to see both connections", async || {
        metric(&broker, "brook_open_connections").await == 2.0
    })
    .await;
    // The one left is the live one: it went through the same ping rounds
    // that found the silent one dead, and answered them.
    brook_tests::eventually("the dead peer to be disconnected", async || {
        metric(&broker, "brook_open_connections").await == 1.0
    })
    .await;
    assert!(
        live.clone().ready().await.is_ok(),
        "the live connection is still open"
    );
}
