use std::collections::BTreeMap;
use std::time::Duration;

use thiserror::Error;
use tonic_types::StatusExt;

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
    /// before sending. Decide on `reason` (docs/broker.md, "Errors", lists
    /// them all), or on `code` for the broad class; the message is for people.
    #[error("broker error {code:?}: {message}")]
    Status {
        /// gRPC status code.
        code: tonic::Code,
        /// The broker's message, naming what was wrong.
        message: String,
        /// Why, exactly (`google.rpc.ErrorInfo.reason`: `TOPIC_NOT_FOUND`,
        /// `PRODUCER_FENCED`, ...); empty when the status carried none.
        reason: String,
        /// The `ErrorInfo` metadata: `topic`, `partition`, `group`, ...
        metadata: BTreeMap<String, String>,
        /// How long to wait before retrying, when the broker says
        /// retrying is right (`google.rpc.RetryInfo`).
        retry_after: Option<Duration>,
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
    /// The broker holds records `first_offset..end_offset` of a partition
    /// only as damaged bytes (they fail their checks on its disk): they
    /// cannot be delivered. The consumer's position stays at `first_offset`
    /// and this error repeats until the application decides: seek to
    /// `end_offset` to skip them (`Consumer::seek`), or stop and repair.
    #[error(
        "records {first_offset}..{end_offset} of {topic}/{partition} are damaged on the broker ({message}); seek to {end_offset} to skip them"
    )]
    Damaged {
        /// Topic.
        topic: String,
        /// Partition.
        partition: u32,
        /// First offset that cannot be read.
        first_offset: u64,
        /// First offset after the damage.
        end_offset: u64,
        /// The broker's message (file, bytes, what failed).
        message: String,
    },
    /// The record failed its topic's schema, and the topic is bound to
    /// dead-letter such records (docs/schemas.md, "Dead-lettering invalid
    /// records"): the broker stored it in the dead-letter topic instead,
    /// and the rest of its batch in the topic. Its offset in the topic is a
    /// gap.
    #[error("the record failed its topic's schema and went to {dead_letter_topic}: {reason}")]
    DeadLettered {
        /// Where it went.
        dead_letter_topic: String,
        /// Why, as the broker's SCHEMA_VALIDATION_FAILED would say.
        reason: String,
    },
    /// The producer or consumer was closed.
    #[error("closed")]
    Closed,
}

impl Error {
    /// The damaged range a DATA_LOSS status names (reason `DAMAGED_RANGE`,
    /// metadata `first_offset` and `end_offset`), if any.
    pub(crate) fn damaged(s: &tonic::Status, topic: &str, partition: u32) -> Option<Error> {
        if s.code() != tonic::Code::DataLoss {
            return None;
        }
        let info = s.get_details_error_info()?;
        if info.reason != DAMAGED_RANGE {
            return None;
        }
        let get = |k: &str| info.metadata.get(k)?.parse::<u64>().ok();
        Some(Error::Damaged {
            topic: topic.to_string(),
            partition,
            first_offset: get("first_offset")?,
            end_offset: get("end_offset")?,
            message: s.message().to_string(),
        })
    }
}

/// The reason of a damaged range.
const DAMAGED_RANGE: &str = "DAMAGED_RANGE";

impl From<tonic::Status> for Error {
    fn from(s: tonic::Status) -> Self {
        let details = s.get_error_details();
        let (reason, metadata) = match details.error_info() {
            Some(info) => (
                info.reason.clone(),
                info.metadata
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            ),
            None => (String::new(), BTreeMap::new()),
        };
        Error::Status {
            code: s.code(),
            message: s.message().to_string(),
            reason,
            metadata,
            retry_after: details.retry_info().and_then(|r| r.retry_delay),
        }
    }
}

impl Error {
    /// A status this client makes itself (no reason, no metadata).
    pub(crate) fn status(code: tonic::Code, message: impl Into<String>) -> Error {
        Error::Status {
            code,
            message: message.into(),
            reason: String::new(),
            metadata: BTreeMap::new(),
            retry_after: None,
        }
    }

    /// The broker's reason for the error (`google.rpc.ErrorInfo.reason`,
    /// listed in docs/broker.md, "Errors"), if it gave one.
    ///
    /// ```no_run
    /// # async fn demo(client: brook_client::Client) -> brook_client::Result<()> {
    /// match client.admin().describe_topic("orders").await {
    ///     Err(e) if e.reason() == Some("TOPIC_NOT_FOUND") => println!("no orders topic yet"),
    ///     other => println!("{} partitions", other?.partitions.len()),
    /// }
    /// # Ok(()) }
    /// ```
    pub fn reason(&self) -> Option<&str> {
        match self {
            Error::Status { reason, .. } if !reason.is_empty() => Some(reason),
            Error::Damaged { .. } => Some(DAMAGED_RANGE),
            _ => None,
        }
    }

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
            Error::Damaged { .. } => Some(tonic::Code::DataLoss),
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
