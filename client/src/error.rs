use thiserror::Error;

/// What a client call can fail with.
///
/// ```no_run
/// # async fn demo(client: brook_client::Client) -> brook_client::Result<()> {
/// use brook_client::Error;
/// match client.admin().describe_topic("orders").await {
///     Ok(orders) => println!("orders has {} partitions", orders.partitions.len()),
///     Err(Error::Status { code: tonic::Code::NotFound, .. }) => println!("no orders topic yet"),
///     Err(e) => return Err(e), // another status, or the broker is unreachable
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Error)]
pub enum Error {
    /// An error status, from the broker or from a check the client makes
    /// before sending (its code says what to do:
    /// NOT_FOUND, INVALID_ARGUMENT, OUT_OF_RANGE, ...).
    #[error("broker error {code:?}: {message}")]
    Status {
        /// gRPC status code.
        code: tonic::Code,
        /// The broker's message, naming what was wrong.
        message: String,
    },
    /// The broker could not be reached.
    #[error("cannot connect to {url}: {reason}")]
    Connect {
        /// The address tried.
        url: String,
        /// Why it failed.
        reason: String,
    },
    /// The broker sent something this client cannot read.
    #[error("malformed response: {0}")]
    Protocol(String),
    /// The producer or consumer was closed.
    #[error("closed")]
    Closed,
}

impl From<tonic::Status> for Error {
    fn from(s: tonic::Status) -> Self {
        Error::Status {
            code: s.code(),
            message: s.message().to_string(),
        }
    }
}

impl Error {
    /// The gRPC code, for errors the broker sent.
    ///
    /// ```no_run
    /// # async fn demo(client: brook_client::Client) -> brook_client::Result<()> {
    /// // At startup, a topic that already exists is fine; anything else is not.
    /// if let Err(e) = client.admin().create_topic("orders", 6).await
    ///     && e.code() != Some(tonic::Code::AlreadyExists)
    /// {
    ///     return Err(e);
    /// }
    /// # Ok(()) }
    /// ```
    pub fn code(&self) -> Option<tonic::Code> {
        match self {
            Error::Status { code, .. } => Some(*code),
            _ => None,
        }
    }
}

/// Result type of the client.
///
/// ```no_run
/// use brook_client::{Producer, Result};
///
/// /// Publishes an order's OrderPlaced event; returns the offset it got.
/// async fn place_order(producer: &Producer, order_id: &str) -> Result<u64> {
///     let stored = producer.send("orders", Some(order_id), "OrderPlaced").await?.await?;
///     Ok(stored.offset)
/// }
/// ```
pub type Result<T, E = Error> = std::result::Result<T, E>;
