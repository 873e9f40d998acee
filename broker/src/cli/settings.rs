//! A topic's settings as `key=value` pairs: what `brook topic describe`
//! prints and `brook topic alter --set` takes, with the same keys.

use brook_client::proto as v1;
use brook_storage::FlushPolicy;

/// The keys, in the order `describe` prints them, with what each means.
pub(crate) const KEYS: &[(&str, &str)] = &[
    (
        "retention_ms",
        "delete segments older than this; -1 keeps forever",
    ),
    (
        "retention_bytes",
        "delete the oldest segments above this size per partition; -1 is unlimited",
    ),
    ("segment_bytes", "start a new segment file at this size"),
    ("segment_ms", "start a new segment file at this age"),
    ("flush", "always, never or interval:MS"),
    (
        "max_batch_bytes",
        "largest batch a produce may carry (fixed at creation)",
    ),
    (
        "cleanup_policy",
        "delete, compact or compact,delete (compact keeps each key's latest record)",
    ),
    (
        "min_compaction_lag_ms",
        "compacted topics: a record stays uncompacted at least this long",
    ),
    (
        "max_compaction_lag_ms",
        "compacted topics: a superseded record stays at most about this long; -1 no bound",
    ),
    (
        "delete_retention_ms",
        "compacted topics: how long a tombstone (a record with no value) stays",
    ),
    (
        "min_cleanable_dirty_ratio",
        "compacted topics: clean a partition once this share (0-1) of it is dirty",
    ),
];

/// Parses a cleanup policy as Kafka names it (`compact,delete` in either order).
pub(crate) fn parse_cleanup(text: &str) -> Result<v1::CleanupPolicy, String> {
    use brook_storage::CleanupPolicy as P;
    match P::from_name(text) {
        Some(P::Delete) => Ok(v1::CleanupPolicy::Delete),
        Some(P::Compact) => Ok(v1::CleanupPolicy::Compact),
        Some(P::CompactDelete) => Ok(v1::CleanupPolicy::CompactDelete),
        None => Err(format!(
            "cleanup policy must be delete, compact or compact,delete, got {text:?}"
        )),
    }
}

/// `--set`'s value: a `key=value` pair with a known key. Kafka's dotted
/// names (`retention.ms`) are accepted for the same keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Setting {
    pub(crate) key: &'static str,
    pub(crate) value: String,
}

/// Parses `key=value` for clap, naming the known keys when the key is not one.
pub(crate) fn parse_setting(s: &str) -> Result<Setting, String> {
    let (key, value) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?} is not key=value"))?;
    let wanted = key.trim().replace('.', "_");
    let Some((key, _)) = KEYS.iter().find(|(k, _)| *k == wanted) else {
        let known: Vec<&str> = KEYS.iter().map(|(k, _)| *k).collect();
        return Err(format!(
            "unknown setting {key:?}: the settings are {}",
            known.join(", ")
        ));
    };
    let setting = Setting {
        key,
        value: value.trim().to_string(),
    };
    // Checked here, so that a typo fails before anything is sent.
    apply(&mut v1::TopicConfig::default(), &setting)?;
    Ok(setting)
}

/// Writes one setting into the changes sent to `AlterTopic`.
pub(crate) fn apply(changes: &mut v1::TopicConfig, s: &Setting) -> Result<(), String> {
    let number = || {
        s.value
            .parse::<u64>()
            .map_err(|_| format!("{} must be a whole number, got {:?}", s.key, s.value))
    };
    let limit = || match s.value.as_str() {
        "-1" => Ok(-1),
        _ => number()
            .map(|n| n.min(i64::MAX as u64) as i64)
            .map_err(|_| {
                format!(
                    "{} must be a whole number or -1 (no limit), got {:?}",
                    s.key, s.value
                )
            }),
    };
    match s.key {
        "retention_ms" => changes.retention_ms = Some(limit()?),
        "retention_bytes" => changes.retention_bytes = Some(limit()?),
        "segment_bytes" => changes.segment_bytes = Some(number()?),
        "segment_ms" => changes.segment_ms = Some(number()?),
        "max_batch_bytes" => {
            changes.max_batch_bytes = Some(
                u32::try_from(number()?)
                    .map_err(|_| format!("max_batch_bytes {} is too large", s.value))?,
            )
        }
        "flush" => {
            let policy = crate::config::parse_flush(&s.value).map_err(|e| e.to_string())?;
            set_flush(changes, policy);
        }
        "cleanup_policy" => changes.cleanup_policy = parse_cleanup(&s.value)? as i32,
        "min_compaction_lag_ms" => changes.min_compaction_lag_ms = Some(number()?),
        "max_compaction_lag_ms" => changes.max_compaction_lag_ms = Some(limit()?),
        "delete_retention_ms" => changes.delete_retention_ms = Some(number()?),
        "min_cleanable_dirty_ratio" => {
            let ratio = s
                .value
                .parse::<f64>()
                .ok()
                .filter(|r| (0.0..=1.0).contains(r));
            changes.min_cleanable_dirty_ratio = Some(ratio.ok_or_else(|| {
                format!(
                    "min_cleanable_dirty_ratio must be a number in 0..=1, got {:?}",
                    s.value
                )
            })?);
        }
        other => return Err(format!("unknown setting {other:?}")),
    }
    Ok(())
}

