//! One Kafka client connection. Requests are answered one at a time, in
//! the order they arrived, as Kafka's own broker does: a client may send
//! several before reading, and gets the answers back in that order.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::Decodable;
use tokio::io::{AsyncWriteExt, BufReader, BufWriter};
use tokio::net::TcpStream;
use tracing::Instrument;

use super::frame::{self, FrameError};
use super::{
    Advertised, admin, fetch, groups, list_offsets, metadata, produce, producer_id, refuse, sasl,
    versions,
};
use crate::auth::Caller;
use crate::state::Broker;

/// A connection with no request for this long is closed, as Kafka's
/// `connections.max.idle.ms` (clients reconnect when they need to).
const IDLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(600);
/// Largest request before authentication (Kafka's SASL limit).
const PRE_AUTH_MAX_FRAME: usize = 512 << 10;

/// What the connection does after a request.
pub(crate) enum Outcome {
    /// Send this response frame.
    Reply(Bytes),
    /// Send nothing (a produce with `acks=0`).
    Silent,
    /// Close the connection: the request cannot be answered.
    Close(String),
}

/// A connection's state: who it is, and what every handler needs.
pub(crate) struct Session {
    pub broker: Arc<Broker>,
    pub advertised: Arc<Advertised>,
    pub peer: SocketAddr,
    /// Who the client is (anonymous until authentication exists here).
    pub caller: Caller,
    /// The `client.id` of the request being answered (shares the frame's bytes).
    pub client_id: kafka_protocol::protocol::StrBytes,
    /// A SaslHandshake chose PLAIN; SaslAuthenticate may follow.
    pub sasl_started: bool,
    /// A v0 SaslHandshake chose PLAIN: the next frame is the bare PLAIN message.
    pub raw_sasl_next: bool,
}

impl Session {
    pub(crate) fn new(
        broker: Arc<Broker>,
        advertised: Arc<Advertised>,
        peer: SocketAddr,
    ) -> Session {
        Session {
            broker,
            advertised,
            peer,
            caller: Caller::default(),
            client_id: Default::default(),
            sasl_started: false,
            raw_sasl_next: false,
        }
    }

    /// Whether the broker requires authentication and this connection has not.
    fn needs_auth(&self) -> bool {
        self.caller.principal.is_none()
            && self.broker.auth.mode() == crate::auth::AuthMode::Required
    }

    /// Serves requests until the client leaves, sends a frame that cannot
    /// be answered, or the broker stops.
    pub(crate) async fn run(self, stream: TcpStream) {
        let metrics = self.broker.metrics.kafka.clone();
        metrics.open_connections.inc();
        self.serve(stream).await;
        metrics.open_connections.dec();
    }

    async fn serve(mut self, stream: TcpStream) {
        let (rd, wr) = stream.into_split();
        let mut rd = BufReader::with_capacity(64 << 10, rd);
        let mut wr = BufWriter::with_capacity(64 << 10, wr);
        let mut shutdown = self.broker.shutdown_signal();
        loop {
            // A request may carry a whole batch: the gRPC request limit
            // applies; before authentication, Kafka's 512 KiB.
            let max = match self.needs_auth() {
                true => PRE_AUTH_MAX_FRAME,
                false => self.broker.config.max_request_bytes,
            };
            let frame = tokio::select! {
                f = tokio::time::timeout(IDLE_TIMEOUT, frame::read_frame(&mut rd, max)) => f,
                _ = shutdown.wait_for(|s| *s) => return,
            };
            let Ok(frame) = frame else {
                tracing::debug!(peer = %self.peer, "closing an idle Kafka connection");
                return;
            };
            let frame = match frame {
                Ok(f) => f,
                Err(FrameError::Closed(_)) => return,
                Err(e) => {
                    tracing::warn!(peer = %self.peer, error = %e, "closing a Kafka connection");
                    self.broker.metrics.kafka.closed_connections.inc();
                    return;
                }
            };
            let started = std::time::Instant::now();
            let api = ApiKey::try_from(frame::peek_header(&frame).0).ok();
            let outcome = match self.raw_sasl_next {
                true => match sasl::authenticate_raw(&mut self, frame) {
                    Ok(()) => Outcome::Reply(Bytes::from_static(&[0, 0, 0, 0])),
                    Err(why) => Outcome::Close(why),
                },
                false => self.handle(frame).instrument(request_span(api)).await,
            };
            let kafka = &self.broker.metrics.kafka;
            match (&outcome, api) {
                (Outcome::Close(_), _) => {
                    kafka.closed_connections.inc();
                }
                (_, Some(api)) => {
                    let labels = crate::metrics::KafkaApiLabels {
                        api: versions::name(api),
                    };
                    kafka.requests.get_or_create(&labels).inc();
                    kafka
                        .latency
                        .get_or_create(&labels)
                        .observe(started.elapsed().as_secs_f64());
                }
                (_, None) => {}
            }
            match outcome {
                Outcome::Reply(bytes) => {
                    if wr.write_all(&bytes).await.is_err() || wr.flush().await.is_err() {
                        return;
                    }
                }
                Outcome::Silent => {}
                Outcome::Close(why) => {
                    tracing::warn!(peer = %self.peer, reason = %why, "closing a Kafka connection");
                    return;
                }
            }
        }
    }

