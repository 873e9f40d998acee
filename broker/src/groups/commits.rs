//! Changing committed offsets: a member's commit and an operator's reset,
//! each checked against the log (no offset past the high watermark or
//! before the log start) and stored under the offsets lock. Apart from `service.rs`, which answers the RPCs.

use std::sync::Arc;

use brook_protocol::v1;
use brook_storage::now_ms;

use super::Groups;
use super::offsets::{CommitError, Committed};
use super::service::{Entry, GroupsService, MAX_METADATA, check_group_name};
use crate::error::{ApiError, ApiResult, Reason};

impl GroupsService {
    pub(super) fn commit_inner(&self, req: v1::CommitRequest) -> ApiResult<Vec<Entry>> {
        check_group_name(&req.group)?;
        let (log, groups) = self.state()?;
        if req.member_id.is_empty() && groups.classic.member_count(&req.group) > 0 {
            return Err(ApiError::new(
                Reason::UnknownMember,
                format!(
                    "group {:?} has Kafka-protocol members: a commit from no member would overwrite their offsets",
                    req.group
                ),
            )
            .with("group", &req.group));
        }
        groups
            .coordinator
            .check_commit(&req.group, &req.member_id, req.generation)?;
        let now = now_ms();
        let mut entries = Vec::with_capacity(req.offsets.len());
        for o in req.offsets {
            let p = log.topic(&o.topic).and_then(|t| t.partition(o.partition))?;
            let end = p.log_end_offset();
            if o.offset > end {
                return Err(ApiError::new(
                    Reason::OffsetOutOfRange,
                    format!(
                        "commit of offset {} for {}/{} is past the log end {end}",
                        o.offset, o.topic, o.partition
                    ),
                )
                .with("topic", &o.topic)
                .with("partition", o.partition)
                .with("log_start_offset", p.log_start_offset())
                .with("log_end_offset", end));
            }
            if o.metadata.len() > MAX_METADATA {
                return Err(ApiError::invalid(format!(
                    "commit metadata is {} bytes; at most {MAX_METADATA}",
                    o.metadata.len()
                )));
            }
            entries.push((
                (o.topic, o.partition),
                Committed {
                    offset: o.offset,
                    metadata: o.metadata,
                    timestamp_ms: now,
                },
            ));
        }
        Ok(entries)
    }

    pub(super) fn reset_inner(
        &self,
        req: &v1::ResetOffsetsRequest,
    ) -> ApiResult<(Vec<v1::OffsetChange>, Vec<Entry>)> {
        use v1::reset_offsets_request::To;
        check_group_name(&req.group)?;
        let (log, groups) = self.state()?;
        // A dry run changes nothing: members may go on meanwhile.
        no_members(groups, &req.group, req.force || req.dry_run)?;
        let topic = log.topic(&req.topic)?;
        let ids: Vec<u32> = if req.partitions.is_empty() {
            (0..topic.partition_count()).collect()
        } else {
            req.partitions.clone()
        };
        let committed = groups.offsets.get(&req.group);
        let to = req.to.as_ref().ok_or_else(|| {
            ApiError::invalid(
                "say where to reset to: earliest, latest, offset, timestamp_ms or shift_by",
            )
        })?;
        let (mut changes, mut entries) = (Vec::new(), Vec::new());
        for id in ids {
            let p = topic.partition(id)?;
            let (start, end) = (p.log_start_offset(), p.high_watermark());
            let before = committed.get(&(req.topic.clone(), id)).map(|c| c.offset);
            let after = match to {
                To::Earliest(_) => start,
                To::Latest(_) => end,
                To::Offset(o) => (*o).clamp(start, end),
                To::TimestampMs(t) => p.offset_for_timestamp(*t)?.unwrap_or(end),
                To::ShiftBy(n) => before
                    .unwrap_or(start)
                    .saturating_add_signed(*n)
                    .clamp(start, end),
            };
            changes.push(v1::OffsetChange {
                topic: req.topic.clone(),
                partition: id,
                before,
                after,
            });
            let metadata = format!("reset by ResetOffsets at {}", now_ms());
            entries.push((
                (req.topic.clone(), id),
                Committed {
                    offset: after,
                    metadata,
                    timestamp_ms: now_ms(),
                },
            ));
        }
        Ok((changes, entries))
    }
}

pub(super) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
) -> ApiResult<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
        .map_err(io_error)
}

/// Stores offsets if `check` passes under the offsets lock; with `durable`
/// (or the flush policy `always`), returns once they are on disk.
pub(super) async fn store_checked(
    groups: Arc<Groups>,
    group: String,
    entries: Vec<Entry>,
    durable: bool,
    check: impl FnOnce(&Groups, &str) -> ApiResult<()>,
) -> ApiResult<()> {
    // An append is one small pwrite into the page cache: done here, on the
    // request's task. Only a sync needs a blocking thread.
    let at = groups
        .offsets
        .commit_checked(&group, entries, || check(&groups, &group))
        .map_err(|e| match e {
            CommitError::Rejected(refused) => refused,
            CommitError::Io(e) => io_error(e),
        })?;
    if groups.offsets.needs_sync(durable) {
        blocking(move || groups.offsets.sync(at)).await?;
    }
    Ok(())
}

/// Offsets may be reset only while the group has no members, unless forced.
pub(super) fn no_members(groups: &Groups, group: &str, force: bool) -> ApiResult<()> {
    match groups.member_count(group) {
        n if n > 0 && !force => Err(ApiError::new(
            Reason::GroupNotEmpty,
            format!(
                "group {group:?} has {}: stop them first, or force the reset (brook group reset-offsets --force; ResetOffsetsRequest.force)",
                members(n)
            ),
        )
        .with("group", group)),
        _ => Ok(()),
    }
}

/// "1 active member", "3 active members".
pub(super) fn members(n: usize) -> String {
    match n {
        1 => "1 active member".to_string(),
        n => format!("{n} active members"),
    }
}

/// A failed offsets write: RESOURCE_EXHAUSTED when the disk is full, INTERNAL otherwise.
pub fn io_error(e: anyhow::Error) -> ApiError {
    let full = e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.raw_os_error() == Some(28))
    });
    if full {
        ApiError::new(Reason::DiskFull, format!("disk full: {e:#}"))
    } else {
        ApiError::internal(format!("{e:#}"))
    }
}
