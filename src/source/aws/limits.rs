//! What keeps the source a good neighbour in a shared account: per account and region and per
//! service, a cap on calls in flight and an optional request rate. EC2's `Describe*` calls of an
//! account and region share one token bucket with every other tool that reads EC2 there (the EC2
//! API reference, "Request throttling": 100 tokens, refilled at 20 a second for non-mutating
//! actions), so a large fleet must be able to leave most of it to the others.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::{Semaphore, SemaphorePermit};

/// Spacing of requests at `per_second`, with a burst of one second's worth: the generic cell
/// rate algorithm, on explicit instants so that it is tested without a clock.
#[derive(Debug)]
pub(crate) struct RateLimiter {
    interval: Duration,
    /// How far ahead of now the next free slot may be and still go at once.
    tolerance: Duration,
    /// The theoretical arrival time of the next request.
    next: Option<Instant>,
}

impl RateLimiter {
    pub(crate) fn new(per_second: u32) -> Self {
        let per_second = per_second.max(1);
        let interval = Duration::from_secs(1) / per_second;
        RateLimiter { interval, tolerance: interval * (per_second - 1), next: None }
    }

    /// Takes the next slot for a request wanting to start at `now`: how long it must wait first.
    pub(crate) fn reserve(&mut self, now: Instant) -> Duration {
        let next = self.next.map_or(now, |n| n.max(now));
        let start = next.checked_sub(self.tolerance).map_or(now, |s| s.max(now));
        self.next = Some(next + self.interval);
        start - now
    }
}

/// The gate one service's calls in one account and region pass: at most `concurrency` in
/// flight, at most `per_second` started a second (none: no limit).
#[derive(Debug)]
pub(crate) struct Gate {
    permits: Semaphore,
    rate: Option<Mutex<RateLimiter>>,
}

impl Gate {
    pub(crate) fn new(concurrency: usize, per_second: Option<u32>) -> Self {
        Gate {
            permits: Semaphore::new(concurrency.max(1)),
            rate: per_second.filter(|r| *r > 0).map(|r| Mutex::new(RateLimiter::new(r))),
        }
    }

    /// Waits for a slot; the call runs while the permit is held.
    pub(crate) async fn enter(&self) -> Option<SemaphorePermit<'_>> {
        // The semaphore is never closed, so `acquire` fails never; without a permit the call
        // still runs, uncapped, rather than not at all.
        let permit = self.permits.acquire().await.ok();
        let wait = self.rate.as_ref().map(|r| r.lock().unwrap_or_else(|e| e.into_inner()).reserve(Instant::now()));
        if let Some(wait) = wait.filter(|w| !w.is_zero()) {
            tokio::time::sleep(wait).await;
        }
        permit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (requests at this offset in ms, the waits they get in ms).
    fn waits(per_second: u32, arrivals: &[u64]) -> Vec<u64> {
        let t0 = Instant::now();
        let mut limiter = RateLimiter::new(per_second);
        arrivals.iter().map(|ms| limiter.reserve(t0 + Duration::from_millis(*ms)).as_millis() as u64).collect()
    }

    #[test]
    fn a_burst_of_one_seconds_worth_goes_at_once_and_the_rest_is_spaced_at_the_rate() {
        let table: [(u32, &[u64], &[u64]); 5] = [
            // Four at once under 4/s go; the fifth waits for the first slot to free (250 ms).
            (4, &[0, 0, 0, 0, 0, 0], &[0, 0, 0, 0, 250, 500]),
            // One a second: every request after the first waits its turn.
            (1, &[0, 0, 0], &[0, 1000, 2000]),
            // Requests that come slower than the rate never wait.
            (10, &[0, 100, 200, 300, 1000], &[0, 0, 0, 0, 0]),
            // After a quiet spell the burst is available again.
            (2, &[0, 0, 0, 5000, 5000, 5000], &[0, 0, 500, 0, 0, 500]),
            // Zero means one a second rather than dividing by zero.
            (0, &[0, 0], &[0, 1000]),
        ];
        for (rate, arrivals, want) in table {
            assert_eq!(waits(rate, arrivals), want, "{rate}/s, arrivals {arrivals:?}");
        }
    }
}