/// Writes a flush policy into a proto config.
pub(crate) fn set_flush(config: &mut v1::TopicConfig, flush: FlushPolicy) {
    match flush {
        FlushPolicy::Always => config.flush_policy = v1::FlushPolicy::Always as i32,
        FlushPolicy::Never => config.flush_policy = v1::FlushPolicy::Never as i32,
        FlushPolicy::Interval(d) => {
            config.flush_policy = v1::FlushPolicy::Interval as i32;
            config.flush_interval_ms = Some(d.as_millis() as u64);
        }
    }
}

/// Every setting of a described topic, as `describe` prints it.
pub(crate) fn pairs(c: &v1::TopicConfig) -> Vec<(&'static str, String)> {
    let text = |v: Option<i64>| v.map_or("default".into(), |v| v.to_string());
    let unsigned = |v: Option<u64>| v.map_or("default".into(), |v| v.to_string());
    let flush = match c.flush_policy() {
        v1::FlushPolicy::Always => "always".to_string(),
        v1::FlushPolicy::Never => "never".to_string(),
        v1::FlushPolicy::Interval => format!("interval:{}", c.flush_interval_ms.unwrap_or(0)),
        v1::FlushPolicy::Unspecified => "default".to_string(),
    };
    vec![
        ("retention_ms", text(c.retention_ms)),
        ("retention_bytes", text(c.retention_bytes)),
        ("segment_bytes", unsigned(c.segment_bytes)),
        ("segment_ms", unsigned(c.segment_ms)),
        ("flush", flush),
        (
            "max_batch_bytes",
            unsigned(c.max_batch_bytes.map(u64::from)),
        ),
        (
            "cleanup_policy",
            match c.cleanup_policy() {
                v1::CleanupPolicy::Delete => "delete",
                v1::CleanupPolicy::Compact => "compact",
                v1::CleanupPolicy::CompactDelete => "compact,delete",
                v1::CleanupPolicy::Unspecified => "default",
            }
            .to_string(),
        ),
        ("min_compaction_lag_ms", unsigned(c.min_compaction_lag_ms)),
        ("max_compaction_lag_ms", text(c.max_compaction_lag_ms)),
        ("delete_retention_ms", unsigned(c.delete_retention_ms)),
        (
            "min_cleanable_dirty_ratio",
            c.min_cleanable_dirty_ratio
                .map_or("default".into(), |r| r.to_string()),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_parse_into_the_changes_they_name() {
        let mut changes = v1::TopicConfig::default();
        for s in [
            "retention_ms=-1",
            "retention.bytes=1048576",
            "segment_bytes=65536",
            "segment.ms=3600000",
            "flush=interval:250",
        ] {
            apply(&mut changes, &parse_setting(s).unwrap()).unwrap();
        }
        assert_eq!(changes.retention_ms, Some(-1));
        assert_eq!(changes.retention_bytes, Some(1_048_576));
        assert_eq!(changes.segment_bytes, Some(65_536));
        assert_eq!(changes.segment_ms, Some(3_600_000));
        assert_eq!(changes.flush_policy(), v1::FlushPolicy::Interval);
        assert_eq!(changes.flush_interval_ms, Some(250));
        assert_eq!(changes.partitions, 0, "the count is not a setting");
    }

    #[test]
    fn bad_settings_name_what_is_wrong() {
        for (bad, says) in [
            ("retention_ms", "key=value"),
            ("retention=5", "the settings are retention_ms"),
            ("retention_ms=-2", "or -1"),
            ("segment_bytes=1k", "whole number"),
            ("flush=sometimes", "interval:MS"),
        ] {
            let e = parse_setting(bad).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    /// `describe` prints each key `--set` takes, in the same form.
    #[test]
    fn described_settings_parse_back() {
        let described = v1::TopicConfig {
            partitions: 3,
            retention_ms: Some(-1),
            retention_bytes: Some(4096),
            segment_bytes: Some(1 << 20),
            segment_ms: Some(60_000),
            max_batch_bytes: Some(1 << 20),
            flush_policy: v1::FlushPolicy::Interval as i32,
            flush_interval_ms: Some(500),
            cleanup_policy: v1::CleanupPolicy::CompactDelete as i32,
            min_compaction_lag_ms: Some(1000),
            max_compaction_lag_ms: Some(-1),
            delete_retention_ms: Some(86_400_000),
            min_cleanable_dirty_ratio: Some(0.25),
        };
        let mut back = v1::TopicConfig {
            partitions: 3,
            ..Default::default()
        };
        let pairs = pairs(&described);
        assert_eq!(pairs.len(), KEYS.len());
        for (key, value) in pairs {
            apply(
                &mut back,
                &parse_setting(&format!("{key}={value}")).unwrap(),
            )
            .unwrap();
        }
        assert_eq!(back, described);
    }
}
