//! Connection limits of the HTTP server: a header-read timeout, an idle timeout and a cap on open
//! connections. A client that opens connections and never finishes a request must not exhaust
//! the process's file descriptors (state writes and AWS calls need them too) nor keep a scrape of
//! `/metrics` out: when the cap is reached, the connection that has waited longest without
//! sending a request is closed to make room for the new one, so the newest client always gets
//! in, and a connection whose request is being answered is never closed.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus::{IntCounterVec, IntGauge, Opts, Registry};
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// The limits of `[server]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// From accepting a connection to the end of its first request's headers.
    pub header_read_timeout: Duration,
    /// From the end of a response to the end of the next request's headers (keep-alive).
    pub idle_timeout: Duration,
    /// Open connections at most; beyond it, the stalest waiting connection is closed.
    pub max_connections: usize,
}

/// Descriptors kept for everything but HTTP clients: AWS and webhook connections (a few per
/// `poll.concurrency` slot and sink), state and baseline files, the runtime's own (see
/// docs/operations.md for the budget).
pub const FD_RESERVE: u64 = 256;
/// The cap never goes below this, however low the descriptor limit.
const MIN_CONNECTIONS: usize = 16;

impl Limits {
    /// These limits under a soft descriptor limit of `nofile`: the connection cap lowered so that
    /// HTTP clients leave [`FD_RESERVE`] descriptors to the rest, with the reason when it was.
    pub fn fit(self, nofile: Option<u64>) -> (Limits, Option<String>) {
        let Some(nofile) = nofile else { return (self, None) };
        let room = usize::try_from(nofile.saturating_sub(FD_RESERVE)).unwrap_or(usize::MAX).max(MIN_CONNECTIONS);
        if self.max_connections <= room {
            return (self, None);
        }
        let why = format!(
            "server.max_connections = {} does not fit the open-files limit of {nofile} ({FD_RESERVE} are kept for AWS, webhooks and the state): serving at most {room} connections; raise LimitNOFILE (ulimit -n) to {} or more",
            self.max_connections,
            self.max_connections as u64 + FD_RESERVE
        );
        (Limits { max_connections: room, ..self }, Some(why))
    }
}

/// The soft limit on open files of this process (Linux: from /proc/self/limits).
pub fn nofile_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// Where a connection is in its life; what it may be closed for depends on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    /// Accepted, no complete request yet: subject to the header-read timeout.
    Waiting,
    /// Between requests of a keep-alive connection: subject to the idle timeout.
    Idle,
    /// A request is being answered: never closed by the limits.
    Busy,
}

/// Why the server closed a connection, as the `reason` label of
/// `sgdrift_http_connections_closed_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closed {
    HeaderTimeout,
    IdleTimeout,
    Evicted,
}

impl Closed {
    pub const ALL: [Closed; 3] = [Closed::HeaderTimeout, Closed::IdleTimeout, Closed::Evicted];

    pub fn as_str(self) -> &'static str {
        match self {
            Closed::HeaderTimeout => "header_timeout",
            Closed::IdleTimeout => "idle_timeout",
            Closed::Evicted => "evicted",
        }
    }
}

/// When a connection in `phase` since `since` is closed, if nothing happens on it before.
pub fn deadline(phase: Phase, since: Instant, limits: &Limits) -> Option<(Instant, Closed)> {
    match phase {
        Phase::Waiting => Some((since + limits.header_read_timeout, Closed::HeaderTimeout)),
        Phase::Idle => Some((since + limits.idle_timeout, Closed::IdleTimeout)),
        Phase::Busy => None,
    }
}

/// The connection to close to make room: waiting ones before idle ones, the oldest first;
/// never a busy one.
pub fn victim(conns: impl IntoIterator<Item = (u64, Phase, Instant)>) -> Option<u64> {
    conns
        .into_iter()
        .filter(|(_, phase, _)| *phase != Phase::Busy)
        .min_by_key(|(id, phase, since)| (*phase, *since, *id))
        .map(|(id, _, _)| id)
}

