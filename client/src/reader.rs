//! Reading one partition from an offset, without a group (Kafka's
//! `assign` + `seek`, kcat's `-p P -o N`): nothing is committed and nothing
//! is asked of the broker but reads. A task follows the partition with a
//! `Subscribe` stream, which the broker fills ahead of the application as
//! far as HTTP/2 flow control lets it, and records are handed out as views
//! into the received bytes: no copy and, for records without headers, no
//! allocation per record.

use std::sync::Arc;
use std::time::Duration;

use brook_protocol::batch::{Batch, Records, batches};
use brook_protocol::v1;
use bytes::Bytes;
use futures_util::Stream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::client::Client;
use crate::consumer::{ConsumerRecord, retry_quietly};
use crate::error::{Error, Result};

/// Where a [`PartitionReader`] starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadFrom {
    /// The first record stored.
    Earliest,
    /// The log end when the reader is created: only records appended after.
    Latest,
    /// This offset (the first read fails with OUT_OF_RANGE if it is outside the log).
    Offset(u64),
}

/// How a [`PartitionReader`] fetches.
#[derive(Debug, Clone)]
pub struct ReaderConfig {
    /// Batch bytes per message the broker pushes (capped by its
    /// `--max-fetch-bytes`).
    pub fetch_max_bytes: u32,
}

impl Default for ReaderConfig {
    fn default() -> Self {
        ReaderConfig {
            fetch_max_bytes: 4 << 20,
        }
    }
}

/// One fetch's answer, or why the fetching stopped.
type Fetched = Result<(Bytes, u64)>;

/// Reads one partition in offset order, from a given start. Created by
/// [`Client::reader`].
///
/// ```no_run
/// # async fn demo(client: brook_client::Client) -> brook_client::Result<()> {
/// use brook_client::ReadFrom;
/// // Replay orders/2 from offset 1000 up to where the log ends now.
/// let end = client.admin().describe_topic("orders").await?.partitions[2].log_end_offset;
/// let mut reader = client.reader("orders", 2, ReadFrom::Offset(1000)).await?;
/// while reader.position() < end {
///     let order = reader.recv().await?;
///     println!("{}: {:?}", order.offset, order.value);
/// }
/// # Ok(()) }
/// ```
pub struct PartitionReader {
    client: Client,
    config: ReaderConfig,
    topic: Arc<str>,
    partition: u32,
    /// The next offset `recv` hands out.
    next: u64,
    /// The log end the last fetch saw.
    log_end: Option<u64>,
    fetched: mpsc::Receiver<Fetched>,
    fetcher: JoinHandle<()>,
    /// Batches of the last answer not yet handed out.
    pending: std::vec::IntoIter<Batch>,
    /// The batch `recv` is handing out, and its records still to come.
    current: Option<(Batch, Records)>,
}

impl Client {
    /// A reader of one partition from `from`, with default fetch settings.
    ///
    /// ```no_run
    /// # async fn demo(client: brook_client::Client) -> brook_client::Result<()> {
    /// use brook_client::ReadFrom;
    /// let mut reader = client.reader("orders", 0, ReadFrom::Earliest).await?;
    /// let first = reader.recv().await?;
    /// # Ok(()) }
    /// ```
    pub async fn reader(
        &self,
        topic: &str,
        partition: u32,
        from: ReadFrom,
    ) -> Result<PartitionReader> {
        self.reader_with(topic, partition, from, ReaderConfig::default())
            .await
    }

    /// A reader of one partition from `from`, fetching as `config` says.
    pub async fn reader_with(
        &self,
        topic: &str,
        partition: u32,
        from: ReadFrom,
        config: ReaderConfig,
    ) -> Result<PartitionReader> {
        let start = match from {
            ReadFrom::Offset(o) => o,
            ReadFrom::Earliest | ReadFrom::Latest => {
                let d = self.admin().describe_topic(topic).await?;
                let p = d.partitions.get(partition as usize).ok_or_else(|| {
                    Error::status(
                        tonic::Code::NotFound,
                        format!("topic {topic} has no partition {partition}"),
                    )
                })?;
                match from {
                    ReadFrom::Earliest => p.log_start_offset,
                    _ => p.log_end_offset,
                }
            }
        };
        let topic: Arc<str> = Arc::from(topic);
        let (fetched, fetcher) = spawn_fetcher(self, &config, &topic, partition, start);
        Ok(PartitionReader {
            client: self.clone(),
            config,
            topic,
            partition,
            next: start,
            log_end: None,
            fetched,
            fetcher,
            pending: Vec::new().into_iter(),
            current: None,
        })
    }
}