    /// Decodes one request and answers it.
    async fn handle(&mut self, mut frame: Bytes) -> Outcome {
        let (key, version, correlation) = frame::peek_header(&frame);
        let Ok(api_key) = ApiKey::try_from(key) else {
            // No schema to answer an unknown API with: Kafka closes too.
            return Outcome::Close(format!("unknown API key {key}"));
        };
        let range = versions::supported(api_key);
        let in_range = range.is_some_and(|r| r.min <= version && version <= r.max);
        let header = RequestHeader::decode(&mut frame, api_key.request_header_version(version));
        if api_key == ApiKey::ApiVersions && !in_range {
            // KIP-511: a v0 answer naming the versions of ApiVersions itself,
            // whatever the rest of a request from a newer client looks like.
            let r = range.unwrap_or(kafka_protocol::protocol::VersionRange { min: 0, max: 0 });
            let body = ApiVersionsResponse::default()
                .with_error_code(ResponseError::UnsupportedVersion.code())
                .with_api_keys(vec![
                    ApiVersion::default()
                        .with_api_key(ApiKey::ApiVersions as i16)
                        .with_min_version(r.min)
                        .with_max_version(r.max),
                ]);
            return reply(correlation, api_key, 0, &body);
        }
        let header = match header {
            Ok(h) => h,
            Err(e) => return Outcome::Close(format!("bad {api_key:?} request header: {e}")),
        };
        let before_auth = matches!(
            api_key,
            ApiKey::ApiVersions | ApiKey::SaslHandshake | ApiKey::SaslAuthenticate
        );
        if !before_auth && self.needs_auth() {
            return Outcome::Close(format!(
                "{api_key:?} before authentication: this broker requires SASL PLAIN with a token"
            ));
        }
        if !self.broker.auth.still_valid(&self.caller) {
            // As gRPC checks at every call: a revoked token ends the session.
            return Outcome::Close("the connection's token was revoked".to_string());
        }
        let known = api_key.valid_versions();
        if version < known.min || version > known.max {
            // No schema to read the request or write its answer with.
            return Outcome::Close(format!(
                "{api_key:?} v{version} is outside the versions of Kafka's protocol this broker knows ({known})"
            ));
        }
        let request = match RequestKind::decode(api_key, &mut frame, version) {
            Ok(r) => r,
            Err(e) => {
                return Outcome::Close(format!("malformed {api_key:?} v{version} request: {e}"));
            }
        };
        self.client_id = header.client_id.unwrap_or_default();
        let c = correlation;
        if !in_range {
            return refuse(c, api_key, version, request);
        }
        match request {
            RequestKind::ApiVersions(_) => {
                let body = ApiVersionsResponse::default().with_api_keys(versions::api_versions());
                reply(c, api_key, version, &body)
            }
            RequestKind::Metadata(r) => reply(
                c,
                api_key,
                version,
                &metadata::handle(self, r, version).await,
            ),
            RequestKind::Produce(r) => match produce::handle(self, r, version).await {
                produce::Answer::Reply(body) => reply(c, api_key, version, &body),
                produce::Answer::Silent => Outcome::Silent,
                produce::Answer::Close(why) => Outcome::Close(why),
            },
            RequestKind::Fetch(r) => {
                reply(c, api_key, version, &fetch::handle(self, r, version).await)
            }
            RequestKind::ListOffsets(r) => {
                reply(c, api_key, version, &list_offsets::handle(self, r, version))
            }
            RequestKind::InitProducerId(r) => {
                reply(c, api_key, version, &producer_id::handle(self, r))
            }
            RequestKind::CreateTopics(r) => {
                reply(c, api_key, version, &admin::create_topics(self, r).await)
            }
            RequestKind::DeleteTopics(r) => {
                reply(c, api_key, version, &admin::delete_topics(self, r).await)
            }
            RequestKind::CreatePartitions(r) => reply(
                c,
                api_key,
                version,
                &admin::create_partitions(self, r).await,
            ),
            RequestKind::DescribeConfigs(r) => {
                reply(c, api_key, version, &admin::describe_configs(self, r))
            }
            RequestKind::FindCoordinator(r) => reply(
                c,
                api_key,
                version,
                &groups::find_coordinator(self, r, version),
            ),
            RequestKind::JoinGroup(r) => {
                let mut r = r;
                if r.group_instance_id.is_some() {
                    // Static membership (KIP-345) is not supported: members are dynamic.
                    r.group_instance_id = None;
                }
                reply(c, api_key, version, &groups::join(self, r, version).await)
            }
            RequestKind::SyncGroup(r) => {
                reply(c, api_key, version, &groups::sync(self, r, version).await)
            }
            RequestKind::Heartbeat(r) => reply(c, api_key, version, &groups::heartbeat(self, r)),
            RequestKind::LeaveGroup(r) => {
                reply(c, api_key, version, &groups::leave(self, r, version))
            }
            RequestKind::OffsetCommit(r) => {
                reply(c, api_key, version, &groups::offset_commit(self, r).await)
            }
            RequestKind::OffsetFetch(r) => {
                reply(c, api_key, version, &groups::offset_fetch(self, r, version))
            }
            RequestKind::ListGroups(r) => reply(c, api_key, version, &groups::list(self, r)),
            RequestKind::DescribeGroups(r) => {
                reply(c, api_key, version, &groups::describe(self, r))
            }
            RequestKind::DeleteGroups(r) => {
                reply(c, api_key, version, &groups::delete(self, r).await)
            }
            RequestKind::SaslHandshake(r) => {
                reply(c, api_key, version, &sasl::handshake(self, r, version))
            }
            RequestKind::SaslAuthenticate(r) => {
                reply(c, api_key, version, &sasl::authenticate(self, r))
            }
            other => refuse(c, api_key, version, other),
        }
    }
}

