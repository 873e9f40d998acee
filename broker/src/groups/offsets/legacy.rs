//! The first format of committed offsets, read once to migrate it into the
//! offsets log: one text file per group, `<data>/~groups/<group>.offsets`,
//! replaced atomically at every commit. A first line `brook-offsets 1`,
//! then one line per partition:
//! `<topic> <partition> <offset> <commit timestamp ms> <metadata as hex>`.

use std::collections::BTreeMap;
use std::path::Path;

use super::{Committed, Tp};

const HEADER: &str = "brook-offsets 1";

/// The file name suffix of a group's file in this format.
pub(super) const SUFFIX: &str = ".offsets";

/// Parses one group's file; errors name the file and the line.
pub(super) fn parse(text: &str, path: &Path) -> anyhow::Result<BTreeMap<Tp, Committed>> {
    let mut lines = text.lines();
    anyhow::ensure!(
        lines.next() == Some(HEADER),
        "{}: not a brook offsets file",
        path.display()
    );
    let mut out = BTreeMap::new();
    for (n, line) in lines.enumerate() {
        let bad = || anyhow::anyhow!("{}: line {} is malformed: {line:?}", path.display(), n + 2);
        let f: Vec<&str> = line.split(' ').collect();
        let [topic, partition, offset, ts, meta] = f[..] else {
            return Err(bad());
        };
        let committed = Committed {
            offset: offset.parse().map_err(|_| bad())?,
            timestamp_ms: ts.parse().map_err(|_| bad())?,
            metadata: hex::decode(meta)
                .ok()
                .and_then(|m| String::from_utf8(m).ok())
                .ok_or_else(bad)?,
        };
        out.insert(
            (topic.to_string(), partition.parse().map_err(|_| bad())?),
            committed,
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_of_the_first_format_parses() {
        let text = "brook-offsets 1\norders 0 12 7 78\norders 1 5 8 \n";
        let parsed = parse(text, Path::new("g.offsets")).unwrap();
        assert_eq!(
            parsed[&("orders".to_string(), 0)],
            Committed {
                offset: 12,
                metadata: "x".into(),
                timestamp_ms: 7
            }
        );
        assert_eq!(parsed[&("orders".to_string(), 1)].offset, 5);
    }

    #[test]
    fn a_malformed_line_is_named() {
        let err = parse(
            "brook-offsets 1\norders zero 1 2 \n",
            Path::new("g.offsets"),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("g.offsets: line 2"), "{err}");
    }
}
