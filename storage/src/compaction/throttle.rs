//! A bound on the cleaner's I/O rate (Kafka's `log.cleaner.io.max.bytes.per.second`).

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Spending beyond this much ahead of the rate waits; the window restarts
/// after an idle gap, so a pass after a quiet hour does not burst.
const WINDOW: Duration = Duration::from_secs(1);

/// Makes whoever spends bytes through it wait so that, over time, no more
/// than `bytes_per_sec` pass. Unlimited when the rate is 0.
#[derive(Debug)]
pub struct Throttle {
    bytes_per_sec: u64,
    state: Mutex<(Instant, u64)>,
}

impl Throttle {
    /// A throttle at `bytes_per_sec` (0: unlimited).
    pub fn new(bytes_per_sec: u64) -> Throttle {
        Throttle {
            bytes_per_sec,
            state: Mutex::new((Instant::now(), 0)),
        }
    }

    /// Counts `bytes` read or written, sleeping first if the rate is ahead.
    pub fn spend(&self, bytes: u64) {
        self.spend_unless(bytes, &|| false);
    }

    /// [`Throttle::spend`], but the wait ends early (within 100 ms) once
    /// `stop` says so: a broker stopping does not wait out a long sleep.
    pub fn spend_unless(&self, bytes: u64, stop: &dyn Fn() -> bool) {
        if self.bytes_per_sec == 0 {
            return;
        }
        let wait = {
            let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
            let (start, spent) = &mut *st;
            let allowed = Duration::from_secs_f64(*spent as f64 / self.bytes_per_sec as f64);
            let elapsed = start.elapsed();
            if elapsed > allowed + WINDOW {
                *start = Instant::now();
                *spent = 0;
            }
            *spent += bytes;
            let due = Duration::from_secs_f64(*spent as f64 / self.bytes_per_sec as f64);
            due.saturating_sub(start.elapsed())
        };
        let until = std::time::Instant::now() + wait;
        loop {
            let left = until.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() || stop() {
                return;
            }
            std::thread::sleep(left.min(Duration::from_millis(100)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rate_makes_spending_take_its_time() {
        // 300 KB at 1 MB/s cannot take less than 300 ms, however fast the machine.
        let slow = Throttle::new(1_000_000);
        let t = Instant::now();
        for _ in 0..3 {
            slow.spend(100_000);
        }
        assert!(
            t.elapsed() >= Duration::from_millis(290),
            "{:?}",
            t.elapsed()
        );
    }
}