fn spawn_fetcher(
    client: &Client,
    config: &ReaderConfig,
    topic: &Arc<str>,
    partition: u32,
    from: u64,
) -> (mpsc::Receiver<Fetched>, JoinHandle<()>) {
    // One answer waiting while the next fetch is in flight.
    let (tx, rx) = mpsc::channel(1);
    let task = tokio::spawn(fetch_ahead(
        client.clone(),
        config.clone(),
        topic.to_string(),
        partition,
        from,
        tx,
    ));
    (rx, task)
}

/// Follows the partition from `next` with a subscription (the broker
/// pushes batches as fast as HTTP/2 flow control lets it: a deeper pipeline
/// than one fetch at a time), until the reader goes or the broker refuses.
/// A broken stream is subscribed again from where it stopped.
async fn fetch_ahead(
    client: Client,
    config: ReaderConfig,
    topic: String,
    partition: u32,
    mut next: u64,
    tx: mpsc::Sender<Fetched>,
) {
    let mut rpc = client.consumer_rpc();
    let mut backoff = Duration::from_millis(50);
    loop {
        let req = v1::SubscribeRequest {
            topic: topic.clone(),
            partitions: vec![partition],
            start: Some(v1::StartPosition {
                position: Some(v1::start_position::Position::Offset(next)),
            }),
            max_bytes: config.fetch_max_bytes,
            decoded: false,
        };
        let failed = match rpc.subscribe(req).await {
            Ok(stream) => {
                let mut stream = stream.into_inner();
                loop {
                    match stream.message().await {
                        Ok(Some(m)) => {
                            backoff = Duration::from_millis(50);
                            next = m.next_offset;
                            if tx.send(Ok((m.batches, m.log_end_offset))).await.is_err() {
                                return;
                            }
                        }
                        // The broker ended the stream (it is stopping): again.
                        Ok(None) => break None,
                        Err(s) => break Some(s),
                    }
                }
            }
            Err(s) => Some(s),
        };
        match failed {
            Some(s) if !retry_quietly(s.code()) => {
                let e = Error::damaged(&s, &topic, partition).unwrap_or_else(|| s.into());
                let _ = tx.send(Err(e)).await;
                return;
            }
            Some(s) => {
                tracing::debug!(%topic, partition, message = s.message(), "subscription failed; retrying");
            }
            None => {}
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(1));
    }
}

impl PartitionReader {
    /// The next record. Waits for one at the log end (the broker pushes it
    /// when it is appended). Fails with the
    /// broker's refusal (OUT_OF_RANGE for a start outside the log,
    /// NOT_FOUND for a deleted topic, [`Error::Damaged`] for damaged
    /// records: [`PartitionReader::seek`] past them to go on); after an
    /// error, `recv` fails with [`Error::Closed`] until a `seek`. A broker
    /// that restarts or is unreachable is retried, not reported.
    pub async fn recv(&mut self) -> Result<ConsumerRecord> {
        loop {
            if let Some((batch, records)) = &mut self.current {
                let end = batch.header().next_offset();
                while let Some(r) = records.next() {
                    let r = match r {
                        Ok(r) => r,
                        Err(e) => return Err(self.fail(Error::Protocol(e.to_string()))),
                    };
                    // A fetch starts with the batch that holds the offset asked for.
                    if r.offset < self.next {
                        continue;
                    }
                    self.next = r.offset + 1;
                    if records.is_done() {
                        // A batch can end in offsets without records (records
                        // the broker dead-lettered): the position moves past
                        // them with its last record, and past batches with
                        // no record at all that were fetched with it.
                        self.next = self.next.max(end);
                        self.skip_empty_batches();
                    }
                    return Ok(ConsumerRecord {
                        topic: Arc::clone(&self.topic),
                        partition: self.partition,
                        offset: r.offset,
                        timestamp_ms: r.timestamp,
                        key: r.key,
                        value: r.value,
                        headers: r.headers.into_iter().map(|h| (h.key, h.value)).collect(),
                    });
                }
                self.next = self.next.max(end);
                self.current = None;
            }
            let batch = self.next_fetched_batch().await?;
            let records = batch.records();
            self.current = Some((batch, records));
        }
    }

