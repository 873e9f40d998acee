//! Correlation ids: one business transaction followed across topics.
//!
//! An `OrderPlaced` event fans out to inventory, billing and shipping,
//! each of which publishes events of its own; a `correlation-id` header
//! carried from each record a handler reads to the records it publishes
//! ties them together, and `brook trace ID` prints the chain. Routing rules
//! inside the broker keep every header, so the id crosses them too.

use bytes::Bytes;

use crate::consumer::ConsumerRecord;
use crate::producer::ProducerRecord;

/// The header that carries a correlation id.
pub const CORRELATION_ID: &str = "correlation-id";
/// W3C Trace Context's headers, carried along with the correlation id.
pub const TRACE_HEADERS: [&str; 2] = ["traceparent", "tracestate"];

/// The value of the first header named `name`, if it is UTF-8.
pub fn header<'a>(headers: &'a [(String, Bytes)], name: &str) -> Option<&'a str> {
    (headers.iter())
        .find(|(k, _)| k == name)
        .and_then(|(_, v)| std::str::from_utf8(v).ok())
}

impl ConsumerRecord {
    /// The record's correlation id (its `correlation-id` header), if it
    /// has one.
    ///
    /// ```no_run
    /// # async fn demo(mut consumer: brook_client::Consumer) -> brook_client::Result<()> {
    /// let r = consumer.recv().await?;
    /// println!("{}", r.correlation_id().unwrap_or("(none)"));
    /// # Ok(()) }
    /// ```
    pub fn correlation_id(&self) -> Option<&str> {
        header(&self.headers, CORRELATION_ID)
    }

    /// The id that records caused by this one carry: its correlation id,
    /// or, for a record without one (the first of a chain), its place
    /// `topic/partition/offset`, unique and found again by `brook trace`.
    pub fn correlation_or_place(&self) -> String {
        match self.correlation_id() {
            Some(id) => id.to_string(),
            None => format!("{}/{}/{}", self.topic, self.partition, self.offset),
        }
    }
}

impl ProducerRecord {
    /// Sets the record's correlation id (replacing any it had).
    pub fn with_correlation_id(mut self, id: &str) -> ProducerRecord {
        self.headers.retain(|(k, _)| k != CORRELATION_ID);
        self.headers.push((
            CORRELATION_ID.to_string(),
            Bytes::copy_from_slice(id.as_bytes()),
        ));
        self
    }

    /// Marks the record as caused by `cause`, a record the handler read:
    /// it carries `cause`'s correlation id (see
    /// [`ConsumerRecord::correlation_or_place`]) and its W3C `traceparent`
    /// and `tracestate` headers as they are.
    ///
    /// ```no_run
    /// # async fn demo(mut consumer: brook_client::Consumer, producer: brook_client::Producer) -> brook_client::Result<()> {
    /// use brook_client::ProducerRecord;
    /// let placed = consumer.recv().await?;
    /// let reserved = ProducerRecord {
    ///     topic: "inventory-events".into(),
    ///     key: placed.key.clone(),
    ///     value: Some(r#"{"type":"StockReserved"}"#.into()),
    ///     headers: vec![],
    ///     timestamp_ms: None,
    ///     partition: None,
    /// }
    /// .caused_by(&placed);
    /// producer.send_record(reserved).await?.await?;
    /// # Ok(()) }
    /// ```
    pub fn caused_by(self, cause: &ConsumerRecord) -> ProducerRecord {
        let mut r = self.with_correlation_id(&cause.correlation_or_place());
        for name in TRACE_HEADERS {
            r.headers.retain(|(k, _)| k != name);
            if let Some((k, v)) = cause.headers.iter().find(|(k, _)| k == name) {
                r.headers.push((k.clone(), v.clone()));
            }
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn consumed(headers: &[(&str, &str)]) -> ConsumerRecord {
        ConsumerRecord {
            topic: "orders".into(),
            partition: 2,
            offset: 41,
            timestamp_ms: 0,
            key: None,
            value: None,
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), Bytes::from(v.to_string())))
                .collect(),
        }
    }

    fn to_publish(headers: &[(&str, &str)]) -> ProducerRecord {
        ProducerRecord {
            topic: "billing".into(),
            key: None,
            value: None,
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), Bytes::from(v.to_string())))
                .collect(),
            timestamp_ms: None,
            partition: None,
        }
    }

    #[test]
    fn a_caused_record_carries_the_causes_id_and_trace_headers_once() {
        let tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        let cause = consumed(&[
            ("correlation-id", "c-1"),
            ("traceparent", tp),
            ("other", "x"),
        ]);
        let r = to_publish(&[
            ("correlation-id", "stale"),
            ("traceparent", "old"),
            ("kind", "k"),
        ])
        .caused_by(&cause);
        assert_eq!(header(&r.headers, CORRELATION_ID), Some("c-1"));
        assert_eq!(header(&r.headers, "traceparent"), Some(tp));
        assert_eq!(header(&r.headers, "kind"), Some("k"));
        assert_eq!(header(&r.headers, "other"), None, "only the ids travel");
        assert_eq!(
            r.headers
                .iter()
                .filter(|(k, _)| k == CORRELATION_ID)
                .count(),
            1
        );
        assert_eq!(
            r.headers.iter().filter(|(k, _)| k == "traceparent").count(),
            1
        );
    }

    #[test]
    fn the_first_record_of_a_chain_gives_its_place_as_the_id() {
        let cause = consumed(&[]);
        assert_eq!(cause.correlation_id(), None);
        let r = to_publish(&[("traceparent", "old")]).caused_by(&cause);
        assert_eq!(header(&r.headers, CORRELATION_ID), Some("orders/2/41"));
        assert_eq!(
            header(&r.headers, "traceparent"),
            None,
            "the cause had none"
        );
    }
}
