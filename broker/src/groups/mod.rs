//! Consumer groups: membership and assignment (`coordinator`, `assign`),
//! durable committed offsets (`offsets`), lag (`lag`), and the
//! `brook.v1.Groups` service (`service`).

pub mod assign;
pub mod classic;
mod commits;
pub mod consumer_protocol;
pub mod coordinator;
pub mod lag;
pub mod offsets;
pub mod service;

pub(crate) use commits::io_error as commits_io_error;

/// Everything the groups feature keeps, shared by the service and metrics.
pub struct Groups {
    /// Committed offsets, on disk.
    pub offsets: offsets::OffsetStore,
    /// Membership, in memory.
    pub coordinator: coordinator::Coordinator,
    /// Kafka clients' groups (the classic protocol), in memory.
    pub classic: classic::Classic,
    /// Record timestamps for time lag.
    pub timestamps: lag::TimestampCache,
}

impl Groups {
    /// Loads the committed offsets from `dir`; `flush` says when commits
    /// reach the disk unless they ask to be durable.
    pub fn open(
        dir: impl Into<std::path::PathBuf>,
        flush: brook_storage::FlushPolicy,
    ) -> anyhow::Result<Groups> {
        Ok(Groups {
            offsets: offsets::OffsetStore::open(dir, flush)?,
            coordinator: coordinator::Coordinator::default(),
            classic: classic::Classic::default(),
            timestamps: lag::TimestampCache::default(),
        })
    }

    /// Every group known: with members or with committed offsets.
    pub fn names(&self) -> Vec<String> {
        let mut names: std::collections::BTreeSet<String> =
            self.offsets.groups().into_iter().collect();
        names.extend(self.coordinator.groups());
        names.extend(self.classic.groups());
        names.into_iter().collect()
    }

    /// Active members of `group`, of either protocol.
    pub fn member_count(&self, group: &str) -> usize {
        self.coordinator.member_count(group) + self.classic.member_count(group)
    }
}
