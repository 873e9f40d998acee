//! Changing the settings of an open partition: retention, segment size and
//! age, and the flush policy apply from the next append, roll, retention
//! pass or flush, without a restart (Kafka's dynamic topic configs).

use std::sync::{Arc, Weak};

use super::{FlushPolicy, Partition, PartitionConfig, Shared, Watermark, lock};
use crate::error::Result;
use crate::flusher::{self, Flushable};

impl Partition {
    /// Replaces the partition's settings. Fails with
    /// [`crate::Error::InvalidConfig`] for a value out of range or a change to a
    /// setting fixed at creation (`max_batch_bytes`, `index_interval_bytes`,
    /// `append_mode`: the active segment was sized and indexed by them).
    ///
    /// A new flush policy applies to the appends after it: records acknowledged
    /// before keep the promise they were given. Leaving
    /// [`FlushPolicy::Always`] makes the records appended but not yet flushed
    /// visible at once, as they would have been under the new policy.
    pub fn set_config(&self, new: PartitionConfig) -> Result<()> {
        self.shared.set_config(new)
    }
}

impl Shared {
    fn set_config(self: &Arc<Self>, new: PartitionConfig) -> Result<()> {
        self.config().check_change(&new)?;
        {
            // Inside the appender: no append sees half of the change, and
            // the watermark moves while no append can publish an end.
            let app = lock(&self.appender);
            *self.config.write().unwrap_or_else(|e| e.into_inner()) = new.clone();
            let always = new.flush == FlushPolicy::Always;
            match self.watermark() {
                Watermark::LogEnd if always => self.set_watermark(Watermark::Durable),
                Watermark::Durable if !always => {
                    self.set_watermark(Watermark::LogEnd);
                    let end = app.active.next_offset();
                    self.high_watermark.send_modify(|hw| *hw = (*hw).max(end));
                }
                // A replicated partition's watermark follows its followers.
                _ => {}
            }
        }
        if let FlushPolicy::Interval(period) = new.flush {
            let mut armed = lock(&self.interval_timer);
            // A running timer reads the new period when it next fires.
            if !*armed {
                *armed = true;
                let weak: Weak<dyn Flushable> = Arc::downgrade(self) as Weak<dyn Flushable>;
                flusher::every(weak, period);
            }
        }
        Ok(())
    }
}
