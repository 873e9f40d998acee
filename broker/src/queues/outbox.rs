//! Records the broker writes itself (dead letters, redriven records),
//! batched per topic partition and appended the way a producer's batch is:
//! counted in the produce metrics, and durable as the topic's flush policy
//! says before the call returns.

use std::collections::BTreeMap;

use brook_protocol::batch::{Batch, BatchBuilder};

use crate::error::{ApiError, ApiResult};
use crate::produce::{append_now, make_durable};
use crate::state::Broker;

/// Bytes of a batch before another is started: well under any topic's
/// `max_batch_bytes`.
const BATCH_BYTES: usize = 256 << 10;

/// Records to append, by topic and partition.
#[derive(Default)]
pub(super) struct Outbox {
    open: BTreeMap<(String, u32), BatchBuilder>,
    full: Vec<((String, u32), BatchBuilder)>,
}

impl Outbox {
    /// Adds a record for `partition` of `topic`.
    pub(super) fn push(
        &mut self,
        topic: &str,
        partition: u32,
        timestamp: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[(&str, &[u8])],
    ) {
        let at = (topic.to_string(), partition);
        let b = self.open.entry(at.clone()).or_default();
        b.push(timestamp, key, value, headers);
        if b.size_bytes() >= BATCH_BYTES {
            self.full.push((at, std::mem::take(b)));
        }
    }

    /// Appends every batch, in the order they were filled.
    pub(super) async fn send(mut self, broker: &Broker) -> ApiResult<()> {
        self.full
            .extend(self.open.into_iter().filter(|(_, b)| !b.is_empty()));
        for ((topic, partition), b) in self.full {
            let p = broker.partition(&topic, partition)?;
            let batch = Batch::parse(b.build(0))
                .map_err(|e| ApiError::internal(format!("building a batch: {e}")))?;
            let info = append_now(broker, &topic, &p, &batch)?;
            make_durable(p, info, false).await?;
        }
        Ok(())
    }
}
