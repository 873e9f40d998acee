//! `redis-peer-bench`: Brook's standard workloads run against Redis 7 Streams.
//!
//! It exists so that Brook's benchmark figures have a peer measured in the
//! same run, on the same machine, under the same conditions (see
//! docs/benchmarks.md; `scripts/redis-peer.sh` runs it next to a fresh
//! `redis-server`). The workloads mirror `brook bench`'s, done the way a
//! normal Redis user would, over one connection:
//!
//! - **w1** (produce): N records of `--size` bytes, keyed over `--keys`
//!   aggregates and routed to `--partitions` streams by Kafka's murmur2
//!   partitioner; each stream's records go out in pipelines of `--batch`
//!   XADDs, one pipeline in flight. Latency is per pipeline round trip.
//! - **w2** (consume): XRANGE every stream back in pages of `--batch`.
//! - **w2-group** (consume + commit): a new consumer group reads every stream
//!   with XREADGROUP, acknowledging (XACK, awaited) every `--batch` records.
//! - **w3** (latency): N single XADDs, each awaited; latency per round trip.
//!
//! It prints one JSON line on stdout (the fields of `brook bench --json` that
//! apply), progress and errors on stderr, and exits non-zero when a check
//! (stored or read counts) fails.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail, ensure};
use clap::{Parser, ValueEnum};
use hdrhistogram::Histogram;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Value};

#[derive(Parser)]
#[command(version, about = "Brook's standard workloads against Redis Streams")]
struct Args {
    /// The Redis server, e.g. redis://127.0.0.1:6379.
    #[arg(long)]
    url: String,
    #[arg(long, value_enum)]
    scenario: Scenario,
    /// Records to write or read (default 1,000,000; 20,000 for w3).
    #[arg(long)]
    messages: Option<u64>,
    /// Streams the records are spread over: `<prefix>-0` ... `<prefix>-(n-1)`.
    #[arg(long, default_value_t = 8)]
    partitions: u32,
    /// Distinct keys (`aggregate-000000` ...); record i has key i % keys.
    #[arg(long, default_value_t = 10_000)]
    keys: u64,
    /// Value size in bytes.
    #[arg(long, default_value_t = 1024)]
    size: usize,
    /// XADDs per pipeline (w1); COUNT per read and records per XACK (w2, w2-group).
    #[arg(long, default_value_t = 1000)]
    batch: usize,
    /// Stream name prefix.
    #[arg(long, default_value = "bench")]
    prefix: String,
    /// The workload name in the JSON line (default "redis <scenario>").
    #[arg(long)]
    label: Option<String>,
}

#[derive(Clone, Copy, ValueEnum)]
enum Scenario {
    W1,
    W2,
    W2Group,
    W3,
}

impl Scenario {
    fn name(self) -> &'static str {
        match self {
            Scenario::W1 => "w1",
            Scenario::W2 => "w2",
            Scenario::W2Group => "w2-group",
            Scenario::W3 => "w3",
        }
    }
}

/// The outcome of one workload.
struct Report {
    messages: u64,
    bytes: u64,
    elapsed: Duration,
    latency: Option<Histogram<u64>>,
}

impl Report {
    /// The JSON line: `brook bench --json`'s leading fields, same formats.
    fn json(&self, workload: &str) -> String {
        let secs = self.elapsed.as_secs_f64();
        let msgs = self.messages as f64 / secs;
        let mib = self.bytes as f64 / (1u64 << 20) as f64 / secs;
        let pct = |q: f64| {
            self.latency
                .as_ref()
                .map_or("null".to_string(), |h| h.value_at_quantile(q).to_string())
        };
        format!(
            "{{\"workload\":\"{}\",\"messages\":{},\"seconds\":{secs:.3},\"msgs_per_s\":{msgs:.0},\"mib_per_s\":{mib:.1},\"p50_us\":{},\"p99_us\":{},\"p999_us\":{}}}",
            json_escape(workload),
            self.messages,
            pct(0.5),
            pct(0.99),
            pct(0.999),
        )
    }
}

