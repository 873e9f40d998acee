//! Producer ids for idempotent producers, unique across restarts and not
//! guessable from each other. The producers' sequence state lives beside
//! each partition's log, in storage (`brook_storage::Partition::append`
//! checks it).
//!
//! The n-th id handed out is `legacy + (n << 16 | tag(n))`, where `tag(n)`
//! is 16 bits of SHA-256 over a random key of this data directory and `n`.
//! Ids still grow with `n` (a restart never reuses one), but knowing one id
//! says nothing of the next one's low bits: guessing a live or future id
//! takes some 65,536 tries, each refused with INVALID_PRODUCER_ID_MAPPING.
//! `legacy` is where the ids of a data directory from before this scheme
//! ended (plain counters below it stay valid).
//!
//! `<data>/~producer-ids` (replaced atomically) holds `2 RESERVED LEGACY
//! KEY`: counters below RESERVED may have been handed out; one block of
//! them is reserved before use. A file of one number (the first format) is
//! read as LEGACY and gets a key at the next reservation.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use sha2::{Digest, Sha256};

/// Hands out producer ids (see the module documentation).
pub struct ProducerIds {
    dir: PathBuf,
    key: [u8; 16],
    /// Ids below this are plain counters from before the keyed scheme.
    legacy: i64,
    /// (next counter, counters reserved in the file).
    state: Mutex<(i64, i64)>,
}

const ID_BLOCK: i64 = 1000;
const FILE: &str = "~producer-ids";
/// Bits of an id that are its tag.
const TAG_BITS: u32 = 16;

impl ProducerIds {
    /// Reads the reservation file under `data_dir`.
    pub fn open(data_dir: &Path) -> std::io::Result<ProducerIds> {
        let path = data_dir.join(FILE);
        let bad = |why: &str| std::io::Error::other(format!("{}: {why}", path.display()));
        let (reserved, legacy, key) = match std::fs::read_to_string(&path) {
            Ok(t) => parse(&t).map_err(|why| bad(&why))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (0, 0, None),
            Err(e) => return Err(e),
        };
        let key = match key {
            Some(k) => k,
            None => {
                let mut k = [0u8; 16];
                getrandom::fill(&mut k).map_err(|e| std::io::Error::other(e.to_string()))?;
                k
            }
        };
        Ok(ProducerIds {
            dir: data_dir.to_path_buf(),
            key,
            legacy,
            state: Mutex::new((reserved, reserved)),
        })
    }

    fn tag(&self, counter: i64) -> i64 {
        let mut h = Sha256::new();
        h.update(self.key);
        h.update(counter.to_be_bytes());
        let d = h.finalize();
        i64::from(u16::from_be_bytes([d[0], d[1]]))
    }

    fn id(&self, counter: i64) -> i64 {
        self.legacy + ((counter << TAG_BITS) | self.tag(counter))
    }

    /// Whether `id` may have been handed out: a plain id of the directory's
    /// first format, or a keyed one whose counter this or an earlier run
    /// reached and whose tag is right. An id at or past the next was never
    /// issued.
    pub fn issued(&self, id: i64) -> bool {
        if (0..self.legacy).contains(&id) {
            return true;
        }
        let Some(x) = id.checked_sub(self.legacy).filter(|x| *x >= 0) else {
            return false;
        };
        let counter = x >> TAG_BITS;
        let next = self.state.lock().unwrap_or_else(|e| e.into_inner()).0;
        counter < next && x & ((1 << TAG_BITS) - 1) == self.tag(counter)
    }

    /// A new id.
    pub fn allocate(&self) -> std::io::Result<i64> {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if st.0 == st.1 {
            let reserved = st
                .1
                .checked_add(ID_BLOCK)
                .filter(|r| *r <= max_counter(self.legacy))
                .ok_or_else(|| std::io::Error::other("every producer id has been handed out"))?;
            let key = hex::encode(self.key);
            let text = format!("2 {reserved} {} {key}\n", self.legacy);
            brook_storage::write_atomic(&self.dir, FILE, text.as_bytes())
                .map_err(std::io::Error::other)?;
            st.1 = reserved;
        }
        st.0 += 1;
        Ok(self.id(st.0 - 1))
    }
}

