//! Producer ids for idempotent producers, unique across restarts. The
//! producers' sequence state lives beside each partition's log, in storage
//! (`brook_storage::Partition::append` checks it).

use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Hands out producer ids, unique across restarts: blocks of ids are
/// reserved in `<data>/~producer-ids` (atomically replaced) before use.
pub struct ProducerIds {
    dir: PathBuf,
    state: Mutex<(i64, i64)>,
}

const ID_BLOCK: i64 = 1000;
const FILE: &str = "~producer-ids";

impl ProducerIds {
    /// Reads the reservation file under `data_dir`.
    pub fn open(data_dir: &Path) -> std::io::Result<ProducerIds> {
        let path = data_dir.join(FILE);
        let reserved: i64 = match std::fs::read_to_string(&path) {
            Ok(t) => t.trim().parse().map_err(|_| {
                std::io::Error::other(format!("{} is not a number", path.display()))
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(e),
        };
        // Found by fuzzing: a negative reservation would hand out -1 (which
        // batches use for "no producer"), and one near the top would
        // overflow at the next block.
        if !(0..=i64::MAX - ID_BLOCK).contains(&reserved) {
            return Err(std::io::Error::other(format!(
                "{} holds {reserved}, outside 0..={}: the file is damaged",
                path.display(),
                i64::MAX - ID_BLOCK
            )));
        }
        Ok(ProducerIds {
            dir: data_dir.to_path_buf(),
            state: Mutex::new((reserved, reserved)),
        })
    }

    /// Whether `id` may have been handed out: by this run (below the next
    /// one) or an earlier one (below what was reserved when this run
    /// started, which is where this run began). An id at or past the next
    /// was never issued.
    pub fn issued(&self, id: i64) -> bool {
        let st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        (0..st.0).contains(&id)
    }

    /// The next unused id.
    pub fn allocate(&self) -> std::io::Result<i64> {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if st.0 == st.1 {
            let reserved = st
                .1
                .checked_add(ID_BLOCK)
                .ok_or_else(|| std::io::Error::other("every producer id has been handed out"))?;
            brook_storage::write_atomic(&self.dir, FILE, format!("{reserved}\n").as_bytes())
                .map_err(std::io::Error::other)?;
            st.1 = reserved;
        }
        st.0 += 1;
        Ok(st.0 - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reservation_out_of_range_is_refused_not_used() {
        let dir = tempfile::tempdir().unwrap();
        for bad in ["-5", "9223372036854775000", "x"] {
            std::fs::write(dir.path().join(FILE), bad).unwrap();
            let e = ProducerIds::open(dir.path()).err().expect(bad);
            assert!(e.to_string().contains(FILE), "{bad}: {e}");
        }
    }

    #[test]
    fn producer_ids_are_unique_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let ids = ProducerIds::open(dir.path()).unwrap();
        let a: Vec<i64> = (0..3).map(|_| ids.allocate().unwrap()).collect();
        drop(ids);
        let ids = ProducerIds::open(dir.path()).unwrap();
        let b = ids.allocate().unwrap();
        assert_eq!(a, [0, 1, 2]);
        assert!(
            b > 2,
            "after a restart ids continue past the reserved block: {b}"
        );
        for id in a {
            assert!(ids.issued(id), "issued by the run before: {id}");
        }
        assert!(ids.issued(b));
        assert!(!ids.issued(b + 1), "not handed out yet");
        assert!(!ids.issued(-1));
    }
}