    /// The next whole batch, as stored (its CRC checked), for callers that
    /// process records in bulk. The first batch after a start or a seek can
    /// hold records before [`PartitionReader::position`]; so can a batch
    /// that `recv` has handed out part of, which this returns whole.
    pub async fn next_batch(&mut self) -> Result<Batch> {
        let batch = match self.current.take() {
            Some((batch, _)) => batch,
            None => self.next_fetched_batch().await?,
        };
        self.next = self.next.max(batch.last_offset() + 1);
        Ok(batch)
    }

    /// Moves the position past batches with no record at the front of
    /// what was fetched, without waiting for more (one that arrives later
    /// is stepped over by the next `recv`).
    fn skip_empty_batches(&mut self) {
        loop {
            let rest = self.pending.as_slice();
            match rest.first() {
                Some(b) if b.header().record_count == 0 || b.last_offset() < self.next => {
                    self.next = self.next.max(b.header().next_offset());
                    self.pending.next();
                }
                Some(_) => return,
                // What has not arrived yet is stepped over when it does.
                None => return,
            }
        }
    }

    async fn next_fetched_batch(&mut self) -> Result<Batch> {
        loop {
            if let Some(batch) = self.pending.next() {
                if batch.last_offset() < self.next {
                    continue;
                }
                return Ok(batch);
            }
            let (bytes, log_end) = match self.fetched.recv().await {
                None => return Err(Error::Closed),
                Some(Err(e)) => return Err(self.fail(e)),
                Some(Ok(fetched)) => fetched,
            };
            self.log_end = Some(log_end);
            let parsed: std::result::Result<Vec<Batch>, _> = batches(bytes).collect();
            match parsed {
                Ok(parsed) => self.pending = parsed.into_iter(),
                Err(e) => return Err(self.fail(Error::Protocol(e.to_string()))),
            }
        }
    }

    /// Stops reading after `e`: later calls fail with [`Error::Closed`]
    /// until a [`PartitionReader::seek`], instead of going on past records
    /// that could not be read.
    fn fail(&mut self, e: Error) -> Error {
        self.fetcher.abort();
        let (tx, rx) = mpsc::channel(1);
        drop(tx);
        self.fetched = rx;
        self.pending = Vec::new().into_iter();
        self.current = None;
        e
    }

    /// The offset the next record [`PartitionReader::recv`] hands out is at
    /// or after: past the last one handed out, and past the offsets without
    /// records (gaps a batch ends with, batches with none) fetched with it,
    /// so it reaches the log end.
    pub fn position(&self) -> u64 {
        self.next
    }

    /// The partition's log end as of the last batches received (`None` before the first).
    pub fn log_end_offset(&self) -> Option<u64> {
        self.log_end
    }

    /// Reads from `offset` next; what was fetched before is dropped.
    pub fn seek(&mut self, offset: u64) {
        self.fetcher.abort();
        let (fetched, fetcher) = spawn_fetcher(
            &self.client,
            &self.config,
            &self.topic,
            self.partition,
            offset,
        );
        self.fetched = fetched;
        self.fetcher = fetcher;
        self.pending = Vec::new().into_iter();
        self.current = None;
        self.next = offset;
        self.log_end = None;
    }

    /// The records as a `Stream`, ending after the first error.
    pub fn into_stream(self) -> impl Stream<Item = Result<ConsumerRecord>> {
        futures_util::stream::unfold(Some(self), |reader| async move {
            let mut reader = reader?;
            match reader.recv().await {
                Err(Error::Closed) => None,
                Ok(r) => Some((Ok(r), Some(reader))),
                Err(e) => Some((Err(e), None)),
            }
        })
    }
}

impl Drop for PartitionReader {
    fn drop(&mut self) {
        self.fetcher.abort();
    }
}