fn json_escape(s: &str) -> String {
    s.chars()
        .flat_map(|c| match c {
            '"' | '\\' => vec!['\\', c],
            c if c.is_control() => format!("\\u{:04x}", c as u32).chars().collect(),
            c => vec![c],
        })
        .collect()
}

/// Latencies in µs from 1 µs to a minute, 3 significant digits (as Brook's).
fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
}

fn record(hist: &mut Histogram<u64>, started: Instant) {
    // Saturates at the top bound rather than failing the run.
    hist.saturating_record(started.elapsed().as_micros().max(1) as u64);
}

/// The stream of a key: Kafka's default partitioner, as Brook's producer
/// routes (the same function, from `brook-protocol`), so that both systems
/// put every aggregate in the same partition.
fn partition_for_key(key: &[u8], partitions: u32) -> usize {
    brook_protocol::partitioner::partition_for_key(key, partitions) as usize
}

fn stream_names(prefix: &str, partitions: u32) -> Vec<String> {
    (0..partitions).map(|p| format!("{prefix}-{p}")).collect()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    ensure!(args.partitions >= 1, "--partitions must be at least 1");
    ensure!(args.keys >= 1, "--keys must be at least 1");
    ensure!(args.batch >= 1, "--batch must be at least 1");
    let n = args.messages.unwrap_or(match args.scenario {
        Scenario::W3 => 20_000,
        _ => 1_000_000,
    });
    let client = redis::Client::open(args.url.as_str())
        .with_context(|| format!("bad --url {}", args.url))?;
    // The client's default 500 ms response timeout is shorter than a
    // pipeline of 1,000 XADDs can take on a durable server; a minute still
    // ends a hung run.
    let config = AsyncConnectionConfig::new().set_response_timeout(Some(Duration::from_secs(60)));
    let mut con = client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .with_context(|| format!("connecting to {}", args.url))?;
    let streams = stream_names(&args.prefix, args.partitions);
    eprintln!(
        "redis {}: {n} records, streams {}-0..{}",
        args.scenario.name(),
        args.prefix,
        args.partitions - 1
    );
    let report = match args.scenario {
        Scenario::W1 => produce_batched(&mut con, &args, &streams, n).await?,
        Scenario::W2 => consume(&mut con, &args, &streams, n).await?,
        Scenario::W2Group => consume_group(&mut con, &args, &streams, n).await?,
        Scenario::W3 => produce_single(&mut con, &args, &streams, n).await?,
    };
    let label = args
        .label
        .clone()
        .unwrap_or_else(|| format!("redis {}", args.scenario.name()));
    eprintln!(
        "redis {}: done in {:.3} s",
        args.scenario.name(),
        report.elapsed.as_secs_f64()
    );
    println!("{}", report.json(&label));
    Ok(())
}

/// Total entries over `streams` (XLEN of each; a missing stream counts 0).
async fn total_len(con: &mut MultiplexedConnection, streams: &[String]) -> anyhow::Result<u64> {
    let mut total = 0;
    for s in streams {
        let len: u64 = redis::cmd("XLEN")
            .arg(s)
            .query_async(con)
            .await
            .with_context(|| format!("XLEN {s}"))?;
        total += len;
    }
    Ok(total)
}

/// Checks that the streams grew by exactly `n` entries since `before`.
async fn check_stored(
    con: &mut MultiplexedConnection,
    streams: &[String],
    before: u64,
    n: u64,
) -> anyhow::Result<()> {
    let after = total_len(con, streams).await?;
    ensure!(
        after.checked_sub(before) == Some(n),
        "the streams hold {after} entries, {before} before the run: expected {n} more"
    );
    Ok(())
}

/// The record keys: `aggregate-000000` ...
fn keys(count: u64) -> Vec<String> {
    (0..count).map(|k| format!("aggregate-{k:06}")).collect()
}

