use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use brook_protocol::v1;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use crate::error::{Error, Result};

/// Connection settings. [`ClientBuilder::connect`] makes the [`Client`].
///
/// ```no_run
/// # async fn demo() -> brook_client::Result<()> {
/// use std::time::Duration;
/// let client = brook_client::Client::builder("https://brook.internal:9292")
///     .tls_ca_pem(std::fs::read("ca.pem").expect("CA file"))
///     .connect_timeout(Duration::from_secs(3))
///     .request_timeout(Duration::from_secs(40))
///     .retries(3, Duration::from_millis(200))
///     .connect()
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct ClientBuilder {
    url: String,
    connect_timeout: Duration,
    request_timeout: Option<Duration>,
    retries: u32,
    backoff: Duration,
    tls_ca_pem: Option<Vec<u8>>,
    tls_domain: Option<String>,
    tls_identity: Option<(Vec<u8>, Vec<u8>)>,
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
            tls_ca_pem: None,
            tls_domain: None,
            tls_identity: None,
        }
    }

    /// Trusts the certificate authority in `pem` (instead of the system's
    /// roots) for the broker's certificate. Needs an `https://` URL; an
    /// `https://` URL without this trusts the system's roots.
    pub fn tls_ca_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.tls_ca_pem = Some(pem.into());
        self
    }

    /// The name the broker's certificate must carry (default: the URL's host).
    pub fn tls_domain(mut self, name: impl Into<String>) -> Self {
        self.tls_domain = Some(name.into());
        self
    }

    /// Presents this client certificate and key (PEM) for mutual TLS.
    pub fn tls_identity(
        mut self,
        cert_pem: impl Into<Vec<u8>>,
        key_pem: impl Into<Vec<u8>>,
    ) -> Self {
        self.tls_identity = Some((cert_pem.into(), key_pem.into()));
        self
    }

    fn tls_config(&self) -> Option<ClientTlsConfig> {
        let https = self.url.starts_with("https://");
        if !https {
            return None;
        }
        let mut tls = ClientTlsConfig::new();
        tls = match &self.tls_ca_pem {
            Some(pem) => tls.ca_certificate(Certificate::from_pem(pem)),
            None => tls.with_native_roots(),
        };
        if let Some(name) = &self.tls_domain {
            tls = tls.domain_name(name.clone());
        }
        if let Some((cert, key)) = &self.tls_identity {
            tls = tls.identity(Identity::from_pem(cert, key));
        }
        Some(tls)
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
        // tonic's transport errors say only "transport error" at the top:
        // the reason (refused, bad certificate, ...) is in the source chain.
        let err = |e: &dyn std::error::Error| {
            let mut reason = e.to_string();
            let mut source = e.source();
            while let Some(s) = source {
                let text = s.to_string();
                if !reason.contains(&text) {
                    reason.push_str(&format!(": {text}"));
                }
                source = s.source();
            }
            Error::Connect {
                url: self.url.clone(),
                reason,
            }
        };
        let tls_settings =
            self.tls_ca_pem.is_some() || self.tls_domain.is_some() || self.tls_identity.is_some();
        if tls_settings && !self.url.starts_with("https://") {
            return Err(Error::Connect {
                url: self.url.clone(),
                reason: "TLS settings were given, so the URL must start with https://".into(),
            });
        }
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
        if let Some(tls) = self.tls_config() {
            endpoint = endpoint.tls_config(tls).map_err(|e| err(&e))?;
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
