use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use brook_protocol::v1;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};

use crate::auth::{Auth, Transport};

use crate::error::{Error, Result};

/// Whether `url`'s scheme is https (schemes are case-insensitive).
fn is_https(url: &str) -> bool {
    url.get(..8)
        .is_some_and(|s| s.eq_ignore_ascii_case("https://"))
}

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
    token: Option<crate::auth::Token>,
}

/// Settings shared by every handle made from one client.
#[derive(Debug)]
pub(crate) struct Options {
    pub retries: u32,
    pub backoff: Duration,
}

impl ClientBuilder {
    /// Settings for the broker at `url` (e.g. `http://127.0.0.1:9292`).
    ///
    /// ```no_run
    /// # async fn demo() -> brook_client::Result<()> {
    /// use brook_client::ClientBuilder;
    /// let client = ClientBuilder::new("http://127.0.0.1:9292").connect().await?;
    /// # Ok(()) }
    /// ```
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
            token: None,
        }
    }

    /// Presents `token` on every request (`authorization: Bearer <token>`),
    /// for a broker that authenticates callers.
    ///
    /// ```no_run
    /// # async fn demo() -> brook_client::Result<()> {
    /// let token = std::env::var("BROOK_TOKEN").expect("a token");
    /// let client = brook_client::Client::builder("https://brook.internal:9292")
    ///     .token(token)
    ///     .connect()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(crate::auth::Token(token.into()));
        self
    }

    /// Trusts the certificate authority in `pem` (instead of the system's
    /// roots) for the broker's certificate. Needs an `https://` URL; an
    /// `https://` URL without this trusts the system's roots.
    ///
    /// ```no_run
    /// # async fn demo() -> brook_client::Result<()> {
    /// let ca = std::fs::read("/etc/brook/ca.pem").expect("CA certificate");
    /// let client = brook_client::Client::builder("https://brook.internal:9292")
    ///     .tls_ca_pem(ca)
    ///     .connect()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn tls_ca_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.tls_ca_pem = Some(pem.into());
        self
    }

    /// The name the broker's certificate must carry (default: the URL's host).
    ///
    /// ```no_run
    /// # async fn demo() -> brook_client::Result<()> {
    /// // Connecting by IP address to a broker whose certificate names brook.internal.
    /// let client = brook_client::Client::builder("https://10.0.0.7:9292")
    ///     .tls_ca_pem(std::fs::read("ca.pem").expect("CA certificate"))
    ///     .tls_domain("brook.internal")
    ///     .connect()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn tls_domain(mut self, name: impl Into<String>) -> Self {
        self.tls_domain = Some(name.into());
        self
    }

    /// Presents this client certificate and key (PEM) for mutual TLS.
    ///
    /// ```no_run
    /// # async fn demo() -> brook_client::Result<()> {
    /// let client = brook_client::Client::builder("https://brook.internal:9292")
    ///     .tls_ca_pem(std::fs::read("ca.pem").expect("CA certificate"))
    ///     .tls_identity(
    ///         std::fs::read("billing.pem").expect("client certificate"),
    ///         std::fs::read("billing-key.pem").expect("client key"),
    ///     )
    ///     .connect()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn tls_identity(
        mut self,
        cert_pem: impl Into<Vec<u8>>,
        key_pem: impl Into<Vec<u8>>,
    ) -> Self {
        self.tls_identity = Some((cert_pem.into(), key_pem.into()));
        self
    }

    fn tls_config(&self) -> Option<ClientTlsConfig> {
        let https = is_https(&self.url);
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
    ///
    /// ```no_run
    /// # async fn demo() -> brook_client::Result<()> {
    /// use std::time::Duration;
    /// // Fail fast at startup (with Error::Connect) when the broker is not up.
    /// let client = brook_client::Client::builder("http://127.0.0.1:9292")
    ///     .connect_timeout(Duration::from_secs(2))
    ///     .connect()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn connect_timeout(mut self, d: Duration) -> Self {
        self.connect_timeout = d;
        self
    }

    /// Deadline of every request, long-polling fetches included: set it above
    /// the consumer's `fetch_max_wait`, or idle fetches fail with DEADLINE_EXCEEDED.
    ///
    /// ```no_run
    /// # async fn demo() -> brook_client::Result<()> {
    /// use std::time::Duration;
    /// // Consumers long-poll for `fetch_max_wait` (500 ms by default): well below 30 s.
    /// let client = brook_client::Client::builder("http://127.0.0.1:9292")
    ///     .request_timeout(Duration::from_secs(30))
    ///     .connect()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn request_timeout(mut self, d: Duration) -> Self {
        self.request_timeout = Some(d);
        self
    }

    /// How often a call that got UNAVAILABLE (broker starting or stopping)
    /// is retried, with exponential backoff starting at `backoff`.
    ///
    /// ```no_run
    /// # async fn demo() -> brook_client::Result<()> {
    /// use std::time::Duration;
    /// // Ride out a broker restart: 8 retries, waiting 0.2 s, 0.4 s, 0.8 s, ... (5 s at most).
    /// let client = brook_client::Client::builder("http://127.0.0.1:9292")
    ///     .retries(8, Duration::from_millis(200))
    ///     .connect()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn retries(mut self, retries: u32, backoff: Duration) -> Self {
        self.retries = retries;
        self.backoff = backoff;
        self
    }

    /// Opens the HTTP/2 connection that every clone of the client shares.
    ///
    /// ```no_run
    /// # async fn demo() -> brook_client::Result<()> {
    /// use brook_client::{Client, Error};
    /// let client = match Client::builder("http://127.0.0.1:9292").connect().await {
    ///     Ok(client) => client, // clone it into every task that needs the broker
    ///     Err(Error::Connect { url, reason }) => panic!("no broker at {url}: {reason}"),
    ///     Err(e) => return Err(e),
    /// };
    /// # Ok(()) }
    /// ```
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
        if tls_settings && !is_https(&self.url) {
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
        let auth = Auth::bearer(self.token.as_ref().map(|t| t.0.as_str()), &self.url)?;
        let channel = endpoint.connect().await.map_err(|e| err(&e))?;
        // Group coordination (joins, heartbeats, commits) gets a connection
        // of its own, opened at its first use, as Kafka's consumer keeps one
        // to its coordinator: on the data connection a commit's answer
        // queues behind megabytes of fetched batches (1 MiB frames), which
        // made each commit of a consumer reading at full speed wait ~0.5 ms.
        let control = endpoint.connect_lazy();
        Ok(Client {
            channel: Transport::new(channel, auth.clone()),
            control: Transport::new(control, auth),
            options: Arc::new(Options {
                retries: self.retries,
                backoff: self.backoff,
            }),
        })
    }
}