/// One open connection, as the accept loop and its own task see it.
pub struct Conn {
    id: u64,
    /// Phase, since when, and requests in flight (HTTP/1 answers one at a time, but a handler
    /// may still be finishing when the next request is read).
    phase: Mutex<(Phase, Instant, usize)>,
    changed: Notify,
    evict: CancellationToken,
}

impl Conn {
    pub fn phase(&self) -> (Phase, Instant) {
        let guard = self.phase.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        (guard.0, guard.1)
    }

    /// A request's headers are in; the returned guard marks the end of its handling.
    pub fn begin(self: &Arc<Self>) -> Busy {
        {
            let mut guard = self.phase.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            guard.2 += 1;
            *guard = (Phase::Busy, Instant::now(), guard.2);
        }
        self.changed.notify_one();
        Busy(Arc::clone(self))
    }

    /// Resolves when the connection's phase changes (then re-read its deadline).
    pub async fn changed(&self) {
        self.changed.notified().await;
    }

    /// Resolves when the accept loop closes this connection to make room.
    pub async fn evicted(&self) {
        self.evict.cancelled().await;
    }
}

/// Held while a request is handled.
pub struct Busy(Arc<Conn>);

impl Drop for Busy {
    fn drop(&mut self) {
        {
            let mut guard = self.0.phase.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            guard.2 = guard.2.saturating_sub(1);
            if guard.2 == 0 {
                *guard = (Phase::Idle, Instant::now(), 0);
            }
        }
        self.0.changed.notify_one();
    }
}

/// The open connections, and the metrics about them.
pub struct Table {
    conns: Mutex<BTreeMap<u64, Arc<Conn>>>,
    next: AtomicU64,
    pub metrics: ServerMetrics,
}

