//! SIGINT and SIGTERM, counted: the first asks for a graceful stop, the
//! second for an immediate one (`brook serve`), or for a summary and exit
//! (`brook consume`).

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;

/// How many stop signals (SIGINT or SIGTERM) the process has received.
#[derive(Debug, Clone)]
pub struct Signals {
    count: watch::Receiver<u32>,
}

impl Signals {
    /// Starts counting SIGINT and SIGTERM on the current tokio runtime (from
    /// here on they no longer end the process by themselves).
    pub fn listen() -> Signals {
        let (tx, rx) = watch::channel(0u32);
        tokio::spawn(async move {
            let mut term = match signal(SignalKind::terminate()) {
                Ok(s) => Some(s),
                Err(e) => {
                    tracing::error!(error = %e, "cannot listen for SIGTERM; only SIGINT stops brook");
                    None
                }
            };
            loop {
                let name = tokio::select! {
                    r = tokio::signal::ctrl_c() => match r {
                        Ok(()) => "SIGINT",
                        Err(e) => {
                            tracing::error!(error = %e, "cannot listen for SIGINT");
                            return;
                        }
                    },
                    Some(()) = async {
                        match term.as_mut() {
                            Some(t) => t.recv().await,
                            None => std::future::pending().await,
                        }
                    } => "SIGTERM",
                };
                tx.send_modify(|n| *n += 1);
                tracing::debug!(signal = name, count = *tx.borrow(), "stop signal received");
            }
        });
        Signals { count: rx }
    }

    /// The signals received so far.
    pub fn count(&self) -> u32 {
        *self.count.borrow()
    }

    /// Waits until at least `n` signals have arrived (forever if the
    /// counting ended first).
    pub async fn wait_for(&mut self, n: u32) {
        if self.count.wait_for(|c| *c >= n).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}
