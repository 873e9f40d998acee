//! Byte-rate quotas per client, as Kafka has them: a client over its rate
//! is slowed down, not refused. Its produce waits before the append, its
//! fetch or subscription waits before the response goes out, for as long
//! as its rate needs; nothing fails, no client needs retry logic, and the
//! client's own in-flight limit turns the delay into a lower rate.
//!
//! The client is the principal when authentication is on, else the peer's
//! IP address. Each client and direction (produce, fetch) has a token
//! bucket that refills at the rate and holds one second of it, so short
//! bursts pass. A request larger than what the bucket holds goes through
//! and leaves a debt that the next requests wait off.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Deserialize;

/// Which bytes a quota counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Bytes produced (the batches as sent).
    Produce,
    /// Bytes fetched (the responses of Fetch and Subscribe).
    Fetch,
}

/// Rates in bytes per second; `None` is unlimited.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rates {
    /// Produce rate.
    pub produce_bytes_per_sec: Option<u64>,
    /// Fetch rate.
    pub fetch_bytes_per_sec: Option<u64>,
}

impl Rates {
    /// Refuses a rate of 0 (no bytes at all would be a ban, not a quota).
    pub fn check(&self) -> Result<(), String> {
        match (self.produce_bytes_per_sec, self.fetch_bytes_per_sec) {
            (Some(0), _) | (_, Some(0)) => Err("a byte rate must be at least 1".into()),
            _ => Ok(()),
        }
    }

    fn of(&self, d: Direction) -> Option<u64> {
        match d {
            Direction::Produce => self.produce_bytes_per_sec,
            Direction::Fetch => self.fetch_bytes_per_sec,
        }
    }
}

/// The longest one request waits: a single huge request leaves a debt
/// that the following ones wait off instead.
const MAX_DELAY: Duration = Duration::from_secs(30);

struct Bucket {
    rate: f64,
    /// Bytes that may pass now; below zero, a debt.
    tokens: f64,
    last: Instant,
}

/// Every client's buckets.
pub struct Quotas {
    defaults: Rates,
    buckets: Mutex<HashMap<(Direction, String), Bucket>>,
}

impl Quotas {
    /// Quotas with these rates for every client (overrides come per call).
    pub fn new(defaults: Rates) -> Quotas {
        Quotas {
            defaults,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Whether any quota is set (else nothing is counted at all).
    pub fn any(&self, overrides: bool) -> bool {
        overrides || self.defaults != Rates::default()
    }

    /// Counts `bytes` against `client`'s rate (its own `rates` if it has
    /// some, else the defaults) and returns how long the request must wait.
    pub fn charge(
        &self,
        direction: Direction,
        client: &str,
        own: Option<Rates>,
        bytes: usize,
    ) -> Duration {
        let rate = own
            .and_then(|r| r.of(direction))
            .or(self.defaults.of(direction));
        // Rates of 0 are refused where they are read (flags, tokens file).
        let Some(rate) = rate.filter(|r| *r > 0) else {
            return Duration::ZERO;
        };
        let rate = rate as f64;
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        // The map holds one bucket per client seen; stale ones are dropped
        // when it grows, so clients that come and go cannot grow it forever.
        if buckets.len() > 100_000 {
            buckets.retain(|_, b| now.duration_since(b.last) < Duration::from_secs(60));
        }
        let b = buckets
            .entry((direction, client.to_string()))
            .or_insert(Bucket {
                rate,
                tokens: rate,
                last: now,
            });
        let elapsed = now.duration_since(b.last).as_secs_f64();
        // A changed rate (a reload) applies from now on.
        b.rate = rate;
        // The debt is bounded too: one huge request must not slow every
        // request after it for hours.
        b.tokens = ((b.tokens + elapsed * rate).min(rate) - bytes as f64)
            .max(-rate * MAX_DELAY.as_secs_f64());
        b.last = now;
        match b.tokens < 0.0 {
            true => Duration::from_secs_f64(-b.tokens / rate).min(MAX_DELAY),
            false => Duration::ZERO,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rates(produce: u64) -> Rates {
        Rates {
            produce_bytes_per_sec: Some(produce),
            fetch_bytes_per_sec: None,
        }
    }

    #[test]
    fn a_burst_of_one_second_passes_and_the_rest_waits_its_share() {
        let q = Quotas::new(rates(1000));
        assert_eq!(
            q.charge(Direction::Produce, "a", None, 1000),
            Duration::ZERO
        );
        let wait = q.charge(Direction::Produce, "a", None, 500);
        // 500 bytes of debt at 1000 B/s (less what refilled in between).
        assert!(
            wait > Duration::from_millis(400) && wait <= Duration::from_millis(500),
            "{wait:?}"
        );
        assert_eq!(
            q.charge(Direction::Fetch, "a", None, 1 << 30),
            Duration::ZERO,
            "no fetch quota"
        );
        assert_eq!(
            q.charge(Direction::Produce, "b", None, 1000),
            Duration::ZERO,
            "b has its own bucket"
        );
    }

    #[test]
    fn a_clients_own_rates_win_and_no_rate_means_no_wait() {
        let q = Quotas::new(Rates::default());
        assert!(!q.any(false));
        assert_eq!(
            q.charge(Direction::Produce, "a", None, 1 << 30),
            Duration::ZERO
        );
        let slow = Some(rates(100));
        q.charge(Direction::Produce, "a", slow, 100);
        let wait = q.charge(Direction::Produce, "a", slow, 100_000);
        assert_eq!(wait, MAX_DELAY, "capped; the debt stays");
    }
}
