//! Small timing values of delivery: exponential backoff with jitter, the per-sink pacer, and
//! the `Retry-After` header in both its forms. Time is passed in, so each is tested as a value.

use std::time::{Duration, SystemTime};

use tokio::time::Instant;

/// Exponential from `initial`, doubling per retry, capped at `max`, with "equal jitter": at least
/// half the step, so retries from many daemons spread without ever hurrying.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
}

impl Backoff {
    /// The delay before retry number `retry` (0 for the first), `jitter` in `0.0..=1.0`.
    pub fn delay(&self, retry: u32, jitter: f64) -> Duration {
        let step = self.initial.as_secs_f64() * 2f64.powi(retry.min(30) as i32);
        let step = step.min(self.max.as_secs_f64());
        Duration::from_secs_f64(step / 2.0 + step / 2.0 * jitter.clamp(0.0, 1.0))
    }

    /// [`delay`](Self::delay) with a random jitter.
    pub fn next(&self, retry: u32) -> Duration {
        self.delay(retry, rand::random::<f64>())
    }
}

/// At most one request per `interval`, measured from the end of the previous request: the
/// receiver then sees at most one message per interval however long connecting took.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pacer {
    interval: Duration,
    last_end: Option<Instant>,
}

impl Pacer {
    pub fn new(interval: Duration) -> Self {
        Pacer { interval, last_end: None }
    }

    /// How long to wait at `now` before the next request may start.
    pub fn wait(&self, now: Instant) -> Duration {
        self.last_end.map_or(Duration::ZERO, |end| (end + self.interval).saturating_duration_since(now))
    }

    /// A request ended at `end`.
    pub fn sent(&mut self, end: Instant) {
        self.last_end = Some(end);
    }
}

/// `Retry-After` as delta-seconds (`120`) or an HTTP-date (`Wed, 21 Oct 2026 07:28:00 GMT`),
/// relative to `now`; a date in the past means "now". `None` when it is neither.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_the_initial_delay_and_stops_at_the_cap() {
        let b = Backoff { initial: Duration::from_secs(1), max: Duration::from_secs(60) };
        for (retry, step) in [(0u32, 1.0f64), (1, 2.0), (2, 4.0), (5, 32.0), (6, 60.0), (40, 60.0)] {
            assert_eq!(b.delay(retry, 0.0).as_secs_f64(), step / 2.0, "retry {retry}, no jitter");
            assert_eq!(b.delay(retry, 1.0).as_secs_f64(), step, "retry {retry}, full jitter");
            let random = b.next(retry).as_secs_f64();
            assert!(random >= step / 2.0 && random <= step, "retry {retry}: {random}s");
        }
    }

    #[test]
    fn the_pacer_spaces_requests_from_the_end_of_the_previous_one() {
        let start = Instant::now();
        let mut p = Pacer::new(Duration::from_secs(1));
        assert_eq!(p.wait(start), Duration::ZERO, "the first request waits for nothing");
        p.sent(start + Duration::from_millis(300));
        let cases = [(0, 1300), (300, 1000), (800, 500), (1300, 0), (5000, 0)];
        for (after_ms, wait_ms) in cases {
            assert_eq!(
                p.wait(start + Duration::from_millis(after_ms)),
                Duration::from_millis(wait_ms),
                "at {after_ms} ms"
            );
        }
    }

    #[test]
    fn retry_after_is_read_in_both_of_its_forms() {
        let now = httpdate::parse_http_date("Wed, 21 Oct 2026 07:28:00 GMT").unwrap();
        let cases = [
            ("120", Some(120)),
            (" 2 ", Some(2)),
            ("Wed, 21 Oct 2026 07:28:30 GMT", Some(30)),
            ("Wed, 21 Oct 2026 07:20:00 GMT", Some(0)),
            ("soon", None),
            ("-1", None),
            ("", None),
        ];
        for (value, want) in cases {
            assert_eq!(parse_retry_after(value, now), want.map(Duration::from_secs), "{value:?}");
        }
    }
}