/// W1: records accumulate per stream; a stream with `batch` of them sends
/// them as one pipeline of XADDs and awaits the replies before anything else.
async fn produce_batched(
    con: &mut MultiplexedConnection,
    args: &Args,
    streams: &[String],
    n: u64,
) -> anyhow::Result<Report> {
    let before = total_len(con, streams).await?;
    let keys = keys(args.keys);
    let value = vec![0x42u8; args.size];
    let mut pending: Vec<Vec<usize>> = vec![Vec::with_capacity(args.batch); streams.len()];
    let mut hist = new_histogram();
    let started = Instant::now();
    for i in 0..n {
        let k = (i % args.keys) as usize;
        let p = partition_for_key(keys[k].as_bytes(), args.partitions);
        pending[p].push(k);
        if pending[p].len() >= args.batch {
            send_batch(con, &streams[p], &pending[p], &keys, &value, &mut hist).await?;
            pending[p].clear();
        }
    }
    for (p, batch) in pending.iter().enumerate() {
        if !batch.is_empty() {
            send_batch(con, &streams[p], batch, &keys, &value, &mut hist).await?;
        }
    }
    let elapsed = started.elapsed();
    check_stored(con, streams, before, n).await?;
    Ok(Report {
        messages: n,
        bytes: n * args.size as u64,
        elapsed,
        latency: Some(hist),
    })
}

/// One pipeline of XADDs to `stream`; records its round trip in `hist`.
async fn send_batch(
    con: &mut MultiplexedConnection,
    stream: &str,
    batch: &[usize],
    keys: &[String],
    value: &[u8],
    hist: &mut Histogram<u64>,
) -> anyhow::Result<()> {
    let mut pipe = redis::pipe();
    for &k in batch {
        pipe.cmd("XADD")
            .arg(stream)
            .arg("*")
            .arg("k")
            .arg(&keys[k])
            .arg("v")
            .arg(value);
    }
    let started = Instant::now();
    let ids: Vec<String> = pipe
        .query_async(con)
        .await
        .with_context(|| format!("pipeline of {} XADDs to {stream}", batch.len()))?;
    record(hist, started);
    ensure!(
        ids.len() == batch.len(),
        "{} XADD replies for {} XADDs to {stream}",
        ids.len(),
        batch.len()
    );
    Ok(())
}

/// W3: one XADD at a time, each awaited; the histogram has every round trip.
async fn produce_single(
    con: &mut MultiplexedConnection,
    args: &Args,
    streams: &[String],
    n: u64,
) -> anyhow::Result<Report> {
    let before = total_len(con, streams).await?;
    let keys = keys(args.keys);
    let value = vec![0x42u8; args.size];
    let mut hist = new_histogram();
    let started = Instant::now();
    for i in 0..n {
        let key = &keys[(i % args.keys) as usize];
        let stream = &streams[partition_for_key(key.as_bytes(), args.partitions)];
        let t = Instant::now();
        let _id: String = redis::cmd("XADD")
            .arg(stream)
            .arg("*")
            .arg("k")
            .arg(key)
            .arg("v")
            .arg(&value[..])
            .query_async(con)
            .await
            .with_context(|| format!("XADD to {stream}"))?;
        record(&mut hist, t);
    }
    let elapsed = started.elapsed();
    check_stored(con, streams, before, n).await?;
    Ok(Report {
        messages: n,
        bytes: n * args.size as u64,
        elapsed,
        latency: Some(hist),
    })
}

/// W2: every stream read with XRANGE in pages of `batch`, each page starting
/// after the previous page's last id, until a page is empty.
async fn consume(
    con: &mut MultiplexedConnection,
    args: &Args,
    streams: &[String],
    n: u64,
) -> anyhow::Result<Report> {
    let (mut count, mut bytes) = (0u64, 0u64);
    let started = Instant::now();
    for s in streams {
        let mut from = "-".to_string();
        loop {
            let reply: Value = redis::cmd("XRANGE")
                .arg(s)
                .arg(&from)
                .arg("+")
                .arg("COUNT")
                .arg(args.batch)
                .query_async(con)
                .await
                .with_context(|| format!("XRANGE {s} {from} + COUNT {}", args.batch))?;
            let entries = entries(&reply).with_context(|| format!("XRANGE {s} reply"))?;
            let Some(last) = entries.last() else { break };
            from = format!("({}", last.id);
            count += entries.len() as u64;
            bytes += entries.iter().map(|e| e.value_bytes).sum::<u64>();
        }
    }
    let elapsed = started.elapsed();
    ensure!(count == n, "read {count} records, expected {n}");
    Ok(Report {
        messages: count,
        bytes,
        elapsed,
        latency: None,
    })
}

