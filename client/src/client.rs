use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use brook_protocol::v1;
use tonic::transport::{Channel, Endpoint};

use crate::error::{Error, Result};

/// Connection settings. [`ClientBuilder::connect`] makes the [`Client`].
#[derive(Debug, Clone)]
pub struct ClientBuilder {
    url: String,
    connect_timeout: Duration,
    request_timeout: Option<Duration>,
    retries: u32,
    backoff: Duration,
}

/// Settings shared by every handle made from one client.
#[derive(Debug)]
pub(crate) struct Options {
    pub retries: u32,
    pub backoff: Duration,
}

impl ClientBuilder {
    /// Settings for the broker at `url` (e.g. `http://127.0.0.1:9292`).
    pub fn new(url: impl Into<String>) -> Self {
        ClientBuilder {
            url: url.into(),
            connect_timeout: Duration::from_secs(10),
            request_timeout: None,
            retries: 5,
            backoff: Duration::from_millis(100),
        }
    }

    /// Longest wait for the connection.
    pub fn connect_timeout(mut self, d: Duration) -> Self {
        self.connect_timeout = d;
        self
    }

    /// Deadline of each unary request (long polls excluded from nothing: set it above their wait).
    pub fn request_timeout(mut self, d: Duration) -> Self {
        self.request_timeout = Some(d);
        self
    }

    /// How often a call that got UNAVAILABLE (broker starting or stopping)
    /// is retried, with exponential backoff starting at `backoff`.
    pub fn retries(mut self, retries: u32, backoff: Duration) -> Self {
        self.retries = retries;
        self.backoff = backoff;
        self
    }

    /// Opens the HTTP/2 connection that every clone of the client shares.
    pub async fn connect(self) -> Result<Client> {
        let err = |e: &dyn std::fmt::Display| Error::Connect {
            url: self.url.clone(),
            reason: e.to_string(),
        };
        let mut endpoint = Endpoint::from_shared(self.url.clone())
            .map_err(|e| err(&e))?
            .connect_timeout(self.connect_timeout)
            .tcp_nodelay(true)
            // A fetch answers with up to several MiB: with hyper's 2 MiB
            // stream window the broker would stall mid-response for a
            // window update; bigger frames cost fewer wakeups per MiB.
            .initial_stream_window_size(8 << 20)
            .initial_connection_window_size(32 << 20)
            .max_frame_size(1 << 20);
        if let Some(t) = self.request_timeout {
            endpoint = endpoint.timeout(t);
        }
        let channel = endpoint.connect().await.map_err(|e| err(&e))?;
        Ok(Client {
            channel,
            options: Arc::new(Options {
                retries: self.retries,
                backoff: self.backoff,
            }),
        })
    }
}

/// A connection to a Brook broker. Cheap to clone: clones share one HTTP/2
/// connection, on which every producer, consumer and admin call multiplexes.
///
/// ```no_run
/// # async fn demo() -> brook_client::Result<()> {
/// let client = brook_client::Client::connect("http://127.0.0.1:9292").await?;
/// client.admin().create_topic("orders", 3).await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Client {
    pub(crate) channel: Channel,
    pub(crate) options: Arc<Options>,
}

impl Client {
    /// Connects with default settings (see [`ClientBuilder`]).
    pub async fn connect(url: impl Into<String>) -> Result<Client> {
        ClientBuilder::new(url).connect().await
    }

    /// Settings first, then [`ClientBuilder::connect`].
    pub fn builder(url: impl Into<String>) -> ClientBuilder {
        ClientBuilder::new(url)
    }

    pub(crate) fn topics(&self) -> v1::topics_client::TopicsClient<Channel> {
        v1::topics_client::TopicsClient::new(self.channel.clone())
    }

    pub(crate) fn producer_rpc(&self) -> v1::producer_client::ProducerClient<Channel> {
        v1::producer_client::ProducerClient::new(self.channel.clone())
            .max_decoding_message_size(64 << 20)
    }

    pub(crate) fn consumer_rpc(&self) -> v1::consumer_client::ConsumerClient<Channel> {
        v1::consumer_client::ConsumerClient::new(self.channel.clone())
            .max_decoding_message_size(128 << 20)
    }

    pub(crate) fn groups(&self) -> v1::groups_client::GroupsClient<Channel> {
        v1::groups_client::GroupsClient::new(self.channel.clone())
    }

    /// Runs an idempotent call, retrying UNAVAILABLE with exponential backoff.
    pub(crate) async fn retry<T, F, Fut>(&self, mut call: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, tonic::Status>>,
    {
        let mut delay = self.options.backoff;
        for attempt in 0.. {
            match call().await {
                Err(s)
                    if s.code() == tonic::Code::Unavailable && attempt < self.options.retries =>
                {
                    tracing::debug!(
                        attempt,
                        message = s.message(),
                        "broker unavailable; retrying"
                    );
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
                other => return other.map_err(Error::from),
            }
        }
        unreachable!("the loop returns")
    }

    /// The lag of `group` on every topic it consumes (see [`crate::Admin`] for one topic).
    pub async fn consumer_lag(&self, group: &str) -> Result<v1::ConsumerLag> {
        self.admin().consumer_lag(group, None).await
    }
}
