//! Processing a queue concurrently: a handler per message, up to N at once,
//! each message answered by the handler's result.

use std::collections::HashMap;
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
    /// rejects it; a handler that panics has its message nacked.
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
        let mut running: JoinSet<std::result::Result<(), Failure>> = JoinSet::new();
        // Each running handler's message, by task: answered from here when
        // the handler ends, whether it returned or panicked.
        let mut messages: HashMap<tokio::task::Id, std::sync::Arc<QueueMessage>> = HashMap::new();
        tokio::pin!(stop);
        let mut failed = None;
        loop {
            while running.len() >= concurrency {
                if let Some(done) = running.join_next_with_id().await {
                    answer(done, &mut messages);
                }
            }
            tokio::select! {
                _ = &mut stop => break,
                Some(done) = running.join_next_with_id(), if !running.is_empty() => answer(done, &mut messages),
                next = self.recv() => match next {
                    Ok(msg) => {
                        let msg = std::sync::Arc::new(msg);
                        let work = handler(std::sync::Arc::clone(&msg));
                        let id = running.spawn(work).id();
                        messages.insert(id, msg);
                    }
                    Err(e) => {
                        failed = Some(e);
                        break;
                    }
                },
            }
        }
        while let Some(done) = running.join_next_with_id().await {
            answer(done, &mut messages);
        }
        let closed = self.close().await;
        match failed {
            Some(e) => Err(e),
            None => closed,
        }
    }
}

/// Answers a finished handler's message by its result. A handler that
/// panicked failed: its message is nacked, so that a message that always
/// makes its handler panic ends in the dead-letter topic.
fn answer(
    done: std::result::Result<
        (tokio::task::Id, std::result::Result<(), Failure>),
        tokio::task::JoinError,
    >,
    messages: &mut HashMap<tokio::task::Id, std::sync::Arc<QueueMessage>>,
) {
    let (id, result) = match done {
        Ok((id, result)) => (id, result),
        Err(e) => (e.id(), Err(Failure::retry("the handler panicked"))),
    };
    let Some(msg) = messages.remove(&id) else {
        return;
    };
    // The handler's future is gone, so this is the last reference unless
    // the handler kept a clone; then the message goes back (released) when
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