/// A Kafka request's span when spans are exported (`kafka Fetch`): the
/// protocol carries no trace context, so it starts a trace of its own;
/// a produce's records may continue theirs (`otel::spans::produce`).
fn request_span(api: Option<ApiKey>) -> tracing::Span {
    if !crate::otel::is_exporting() {
        return tracing::Span::none();
    }
    let api = api.map_or_else(|| "unknown".to_string(), |a| format!("{a:?}"));
    tracing::info_span!(
        "kafka",
        otel.name = format!("kafka {api}"),
        otel.kind = "server",
        rpc.system = "kafka",
        api,
    )
}

/// Answers a request this listener does not serve with
/// `UNSUPPORTED_VERSION` throughout (docs/kafka.md, "APIs and versions").
fn refuse(correlation: i32, api_key: ApiKey, version: i16, request: RequestKind) -> Outcome {
    tracing::debug!(api = ?api_key, version, "answering UNSUPPORTED_VERSION");
    let code = ResponseError::UnsupportedVersion.code();
    let Some(body) = refuse::answer(request, version, code) else {
        return Outcome::Close(format!("{api_key:?} has no error answer"));
    };
    match frame::encode_response_kind(correlation, api_key, version, &body) {
        Ok(bytes) => Outcome::Reply(bytes),
        Err(e) => Outcome::Close(format!(
            "encoding the {api_key:?} v{version} error answer failed: {e}"
        )),
    }
}

fn reply<T: kafka_protocol::protocol::Encodable>(
    correlation: i32,
    api_key: ApiKey,
    version: i16,
    body: &T,
) -> Outcome {
    match frame::encode_response(correlation, api_key, version, body) {
        Ok(bytes) => Outcome::Reply(bytes),
        // A field set that this version lacks: a bug here, not the client's.
        Err(e) => Outcome::Close(format!(
            "encoding the {api_key:?} v{version} response failed: {e}"
        )),
    }
}
