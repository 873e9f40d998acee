//! Opening every partition of every topic at start, several at a time:
//! recovery runs in parallel, and a partition that cannot open stays
//! offline while the rest serve.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use crate::config::PartitionConfig;
use crate::error::{Error, IoContext, Result};
use crate::fs::FileSystem;
use crate::partition::Partition;

use super::OnOpenError;
use super::topic::{Slot, Topic, TopicConfig};

/// One partition to open: its directory, its name for logs, its settings.
pub(super) type Job = (PathBuf, String, PartitionConfig);

/// Threads that open or close partitions: the work is mostly waiting for
/// fsyncs and metadata updates, which overlap well beyond the core count.
pub(super) const IO_THREADS: usize = 16;

/// Runs `f` on every job on a few threads that take the next job as they
/// finish one (so one slow job does not hold up the others); the results
/// come back in the jobs' order.
pub(super) fn parallel<J: Sync, T: Send>(jobs: &[J], f: impl Fn(&J) -> T + Sync) -> Vec<T> {
    let threads = IO_THREADS.min(jobs.len()).max(1);
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut done: Vec<(usize, T)> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(job) = jobs.get(i) else {
                            return done;
                        };
                        done.push((i, f(job)));
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap_or_default())
            .collect()
    });
    done.sort_by_key(|(i, _)| *i);
    done.into_iter().map(|(_, t)| t).collect()
}

/// Opens partitions in parallel (see [`parallel`]).
pub(super) fn open_partitions(fs: &Arc<dyn FileSystem>, jobs: &[Job]) -> Vec<Result<Partition>> {
    parallel(jobs, |(dir, name, cfg)| {
        Partition::open_with(dir, name.clone(), cfg.clone(), Arc::clone(fs))
    })
}

pub(super) fn partition_jobs(dir: &Path, name: &str, config: &TopicConfig) -> Vec<Job> {
    (0..config.partitions)
        .map(|id| {
            (
                dir.join(id.to_string()),
                format!("{name}/{id}"),
                config.partition.clone(),
            )
        })
        .collect()
}

/// Builds a topic from its opened partitions, dropping partition directories
/// beyond the recorded count (an interrupted `add_partitions`).
pub(super) fn assemble_topic(
    dir: &Path,
    name: &str,
    config: TopicConfig,
    opened: Vec<Result<Partition>>,
    on_error: OnOpenError,
) -> Result<Topic> {
    let mut partitions = Vec::with_capacity(opened.len());
    for (id, result) in opened.into_iter().enumerate() {
        match (result, on_error) {
            (Ok(p), _) => partitions.push(Slot::Online(p)),
            (Err(e), OnOpenError::Fail) => return Err(e),
            (Err(e), OnOpenError::Offline) => {
                tracing::error!(partition = %format!("{name}/{id}"), error = %e, "partition is offline: it cannot be opened; every other partition serves");
                partitions.push(Slot::Offline(e.to_string().into()));
            }
        }
    }
    if partitions.len() as u32 != config.partitions {
        return Err(Error::InvalidConfig(format!(
            "topic {name:?}: a partition failed to open"
        )));
    }
    for entry in fs::read_dir(dir).at(dir)? {
        let path = entry.at(dir)?.path();
        let extra = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.parse::<u32>().ok());
        if extra.is_some_and(|id| id >= config.partitions) {
            fs::remove_dir_all(&path).at(&path)?;
        }
    }
    Ok(Topic {
        name: name.to_string(),
        dir: dir.to_path_buf(),
        config: RwLock::new(config),
        partitions: RwLock::new(partitions),
    })
}
