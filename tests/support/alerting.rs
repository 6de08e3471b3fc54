//! Fixtures of the alert tests: clusters, findings, reports, a loaded config, a running
//! dispatcher over a real `StateStore` file.
#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use sgdrift::alert::{AlertMetrics, DeliveryOptions, Dispatcher};
use sgdrift::config::Settings;
use sgdrift::export::report::{ClusterReport, ClusterStatus};
use sgdrift::model::{ClusterId, Finding, Severity};
use sgdrift::state::StateStore;
use tokio_util::sync::CancellationToken;

pub fn cluster(name: &str) -> ClusterId {
    ClusterId { account_id: "111122223333".into(), region: "eu-west-1".into(), name: name.into() }
}

/// An unexpected ingress rule on `group`, opening tcp `port` to `peer`.
pub fn finding(c: &ClusterId, group: &str, port: i32, peer: &str, severity: Severity) -> Finding {
    let rule = format!("ingress tcp {port} from {peer}");
    Finding::test()
        .in_cluster(c)
        .on(group)
        .rule(&rule)
        .severity(severity)
        .reason(&format!("tcp {port} open to {peer}"))
        .build()
}

pub fn report(c: &ClusterId, findings: Vec<Finding>) -> ClusterReport {
    let status = if findings.iter().any(Finding::is_drift) { ClusterStatus::Drift } else { ClusterStatus::Ok };
    ClusterReport {
        account_id: c.account_id.clone(),
        region: c.region.clone(),
        cluster: c.name.clone(),
        endpoint_mode: None,
        style: None,
        status,
        error: None,
        groups: Vec::new(),
        findings,
        flows: Vec::new(),
        owned: Vec::new(),
        warnings: Vec::new(),
        stale: false,
        last_success: None,
    }
}

/// A poll that failed: no findings, an error.
pub fn failed_report(c: &ClusterId) -> ClusterReport {
    let mut r = report(c, Vec::new());
    r.status = ClusterStatus::Error;
    r.error = Some("DescribeSecurityGroups: throttled".into());
    r
}

/// Minutes after a fixed instant: the policy's clock in these tests.
pub fn at(minutes: i64) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-28T10:00:00Z").unwrap().with_timezone(&Utc)
        + chrono::Duration::minutes(minutes)
}

/// Writes `alerts` (TOML of the `[alerts]` tables and `[server]`) into a config file in `dir`
/// with one target, and loads it the way the daemon does.
pub fn settings(dir: &Path, extra: &str) -> Settings {
    let text = format!(
        "[[targets]]\nregions = [\"eu-west-1\"]\n\n[alerts]\nstate_file = \"state.json\"\nrepeat_interval = \"24h\"\n{extra}\n"
    );
    let path = dir.join("sgdrift.toml");
    std::fs::write(&path, text).unwrap();
    sgdrift::config::load(&path).unwrap_or_else(|e| panic!("the test config does not load: {e}"))
}

/// Production timing except a short backoff, so retries after 5xx do not take minutes.
pub fn quick_backoff() -> DeliveryOptions {
    DeliveryOptions {
        initial_backoff: Duration::from_millis(100),
        max_backoff: Duration::from_millis(400),
        idle_recheck: Duration::from_millis(200),
        ..DeliveryOptions::default()
    }
}

pub struct Running {
    pub dispatcher: Arc<Dispatcher>,
    pub store: Arc<StateStore>,
    pub registry: prometheus::Registry,
    pub cancel: CancellationToken,
    pub task: tokio::task::JoinHandle<()>,
}

impl Running {
    pub async fn start(settings: &Settings, store: Arc<StateStore>, options: DeliveryOptions) -> Running {
        let registry = prometheus::Registry::new();
        let metrics = Arc::new(AlertMetrics::register(&registry).unwrap());
        let dispatcher = Arc::new(Dispatcher::with_options(settings, metrics, options).unwrap());
        let cancel = CancellationToken::new();
        let task = tokio::spawn(dispatcher.clone().run(store.clone(), cancel.clone()));
        Running { dispatcher, store, registry, cancel, task }
    }

    /// One poll of one cluster, observed and persisted as the daemon does it.
    pub async fn poll(&self, report: &ClusterReport, poll_ok: bool, now: DateTime<Utc>) {
        self.dispatcher.observe_persisted(&self.store, report, poll_ok, now).await.unwrap();
    }

    pub async fn outbox_len(&self) -> usize {
        self.store.read(|s| s.alerts.outbox.len()).await
    }

    /// Waits (up to a minute, then panics) until every queued notification is gone.
    pub async fn drained(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.outbox_len().await > 0 {
            assert!(Instant::now() < deadline, "the outbox still holds {} entries after 60s", self.outbox_len().await);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The value of a counter or gauge sample with exactly these labels (0 when absent).
    pub fn metric(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        metric(&self.registry, name, labels)
    }

    pub async fn stop(&mut self) {
        self.cancel.cancel();
        (&mut self.task).await.unwrap();
    }
}

pub fn metric(registry: &prometheus::Registry, name: &str, labels: &[(&str, &str)]) -> f64 {
    for family in registry.gather() {
        if family.name() != name {
            continue;
        }
        for m in family.get_metric() {
            let got: Vec<(&str, &str)> = m.get_label().iter().map(|l| (l.name(), l.value())).collect();
            if got.len() == labels.len() && labels.iter().all(|l| got.contains(l)) {
                return match family.get_field_type() {
                    prometheus::proto::MetricType::COUNTER => m.get_counter().get_value(),
                    _ => m.get_gauge().get_value(),
                };
            }
        }
    }
    0.0
}