/// W2 with a consumer group: stream by stream, XREADGROUP `>` COUNT `batch`;
/// every `batch` records received, the ids received since the last XACK are
/// acknowledged (one XACK per stream that has some) and awaited.
async fn consume_group(
    con: &mut MultiplexedConnection,
    args: &Args,
    streams: &[String],
    n: u64,
) -> anyhow::Result<Report> {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .context("clock before 1970")?
        .as_nanos();
    let group = format!("g-{}-{nanos}", std::process::id());
    let consumer = "c";
    for s in streams {
        let _: String = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(s)
            .arg(&group)
            .arg("0")
            .query_async(con)
            .await
            .with_context(|| format!("XGROUP CREATE {s} {group} 0"))?;
    }
    let (mut received, mut acked, mut bytes) = (0u64, 0u64, 0u64);
    let mut unacked: Vec<Vec<String>> = vec![Vec::new(); streams.len()];
    let mut since_ack = 0usize;
    let started = Instant::now();
    'streams: for (p, s) in streams.iter().enumerate() {
        while received < n {
            let reply: Value = redis::cmd("XREADGROUP")
                .arg("GROUP")
                .arg(&group)
                .arg(consumer)
                .arg("COUNT")
                .arg(args.batch)
                .arg("STREAMS")
                .arg(s)
                .arg(">")
                .query_async(con)
                .await
                .with_context(|| format!("XREADGROUP on {s}"))?;
            let entries = read_reply(&reply).with_context(|| format!("XREADGROUP {s} reply"))?;
            if entries.is_empty() {
                continue 'streams;
            }
            received += entries.len() as u64;
            since_ack += entries.len();
            bytes += entries.iter().map(|e| e.value_bytes).sum::<u64>();
            unacked[p].extend(entries.into_iter().map(|e| e.id));
            if since_ack >= args.batch {
                acked += ack(con, streams, &group, &mut unacked).await?;
                since_ack = 0;
            }
        }
        break;
    }
    acked += ack(con, streams, &group, &mut unacked).await?;
    let elapsed = started.elapsed();
    ensure!(
        received >= n && acked == received,
        "read {received} and acknowledged {acked} records, expected {n}"
    );
    Ok(Report {
        messages: received,
        bytes,
        elapsed,
        latency: None,
    })
}

/// XACKs each stream's unacknowledged ids (awaited, stream by stream);
/// returns how many Redis acknowledged.
async fn ack(
    con: &mut MultiplexedConnection,
    streams: &[String],
    group: &str,
    unacked: &mut [Vec<String>],
) -> anyhow::Result<u64> {
    let mut total = 0;
    for (s, ids) in streams.iter().zip(unacked.iter_mut()) {
        if ids.is_empty() {
            continue;
        }
        let n: u64 = redis::cmd("XACK")
            .arg(s)
            .arg(group)
            .arg(&ids[..])
            .query_async(con)
            .await
            .with_context(|| format!("XACK {s} {group} ({} ids)", ids.len()))?;
        ensure!(
            n == ids.len() as u64,
            "XACK {s} acknowledged {n} of {} ids",
            ids.len()
        );
        total += n;
        ids.clear();
    }
    Ok(total)
}

/// One stream entry as the workloads need it.
struct Entry {
    id: String,
    /// Length of the entry's `v` field.
    value_bytes: u64,
}