/// A connection to a Brook broker. Cheap to clone: clones share one HTTP/2
/// connection, on which every producer, consumer and admin call multiplexes
/// (and a second one for group coordination, opened when a group is first used).
///
/// ```no_run
/// # async fn demo() -> brook_client::Result<()> {
/// let client = brook_client::Client::connect("http://127.0.0.1:9292").await?;
/// client.admin().create_topic("orders", 3).await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Client {
    pub(crate) channel: Transport,
    /// Group coordination only (see `ClientBuilder::connect`).
    pub(crate) control: Transport,
    pub(crate) options: Arc<Options>,
}

impl Client {
    /// Connects with default settings (see [`ClientBuilder`]).
    ///
    /// ```no_run
    /// # async fn demo() -> brook_client::Result<()> {
    /// let client = brook_client::Client::connect("http://127.0.0.1:9292").await?;
    /// let for_billing = client.clone(); // same connection, no new handshake
    /// # Ok(()) }
    /// ```
    pub async fn connect(url: impl Into<String>) -> Result<Client> {
        ClientBuilder::new(url).connect().await
    }

    /// Settings first, then [`ClientBuilder::connect`].
    ///
    /// ```no_run
    /// # async fn demo() -> brook_client::Result<()> {
    /// use std::time::Duration;
    /// let client = brook_client::Client::builder("http://127.0.0.1:9292")
    ///     .connect_timeout(Duration::from_secs(3))
    ///     .connect()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn builder(url: impl Into<String>) -> ClientBuilder {
        ClientBuilder::new(url)
    }

    pub(crate) fn topics(&self) -> v1::topics_client::TopicsClient<Transport> {
        v1::topics_client::TopicsClient::new(self.channel.clone())
    }

    pub(crate) fn producer_rpc(&self) -> v1::producer_client::ProducerClient<Transport> {
        v1::producer_client::ProducerClient::new(self.channel.clone())
            .max_decoding_message_size(64 << 20)
    }

    pub(crate) fn consumer_rpc(&self) -> v1::consumer_client::ConsumerClient<Transport> {
        v1::consumer_client::ConsumerClient::new(self.channel.clone())
            .max_decoding_message_size(128 << 20)
    }

    pub(crate) fn groups(&self) -> v1::groups_client::GroupsClient<Transport> {
        v1::groups_client::GroupsClient::new(self.control.clone())
    }

    pub(crate) fn cluster(&self) -> v1::cluster_client::ClusterClient<Transport> {
        v1::cluster_client::ClusterClient::new(self.channel.clone())
    }

    pub(crate) fn acls(&self) -> v1::acls_client::AclsClient<Transport> {
        v1::acls_client::AclsClient::new(self.channel.clone())
    }

    pub(crate) fn schemas(&self) -> v1::schemas_client::SchemasClient<Transport> {
        v1::schemas_client::SchemasClient::new(self.channel.clone())
    }

    pub(crate) fn rules(&self) -> v1::rules_client::RulesClient<Transport> {
        v1::rules_client::RulesClient::new(self.channel.clone())
    }

    pub(crate) fn health(&self) -> tonic_health::pb::health_client::HealthClient<Transport> {
        tonic_health::pb::health_client::HealthClient::new(self.channel.clone())
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
    ///
    /// ```no_run
    /// # async fn demo(client: brook_client::Client) -> brook_client::Result<()> {
    /// let lag = client.consumer_lag("billing").await?;
    /// for t in &lag.topics {
    ///     println!("billing: {} records ({} ms) behind on {}", t.lag_records, t.lag_ms, t.topic);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn consumer_lag(&self, group: &str) -> Result<v1::ConsumerLag> {
        self.admin().consumer_lag(group, None).await
    }
}
