//! Processing a queue concurrently: a handler per message, up to N at once,
//! each message answered by the handler's result.

use std::future::Future;
use std::time::Duration;

use tokio::task::JoinSet;

use super::{QueueConsumer, QueueMessage};
use crate::error::Result;

/// Why a handler did not process a message.
#[derive(Debug, Clone, PartialEq)]
pub enum Failure {
    /// Try again: after the group's backoff, or after `after`.
    Retry {
        /// Why, kept in the dead-letter headers if it comes to that.
        reason: String,
        /// Instead of the group's backoff.
        after: Option<Duration>,
    },
    /// Poison: to the dead-letter topic now.
    Reject {
        /// Why, kept in the dead-letter headers.
        reason: String,
    },
}

impl Failure {
    /// A failure to retry after the group's backoff.
    pub fn retry(reason: impl std::fmt::Display) -> Failure {
        Failure::Retry {
            reason: reason.to_string(),
            after: None,
        }
    }

    /// A poison message.
    pub fn reject(reason: impl std::fmt::Display) -> Failure {
        Failure::Reject {
            reason: reason.to_string(),
        }
    }
}

/// Any error retries: `?` in a handler nacks the message.
impl<E: std::error::Error> From<E> for Failure {
    fn from(e: E) -> Failure {
        Failure::retry(e)
    }
}

impl QueueConsumer {
    /// Processes messages with `handler`, up to `concurrency` at once, until
    /// `stop` completes (then waits for the handlers running, answers them,
    /// and hands back what was fetched and not started) or a fetch fails.
    /// `Ok` acks the message, [`Failure::Retry`] nacks it, [`Failure::Reject`]
    /// rejects it; a handler that panics has its message handed back.
    ///
    /// ```no_run
    /// # async fn demo(client: brook_client::Client) -> brook_client::Result<()> {
    /// use brook_client::{Failure, QueueConsumerConfig};
    /// let config = QueueConsumerConfig { topic: Some("orders".into()), ..Default::default() };
    /// let billing = client.queue_consumer("billing", config);
    /// billing
    ///     .run(16, |msg| async move {
    ///         let order: &[u8] = msg.value.as_deref().ok_or_else(|| Failure::reject("no value"))?;
    ///         if order.is_empty() {
    ///             return Err(Failure::reject("empty order"));
    ///         }
    ///         // charge(order).await?;  // an error here nacks: retried after the backoff
    ///         Ok(())
    ///     }, std::future::pending::<()>())
    ///     .await
    /// # }
    /// ```
    pub async fn run<H, Fut, S>(mut self, concurrency: usize, handler: H, stop: S) -> Result<()>
    where
        H: Fn(std::sync::Arc<QueueMessage>) -> Fut,
        Fut: Future<Output = std::result::Result<(), Failure>> + Send + 'static,
        S: Future,
    {
        let concurrency = concurrency.max(1);
        let mut running: JoinSet<(
            std::sync::Arc<QueueMessage>,
            std::result::Result<(), Failure>,
        )> = JoinSet::new();
        tokio::pin!(stop);
        let mut failed = None;
        loop {
            while running.len() >= concurrency {
                if let Some(done) = running.join_next().await {
                    answer(done);
                }
            }
            tokio::select! {
                _ = &mut stop => break,
                Some(done) = running.join_next(), if !running.is_empty() => answer(done),
                next = self.recv() => match next {
                    Ok(msg) => {
                        let msg = std::sync::Arc::new(msg);
                        let work = handler(std::sync::Arc::clone(&msg));
                        running.spawn(async move { (msg, work.await) });
                    }
                    Err(e) => {
                        failed = Some(e);
                        break;
                    }
                },
            }
        }
        while let Some(done) = running.join_next().await {
            answer(done);
        }
        let closed = self.close().await;
        match failed {
            Some(e) => Err(e),
            None => closed,
        }
    }
}

/// Answers a finished handler's message; a panicked one's message is
/// dropped with the task, which hands it back.
fn answer(
    done: std::result::Result<
        (
            std::sync::Arc<QueueMessage>,
            std::result::Result<(), Failure>,
        ),
        tokio::task::JoinError,
    >,
) {
    let Ok((msg, result)) = done else { return };
    // The handler's future is finished, so this is the last reference
    // unless the handler kept a clone; then the message goes back when
    // that is dropped.
    let Ok(msg) = std::sync::Arc::try_unwrap(msg) else {
        return;
    };
    match result {
        Ok(()) => msg.ack(),
        Err(Failure::Retry {
            reason,
            after: None,
        }) => msg.nack(reason),
        Err(Failure::Retry {
            reason,
            after: Some(d),
        }) => msg.nack_after(d, reason),
        Err(Failure::Reject { reason }) => msg.reject(reason),
    }
}