impl Table {
    pub fn new(metrics: ServerMetrics) -> Self {
        Table { conns: Mutex::new(BTreeMap::new()), next: AtomicU64::new(0), metrics }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Arc<Conn>>> {
        self.conns.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// Registers a newly accepted connection.
    pub fn open(&self) -> Arc<Conn> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let conn = Arc::new(Conn {
            id,
            phase: Mutex::new((Phase::Waiting, Instant::now(), 0)),
            changed: Notify::new(),
            evict: CancellationToken::new(),
        });
        let mut conns = self.lock();
        conns.insert(id, Arc::clone(&conn));
        self.metrics.open.set(conns.len() as i64);
        conn
    }

    pub fn close(&self, conn: &Conn, why: Option<Closed>) {
        let mut conns = self.lock();
        conns.remove(&conn.id);
        self.metrics.open.set(conns.len() as i64);
        if let Some(why) = why {
            self.metrics.closed.with_label_values(&[why.as_str()]).inc();
        }
    }

    /// Closes connections until fewer than `keep` remain, stalest waiting first; returns how
    /// many it closed (fewer when every other connection is busy).
    pub fn make_room(&self, keep: usize) -> usize {
        let mut conns = self.lock();
        let mut evicted = 0;
        while conns.len() >= keep.max(1) {
            let Some(id) = victim(conns.values().map(|c| {
                let (phase, since) = c.phase();
                (c.id, phase, since)
            })) else {
                break;
            };
            if let Some(conn) = conns.remove(&id) {
                conn.evict.cancel();
                evicted += 1;
            }
        }
        self.metrics.open.set(conns.len() as i64);
        if evicted > 0 {
            self.metrics.closed.with_label_values(&[Closed::Evicted.as_str()]).inc_by(evicted as u64);
        }
        evicted
    }
}

/// `sgdrift_http_connections` and `sgdrift_http_connections_closed_total{reason}`.
#[derive(Clone)]
pub struct ServerMetrics {
    pub open: IntGauge,
    pub closed: IntCounterVec,
}

impl ServerMetrics {
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let open = IntGauge::new("sgdrift_http_connections", "Open connections to the HTTP server.")?;
        let closed = IntCounterVec::new(
            Opts::new(
                "sgdrift_http_connections_closed_total",
                "Connections the HTTP server closed on its own: header_timeout (no complete request in time), idle_timeout (keep-alive unused), evicted (closed to stay under server.max_connections).",
            ),
            &["reason"],
        )?;
        for why in Closed::ALL {
            closed.with_label_values(&[why.as_str()]);
        }
        registry.register(Box::new(open.clone()))?;
        registry.register(Box::new(closed.clone()))?;
        Ok(ServerMetrics { open, closed })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: 2,
        }
    }

    #[test]
    fn each_phase_has_its_own_deadline_and_a_busy_connection_has_none() {
        let t0 = Instant::now();
        let l = limits();
        assert_eq!(deadline(Phase::Waiting, t0, &l), Some((t0 + l.header_read_timeout, Closed::HeaderTimeout)));
        assert_eq!(deadline(Phase::Idle, t0, &l), Some((t0 + l.idle_timeout, Closed::IdleTimeout)));
        assert_eq!(deadline(Phase::Busy, t0, &l), None);
    }

    #[test]
    fn the_victim_is_the_oldest_waiting_connection_then_the_oldest_idle_one_never_a_busy_one() {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        let cases: &[(&[(u64, Phase, Instant)], Option<u64>)] = &[
            (&[], None),
            (&[(1, Phase::Busy, t0)], None),
            (&[(1, Phase::Idle, t0), (2, Phase::Waiting, t0 + s)], Some(2)),
            (&[(1, Phase::Waiting, t0 + s), (2, Phase::Waiting, t0)], Some(2)),
            (&[(1, Phase::Busy, t0), (2, Phase::Idle, t0 + s), (3, Phase::Idle, t0 + s + s)], Some(2)),
        ];
        for (conns, expected) in cases {
            assert_eq!(victim(conns.iter().copied()), *expected, "{conns:?}");
        }
    }

    #[tokio::test]
    async fn making_room_closes_waiting_connections_and_keeps_the_busy_one() {
        let table = Table::new(ServerMetrics::register(&Registry::new()).unwrap());
        let busy = table.open();
        let _guard = busy.begin();
        let waiting = [table.open(), table.open()];
        assert_eq!(table.make_room(2), 2);
        assert!(waiting.iter().all(|c| c.evict.is_cancelled()));
        assert!(!busy.evict.is_cancelled());
        assert_eq!(table.make_room(1), 0, "a busy connection is never closed");
        assert_eq!(table.metrics.closed.with_label_values(&["evicted"]).get(), 2);
        assert_eq!(table.metrics.open.get(), 1);
    }

    #[test]
    fn the_connection_cap_is_lowered_to_leave_the_reserve_under_the_descriptor_limit() {
        let cases: &[(usize, Option<u64>, usize, bool)] = &[
            (512, None, 512, false),
            (512, Some(1024), 512, false),
            (512, Some(768), 512, false),
            (512, Some(700), 444, true),
            (512, Some(100), MIN_CONNECTIONS, true),
        ];
        for (max, nofile, expected, warned) in cases {
            let (fitted, why) = Limits { max_connections: *max, ..limits() }.fit(*nofile);
            assert_eq!((fitted.max_connections, why.is_some()), (*expected, *warned), "{max} under {nofile:?}");
        }
        assert!(nofile_limit().is_some_and(|n| n > 0), "Linux tells the limit");
    }

    #[test]
    fn a_finished_request_leaves_the_connection_idle() {
        let table = Table::new(ServerMetrics::register(&Registry::new()).unwrap());
        let conn = table.open();
        assert_eq!(conn.phase().0, Phase::Waiting);
        let guard = conn.begin();
        assert_eq!(conn.phase().0, Phase::Busy);
        drop(guard);
        assert_eq!(conn.phase().0, Phase::Idle);
    }
}