/// The largest counter whose id fits an i64 above `legacy`.
fn max_counter(legacy: i64) -> i64 {
    (i64::MAX - legacy) >> TAG_BITS
}

/// `(reserved, legacy, key)` of the file's text.
fn parse(text: &str) -> Result<(i64, i64, Option<[u8; 16]>), String> {
    let fields: Vec<&str> = text.split_whitespace().collect();
    match fields.as_slice() {
        // The first format: the ids reserved, plain counters.
        [n] => {
            let legacy: i64 = n.parse().map_err(|_| format!("{n:?} is not a number"))?;
            // Found by fuzzing: a negative reservation would hand out -1
            // (which batches use for "no producer"), one near the top would
            // overflow.
            if !(0..=i64::MAX / 2).contains(&legacy) {
                return Err(format!("holds {legacy}: the file is damaged"));
            }
            Ok((0, legacy, None))
        }
        ["2", reserved, legacy, key] => {
            let legacy: i64 = legacy
                .parse()
                .ok()
                .filter(|l| (0..=i64::MAX / 2).contains(l))
                .ok_or_else(|| format!("legacy limit {legacy:?} is damaged"))?;
            let reserved: i64 = reserved
                .parse()
                .ok()
                .filter(|r| (0..=max_counter(legacy)).contains(r))
                .ok_or_else(|| format!("reservation {reserved:?} is damaged"))?;
            let mut k = [0u8; 16];
            hex::decode_to_slice(key, &mut k)
                .map_err(|_| "the key must be 32 hex digits".to_string())?;
            Ok((reserved, legacy, Some(k)))
        }
        _ => Err("not a producer-id reservation (\"2 RESERVED LEGACY KEY\")".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reservation_out_of_range_is_refused_not_used() {
        let dir = tempfile::tempdir().unwrap();
        for bad in [
            "-5",
            "9223372036854775000",
            "x",
            "2 1000 0 zz",
            "2 -1 0 00000000000000000000000000000000",
            "3 1 2 3",
        ] {
            std::fs::write(dir.path().join(FILE), bad).unwrap();
            let e = ProducerIds::open(dir.path()).err().expect(bad);
            assert!(e.to_string().contains(FILE), "{bad}: {e}");
        }
    }

    #[test]
    fn producer_ids_are_unique_across_restarts_and_not_consecutive() {
        let dir = tempfile::tempdir().unwrap();
        let ids = ProducerIds::open(dir.path()).unwrap();
        let a: Vec<i64> = (0..3).map(|_| ids.allocate().unwrap()).collect();
        drop(ids);
        let ids = ProducerIds::open(dir.path()).unwrap();
        let b = ids.allocate().unwrap();
        assert!(a.windows(2).all(|w| w[0] < w[1]), "{a:?}");
        assert!(
            b > a[2],
            "after a restart ids continue past the reserved block: {b}"
        );
        for id in &a {
            assert!(ids.issued(*id), "issued by the run before: {id}");
            assert!(
                !ids.issued(id + 1) && !ids.issued(id - 1),
                "a neighbour of {id}"
            );
        }
        assert!(ids.issued(b));
        assert!(!ids.issued(b + (1 << TAG_BITS)), "not handed out yet");
        assert!(!ids.issued(-1));
        // Knowing one id does not give the next: the tags differ.
        let tags: std::collections::BTreeSet<i64> = a.iter().map(|id| id & 0xffff).collect();
        assert_eq!(tags.len(), 3, "{a:?}");
    }

    #[test]
    fn ids_of_the_first_format_stay_valid_and_new_ones_come_after() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE), "2000\n").unwrap();
        let ids = ProducerIds::open(dir.path()).unwrap();
        assert!(
            ids.issued(0) && ids.issued(1999),
            "handed out before the upgrade"
        );
        let new = ids.allocate().unwrap();
        assert!(new >= 2000, "{new}");
        drop(ids);
        let ids = ProducerIds::open(dir.path()).unwrap();
        assert!(ids.issued(1999) && ids.issued(new));
        assert!(ids.allocate().unwrap() > new);
    }
}