/// The entries of an XRANGE reply (or of one stream in an XREADGROUP reply):
/// an array of `[id, [field, value, ...]]`.
fn entries(reply: &Value) -> anyhow::Result<Vec<Entry>> {
    let items = match reply {
        Value::Array(items) => items,
        Value::Nil => return Ok(Vec::new()),
        other => bail!("expected an array of entries, got {other:?}"),
    };
    items
        .iter()
        .map(|item| {
            let Value::Array(parts) = item else {
                bail!("expected an [id, fields] entry, got {item:?}")
            };
            let [id, fields] = parts.as_slice() else {
                bail!("expected an [id, fields] entry, got {} parts", parts.len())
            };
            let Value::BulkString(id) = id else {
                bail!("expected an entry id, got {id:?}")
            };
            let id = String::from_utf8(id.clone()).context("entry id is not UTF-8")?;
            let value_bytes = match fields {
                Value::Array(kv) => kv
                    .chunks_exact(2)
                    .find_map(|pair| match pair {
                        [Value::BulkString(f), Value::BulkString(v)] if f == b"v" => {
                            Some(v.len() as u64)
                        }
                        _ => None,
                    })
                    .unwrap_or(0),
                // A deleted entry still pending in a group has no fields.
                Value::Nil => 0,
                other => bail!("expected the entry's fields, got {other:?}"),
            };
            Ok(Entry { id, value_bytes })
        })
        .collect()
}

/// The entries of an XREADGROUP reply naming one stream: nil when there is
/// nothing new, else `[[stream, entries]]` (a map with RESP3).
fn read_reply(reply: &Value) -> anyhow::Result<Vec<Entry>> {
    match reply {
        Value::Nil => Ok(Vec::new()),
        Value::Array(streams) => {
            let mut out = Vec::new();
            for s in streams {
                let Value::Array(pair) = s else {
                    bail!("expected [stream, entries], got {s:?}")
                };
                let [_, e] = pair.as_slice() else {
                    bail!("expected [stream, entries], got {} parts", pair.len())
                };
                out.extend(entries(e)?);
            }
            Ok(out)
        }
        Value::Map(streams) => {
            let mut out = Vec::new();
            for (_, e) in streams {
                out.extend(entries(e)?);
            }
            Ok(out)
        }
        other => bail!("unexpected XREADGROUP reply {other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_route_as_kafka_does() {
        // murmur2("21") is -973932308 as a Java int (Kafka's UtilsTest).
        let expected = ((-973_932_308i32 as u32 & 0x7fff_ffff) % 8) as usize;
        assert_eq!(partition_for_key(b"21", 8), expected);
        assert_eq!(partition_for_key(b"anything", 1), 0);
    }

    #[test]
    fn json_line_fields_and_formats() {
        let r = Report {
            messages: 3,
            bytes: 3 << 20,
            elapsed: Duration::from_secs(2),
            latency: None,
        };
        assert_eq!(
            r.json("redis \"w1\""),
            "{\"workload\":\"redis \\\"w1\\\"\",\"messages\":3,\"seconds\":2.000,\"msgs_per_s\":2,\"mib_per_s\":1.5,\"p50_us\":null,\"p99_us\":null,\"p999_us\":null}"
        );
    }

    #[test]
    fn parses_xrange_and_xreadgroup_replies() {
        let bulk = |s: &[u8]| Value::BulkString(s.to_vec());
        let entry = |id: &[u8], v: &[u8]| {
            Value::Array(vec![
                bulk(id),
                Value::Array(vec![bulk(b"k"), bulk(b"key"), bulk(b"v"), bulk(v)]),
            ])
        };
        let range = Value::Array(vec![entry(b"1-0", b"abc"), entry(b"1-1", b"de")]);
        let e = entries(&range).unwrap();
        assert_eq!(e.len(), 2);
        assert_eq!((e[1].id.as_str(), e[1].value_bytes), ("1-1", 2));
        let read = Value::Array(vec![Value::Array(vec![bulk(b"s-0"), range])]);
        assert_eq!(read_reply(&read).unwrap().len(), 2);
        assert!(read_reply(&Value::Nil).unwrap().is_empty());
    }
}
