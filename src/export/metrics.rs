//! The Prometheus metrics of design.md §3: the daemon's own instrumentation in one owned
//! registry (registered once, updated as things happen; the AWS call counters are
//! [`AwsCallMetrics`], handed to the source), and the drift series, rendered collector-style from the current state at every
//! scrape so that a vanished cluster or group disappears. No sample carries a timestamp; no
//! label carries free text.
//!
//! The drift series are written straight in the text format rather than through a prometheus
//! `Collector`: for a 1,000-cluster fleet (~19,000 series) building the crate's protos and
//! encoding them took 27 ms per scrape in release, against a 10 ms target (benches/fleet.rs).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use prometheus::{
    Encoder, Gauge, GaugeVec, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

use crate::flows::FlowStatus;
use crate::source::AwsCallMetrics;
use crate::state::{ClusterState, StateStore};

/// Buckets of a whole target poll (ecosystem.md §1.5, with two more below 0.5 s for the files
/// source and small accounts).
pub const POLL_BUCKETS: &[f64] = &[0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0];
/// Buckets of the detection latency (change event time → finding recorded), around the 3 s target
/// of design.md §5 with room for CloudTrail's own delivery delay.
pub const DETECTION_BUCKETS: &[f64] = &[0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0];
/// The outcomes of `sgdrift_events_received_total`, each exported from the start at 0.
pub const EVENT_OUTCOMES: [&str; 4] = ["matched", "unknown_group", "ignored", "malformed"];
/// A rendered scrape: the body and the Content-Type the encoder says it is.
pub struct Rendered {
    pub content_type: String,
    pub body: Vec<u8>,
}

/// Every metric of the daemon, in one registry owned here.
pub struct Metrics {
    registry: Registry,
    store: Arc<StateStore>,
    scratch: std::sync::Mutex<Vec<String>>,
    last_size: AtomicUsize,
    /// AWS requests, errors and latency, recorded by the source it is handed to.
    pub aws_calls: AwsCallMetrics,
    /// One poll of one (target, region), from the permit to the end of evaluation.
    pub poll_duration: Histogram,
    /// Cluster polls, by account and region.
    pub polls: IntCounterVec,
    /// Cluster polls that failed (a target failure counts once per cluster it hid).
    pub poll_failures: IntCounterVec,
    /// Ticks skipped because the previous poll of the same target overran its interval.
    pub polls_skipped: IntCounter,
    pub config_reload_successful: IntGauge,
    pub config_reload_success_timestamp: Gauge,
    pub state_write_failures: IntCounter,
    /// 0 from a failed state write until the next successful one; read from the store at scrape.
    state_write_ok: IntGauge,
    /// Change-feed messages by outcome (`EVENT_OUTCOMES`).
    pub events_received: IntCounterVec,
    /// From a change event's time to its re-poll recorded in the state.
    pub detection_latency: Histogram,
    /// Exported only while a feed runs (no labels, created by `events_feed_receiving`).
    events_last_receive: GaugeVec,
}

impl Metrics {
    /// Registers everything; `store` is read at every scrape for the drift series.
    pub fn new(store: Arc<StateStore>) -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let build = IntGaugeVec::new(
            Opts::new("sgdrift_build_info", "Always 1; the version of sgdrift that is running."),
            &["version"],
        )?;
        build.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        registry.register(Box::new(build))?;

        let poll_duration = Histogram::with_opts(
            HistogramOpts::new(
                "sgdrift_poll_duration_seconds",
                "Duration of one poll of one configured target in one region: source reads and evaluation.",
            )
            .buckets(POLL_BUCKETS.to_vec()),
        )?;
        let polls = IntCounterVec::new(
            Opts::new("sgdrift_polls_total", "Cluster polls attempted, by account and region."),
            &["account_id", "region"],
        )?;
        let poll_failures = IntCounterVec::new(
            Opts::new(
                "sgdrift_poll_failures_total",
                "Cluster polls that failed, by account and region (a failed target counts once per cluster it hid).",
            ),
            &["account_id", "region"],
        )?;
        let polls_skipped = IntCounter::new(
            "sgdrift_polls_skipped_total",
            "Scheduled polls skipped because the previous poll of the same target was still running.",
        )?;
        let config_reload_successful = IntGauge::new(
            "sgdrift_config_last_reload_successful",
            "1 if the last load of the configuration and its baselines succeeded, 0 if it failed and the previous one is still in use.",
        )?;
        let config_reload_success_timestamp = Gauge::new(
            "sgdrift_config_last_reload_success_timestamp_seconds",
            "Unix time of the last successful load of the configuration.",
        )?;
        let state_write_failures = IntCounter::new(
            "sgdrift_state_write_failures_total",
            "Writes of the state file that failed (the state is kept in memory and written again).",
        )?;
        registry.register(Box::new(poll_duration.clone()))?;
        registry.register(Box::new(polls.clone()))?;
        registry.register(Box::new(poll_failures.clone()))?;
        registry.register(Box::new(polls_skipped.clone()))?;
        registry.register(Box::new(config_reload_successful.clone()))?;
        registry.register(Box::new(config_reload_success_timestamp.clone()))?;
        registry.register(Box::new(state_write_failures.clone()))?;
        let state_write_ok = IntGauge::new(
            "sgdrift_state_last_write_successful",
            "1 if the last write of the state file succeeded (or none was due yet), 0 if it failed; /readyz is 503 meanwhile.",
        )?;
        registry.register(Box::new(state_write_ok.clone()))?;
        let aws_calls = AwsCallMetrics::register(&registry)?;
        let (events_received, detection_latency, events_last_receive) = event_metrics(&registry)?;
        #[cfg(target_os = "linux")]
        registry.register(Box::new(prometheus::process_collector::ProcessCollector::for_self()))?;

        Ok(Metrics {
            registry,
            store,
            scratch: std::sync::Mutex::new(Vec::new()),
            last_size: AtomicUsize::new(0),
            aws_calls,
            poll_duration,
            polls,
            poll_failures,
            polls_skipped,
            config_reload_successful,
            config_reload_success_timestamp,
            state_write_failures,
            state_write_ok,
            events_received,
            detection_latency,
            events_last_receive,
        })
    }

    /// One change-feed message handled, with its outcome (one of `EVENT_OUTCOMES`).
    pub fn event_received(&self, outcome: &str) {
        self.events_received.with_label_values(&[outcome]).inc();
    }

    /// The feed received from its queue (or started): the stalled-feed alert measures from here.
    pub fn events_feed_receiving(&self, now: DateTime<Utc>) {
        self.events_last_receive.with_label_values::<&str>(&[]).set(unix_seconds(now));
    }

    /// For other parts to register their own metrics (the alert dispatcher's).
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Records the outcome of a config load (at start and on every SIGHUP).
    pub fn config_loaded(&self, ok: bool, now: DateTime<Utc>) {
        self.config_reload_successful.set(i64::from(ok));
        if ok {
            self.config_reload_success_timestamp.set(unix_seconds(now));
        }
    }

    /// Counts one cluster poll of `account`/`region`. Its failure counter is created with it, at
    /// 0, so that `rate()` and the alert rules see the first failure.
    pub fn poll_recorded(&self, account: &str, region: &str, ok: bool) {
        self.polls.with_label_values(&[account, region]).inc();
        let failures = self.poll_failures.with_label_values(&[account, region]);
        if !ok {
            failures.inc();
        }
    }

    /// The Prometheus text exposition of everything, with the encoder's Content-Type.
    pub fn render(&self) -> Result<Rendered, prometheus::Error> {
        self.state_write_ok.set(i64::from(self.store.write_error().is_none()));
        let encoder = TextEncoder::new();
        let families = self.registry.gather();
        // Sized like the last scrape, so the body is not regrown on the way.
        let mut body = String::with_capacity(self.last_size.load(Ordering::Relaxed) + 16 * 1024);
        encoder.encode_utf8(&families, &mut body)?;
        {
            let mut scratch = self.scratch.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            self.store.read_now(|state| render_drift_with(state.clusters.values(), &mut scratch, &mut body));
        }
        self.last_size.store(body.len(), Ordering::Relaxed);
        Ok(Rendered { content_type: encoder.format_type().to_string(), body: body.into_bytes() })
    }
}

/// The change feed's metrics (design.md §3): outcomes at 0 from the start, the latency histogram,
/// and the last successful receive, exported only once a feed runs so that a daemon without a
/// queue never looks like a stalled feed.
fn event_metrics(registry: &Registry) -> Result<(IntCounterVec, Histogram, GaugeVec), prometheus::Error> {
    let received = IntCounterVec::new(
        Opts::new(
            "sgdrift_events_received_total",
            "Change-feed messages handled, by outcome: matched (a cluster was re-polled), unknown_group (no cluster uses its groups), ignored (a call that changes nothing sgdrift reads), malformed (not a CloudTrail event; deleted).",
        ),
        &["outcome"],
    )?;
    for outcome in EVENT_OUTCOMES {
        received.with_label_values(&[outcome]);
    }
    let latency = Histogram::with_opts(
        HistogramOpts::new(
            "sgdrift_detection_latency_seconds",
            "From a change event's time (CloudTrail eventTime) to the re-poll of its clusters recorded in the state.",
        )
        .buckets(DETECTION_BUCKETS.to_vec()),
    )?;
    let last = GaugeVec::new(
        Opts::new(
            "sgdrift_events_last_receive_success_timestamp_seconds",
            "Unix time of the change feed's last successful ReceiveMessage (or of its start); absent without a feed.",
        ),
        &[],
    )?;
    registry.register(Box::new(received.clone()))?;
    registry.register(Box::new(latency.clone()))?;
    registry.register(Box::new(last.clone()))?;
    Ok((received, latency, last))
}

fn unix_seconds(t: DateTime<Utc>) -> f64 {
    t.timestamp_millis() as f64 / 1000.0
}

const IDS: [&str; 3] = ["account_id", "region", "eks_cluster"];

/// The drift families, in the order they are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    ClusterInfo,
    SecurityGroupInfo,
    Findings,
    FindingsSuppressed,
    SecurityGroupDrifted,
    DriftFirstSeen,
    RequiredFlowOpen,
    PollSuccess,
    LastSuccessfulPoll,
}

impl Family {
    const ALL: [Family; 9] = [
        Family::ClusterInfo,
        Family::SecurityGroupInfo,
        Family::Findings,
        Family::FindingsSuppressed,
        Family::SecurityGroupDrifted,
        Family::DriftFirstSeen,
        Family::RequiredFlowOpen,
        Family::PollSuccess,
        Family::LastSuccessfulPoll,
    ];

    /// The name, help and labels (after the cluster identity) of the family.
    fn describe(self) -> (&'static str, &'static str, &'static [&'static str]) {
        match self {
            Family::ClusterInfo => (
                "sgdrift_cluster_info",
                "Always 1 per known cluster; its endpoint mode and management style (cached from the last successful poll).",
                &["endpoint_mode", "style"],
            ),
            Family::SecurityGroupInfo => (
                "sgdrift_security_group_info",
                "Always 1 per security group of a cluster, with its role (cached from the last successful poll).",
                &["security_group_id", "role"],
            ),
            Family::Findings => (
                "sgdrift_findings",
                "Unsuppressed drift findings by group role, kind and severity (cached from the last successful poll; only non-zero counts are exposed).",
                &["role", "kind", "severity"],
            ),
            Family::FindingsSuppressed => (
                "sgdrift_findings_suppressed",
                "Findings suppressed by a configured exception, by group role, kind and severity (cached; only non-zero counts are exposed).",
                &["role", "kind", "severity"],
            ),
            Family::SecurityGroupDrifted => (
                "sgdrift_security_group_drifted",
                "1 if the security group has unsuppressed drift findings, else 0 (cached from the last successful poll).",
                &["security_group_id", "role"],
            ),
            Family::DriftFirstSeen => (
                "sgdrift_security_group_drift_first_seen_timestamp_seconds",
                "Unix time the oldest current drift finding of the security group was first seen; absent when it has none (cached).",
                &["security_group_id", "role"],
            ),
            Family::RequiredFlowOpen => (
                "sgdrift_required_flow_open",
                "0 if the required flow is closed for some endpoint of the cluster, else 1; a flow sgdrift cannot judge (a route it has no data for, status unknown in the report) is not closed (cached from the last successful poll).",
                &["flow"],
            ),
            Family::PollSuccess => (
                "sgdrift_cluster_poll_success",
                "1 if the last poll of the cluster succeeded, 0 if it failed (the findings are then those of the last success).",
                &[],
            ),
            Family::LastSuccessfulPoll => (
                "sgdrift_cluster_last_successful_poll_timestamp_seconds",
                "Unix time of the last successful poll of the cluster.",
                &[],
            ),
        }
    }
}

/// Writes every drift family for `clusters` in the Prometheus text format (0.0.4), families in
/// the order of [`Family::ALL`], clusters in the order given; empty families are left out,
/// as the registry does.
pub fn render_drift<'a>(clusters: impl Iterator<Item = &'a ClusterState>, out: &mut String) {
    render_drift_with(clusters, &mut Vec::new(), out);
}

/// As [`render_drift`], with `scratch` for the per-family bodies: kept between scrapes, its
/// buffers are not grown (and faulted in) again every time.
fn render_drift_with<'a>(
    clusters: impl Iterator<Item = &'a ClusterState>,
    scratch: &mut Vec<String>,
    out: &mut String,
) {
    scratch.resize_with(Family::ALL.len(), String::new);
    let bodies = scratch;
    for body in bodies.iter_mut() {
        body.clear();
    }
    for cluster in clusters {
        render_cluster(cluster, bodies);
    }
    for (family, body) in Family::ALL.iter().zip(bodies.iter()) {
        if body.is_empty() {
            continue;
        }
        let (name, help, _) = family.describe();
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} gauge");
        out.push_str(body);
    }
}

/// Appends one cluster's samples to the bodies of the families, indexed as [`Family::ALL`].
fn render_cluster(cluster: &ClusterState, bodies: &mut [String]) {
    let report = &cluster.report;
    let mut ids = String::with_capacity(96);
    for (i, (name, value)) in IDS.iter().zip([&report.account_id, &report.region, &report.cluster]).enumerate() {
        if i > 0 {
            ids.push(',');
        }
        label_into(&mut ids, name, value);
    }
    // `values` are those of the family's labels, in their order.
    let mut sample = |family: Family, values: &[&str], value: f64| {
        let (name, _, labels) = family.describe();
        let out = &mut bodies[family as usize];
        out.push_str(name);
        out.push('{');
        out.push_str(&ids);
        for (label, v) in labels.iter().zip(values) {
            out.push(',');
            label_into(out, label, v);
        }
        let _ = writeln!(out, "}} {value}");
    };

    let mode = report.endpoint_mode.map_or("", |m| m.as_str());
    let style = report.style.map_or("", |s| s.as_str());
    sample(Family::ClusterInfo, &[mode, style], 1.0);

    let mut counts: BTreeMap<(bool, &str, &str, &str), u64> = BTreeMap::new();
    let mut drifted: BTreeMap<&str, Option<DateTime<Utc>>> = BTreeMap::new();
    for f in &report.findings {
        let key = (f.is_drift(), f.role.as_str(), f.kind.as_str(), f.severity.as_str());
        *counts.entry(key).or_default() += 1;
        if f.is_drift() {
            let seen = cluster.first_seen.get(&f.id).copied();
            let oldest = drifted.entry(f.group_id.as_str()).or_insert(seen);
            if let Some(s) = seen {
                *oldest = Some(oldest.map_or(s, |o| o.min(s)));
            }
        }
    }
    for ((drift, role, kind, severity), n) in counts {
        let family = if drift { Family::Findings } else { Family::FindingsSuppressed };
        sample(family, &[role, kind, severity], n as f64);
    }

    for g in &report.groups {
        let labels = [g.id.as_str(), g.role.as_str()];
        sample(Family::SecurityGroupInfo, &labels, 1.0);
        let state = drifted.get(g.id.as_str());
        sample(Family::SecurityGroupDrifted, &labels, if state.is_some() { 1.0 } else { 0.0 });
        if let Some(Some(first)) = state {
            sample(Family::DriftFirstSeen, &labels, unix_seconds(*first));
        }
    }

    let mut flows: BTreeMap<&str, bool> = BTreeMap::new();
    for flow in &report.flows {
        let open = flows.entry(flow.name.as_str()).or_insert(true);
        // `unknown` is never `closed` (design.md §2): it must not page anyone.
        *open &= flow.status != FlowStatus::Closed;
    }
    for (name, open) in flows {
        sample(Family::RequiredFlowOpen, &[name], if open { 1.0 } else { 0.0 });
    }

    sample(Family::PollSuccess, &[], if cluster.poll_ok() { 1.0 } else { 0.0 });
    if let Some(t) = report.last_success {
        sample(Family::LastSuccessfulPoll, &[], unix_seconds(t));
    }
}

/// `name="value"` with the value escaped as the text format wants (backslash, quote, newline).
fn label_into(out: &mut String, name: &str, value: &str) {
    out.push_str(name);
    out.push_str("=\"");
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::export::report::{ClusterReport, ClusterStatus, FlowReport, GroupRef};
    use crate::model::{EndpointMode, Finding, Role, Style};
    use crate::state::{ClusterState, Origin, PersistedState};

    const IDS: &str = r#"account_id="111122223333",region="eu-west-1",eks_cluster="prod""#;

    fn finding(id: &str, group: &str, role: Role, suppressed: Option<&str>) -> Finding {
        let f = Finding::test().critical().id(id).on(group).role(role).reason("SSH open to the internet");
        match suppressed {
            Some(by) => f.suppressed_by(by),
            None => f,
        }
        .build()
    }

    fn flow(name: &str, node_group: &str, status: FlowStatus) -> FlowReport {
        let name = crate::model::FlowName::parse(name).expect("flow name");
        FlowReport { name, status, detail: String::new(), node_group: Some(node_group.into()) }
    }

    fn cluster(poll_ok: bool) -> ClusterState {
        let t = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
        ClusterState {
            report: ClusterReport {
                account_id: "111122223333".into(),
                region: "eu-west-1".into(),
                cluster: "prod".into(),
                endpoint_mode: Some(EndpointMode::Private),
                style: Some(Style::Eksctl),
                status: ClusterStatus::Drift,
                error: None,
                groups: vec![
                    GroupRef { id: "sg-0aaaaaaaaaaaaaaaa".into(), name: "eks-cluster-sg".into(), role: Role::Cluster },
                    GroupRef { id: "sg-0bbbbbbbbbbbbbbbb".into(), name: "nodes".into(), role: Role::Node },
                ],
                findings: vec![
                    finding("f-node-1", "sg-0bbbbbbbbbbbbbbbb", Role::Node, None),
                    finding("f-node-2", "sg-0bbbbbbbbbbbbbbbb", Role::Node, None),
                    finding("f-cluster", "sg-0aaaaaaaaaaaaaaaa", Role::Cluster, Some("bastion until 2027")),
                ],
                flows: vec![
                    flow("dns", "ng-a", FlowStatus::Open),
                    flow("dns", "ng-b", FlowStatus::Closed),
                    flow("kubelet", "ng-a", FlowStatus::Open),
                    flow("aws-apis", "ng-a", FlowStatus::Unknown),
                ],
                owned: Vec::new(),
                warnings: vec![],
                stale: !poll_ok,
                last_success: Some(t("2026-11-28T10:00:00Z")),
            },
            first_seen: BTreeMap::from([
                ("f-node-1".to_string(), t("2026-11-27T10:00:00Z")),
                ("f-node-2".to_string(), t("2026-11-26T10:00:00Z")),
                ("f-cluster".to_string(), t("2026-11-25T10:00:00Z")),
            ]),
            origin: Origin { region: "eu-west-1".into(), role_arn: None },
            last_attempt: None,
            last_error: (!poll_ok).then(|| crate::state::PollError {
                kind: "throttled".into(),
                message: "throttled".into(),
                at: t("2026-11-28T10:05:00Z"),
            }),
        }
    }

    fn metrics_with(state: PersistedState) -> (Arc<StateStore>, Metrics, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(StateStore::with_state(dir.path().join("state.json"), state));
        let metrics = Metrics::new(Arc::clone(&store)).unwrap();
        (store, metrics, dir)
    }

    fn text(m: &Metrics) -> String {
        String::from_utf8(m.render().unwrap().body).unwrap()
    }

    fn one_cluster(poll_ok: bool) -> PersistedState {
        let mut state = PersistedState::default();
        state.clusters.insert("111122223333/eu-west-1/prod".into(), cluster(poll_ok));
        state
    }

    #[test]
    fn a_cluster_renders_every_drift_series_with_its_labels_and_values() {
        let (_, m, _dir) = metrics_with(one_cluster(true));
        let body = text(&m);
        let node = r#"security_group_id="sg-0bbbbbbbbbbbbbbbb",role="node""#;
        let cluster = r#"security_group_id="sg-0aaaaaaaaaaaaaaaa",role="cluster""#;
        for line in [
            format!(r#"sgdrift_cluster_info{{{IDS},endpoint_mode="private",style="eksctl"}} 1"#),
            format!(r#"sgdrift_security_group_info{{{IDS},{node}}} 1"#),
            format!(r#"sgdrift_findings{{{IDS},role="node",kind="unexpected",severity="critical"}} 2"#),
            format!(r#"sgdrift_findings_suppressed{{{IDS},role="cluster",kind="unexpected",severity="critical"}} 1"#),
            format!(r#"sgdrift_security_group_drifted{{{IDS},{node}}} 1"#),
            format!(r#"sgdrift_security_group_drifted{{{IDS},{cluster}}} 0"#),
            // The oldest unsuppressed finding of the group: 2026-11-26T10:00:00Z.
            format!(r#"sgdrift_security_group_drift_first_seen_timestamp_seconds{{{IDS},{node}}} 1795687200"#),
            format!(r#"sgdrift_required_flow_open{{{IDS},flow="dns"}} 0"#),
            format!(r#"sgdrift_required_flow_open{{{IDS},flow="kubelet"}} 1"#),
            format!(r#"sgdrift_required_flow_open{{{IDS},flow="aws-apis"}} 1"#),
            format!(r#"sgdrift_cluster_poll_success{{{IDS}}} 1"#),
            format!(r#"sgdrift_cluster_last_successful_poll_timestamp_seconds{{{IDS}}} 1795860000"#),
        ] {
            assert!(body.lines().any(|l| l == line), "missing `{line}` in\n{body}");
        }
        assert!(
            !body.contains(&format!("sgdrift_security_group_drift_first_seen_timestamp_seconds{{{IDS},{cluster}}}"))
        );
    }

    #[test]
    fn event_outcomes_start_at_zero_and_the_feed_timestamp_appears_only_once_a_feed_runs() {
        let (_, m, _dir) = metrics_with(PersistedState::default());
        let body = text(&m);
        for outcome in EVENT_OUTCOMES {
            let line = format!(r#"sgdrift_events_received_total{{outcome="{outcome}"}} 0"#);
            assert!(body.lines().any(|l| l == line), "missing `{line}`");
        }
        assert!(body.contains("sgdrift_detection_latency_seconds_count 0"), "{body}");
        assert!(!body.contains("sgdrift_events_last_receive_success_timestamp_seconds "), "no feed, no timestamp");
        m.event_received("matched");
        m.events_feed_receiving("2026-11-28T10:00:00Z".parse().unwrap());
        let body = text(&m);
        assert!(body.lines().any(|l| l == r#"sgdrift_events_received_total{outcome="matched"} 1"#), "{body}");
        assert!(
            body.lines().any(|l| l == "sgdrift_events_last_receive_success_timestamp_seconds 1795860000"),
            "{body}"
        );
    }

    #[test]
    fn no_series_carries_a_label_named_cluster_or_a_timestamp() {
        let (_, m, _dir) = metrics_with(one_cluster(true));
        for line in text(&m).lines().filter(|l| !l.starts_with('#')) {
            assert!(!line.contains("{cluster=") && !line.contains(",cluster="), "{line}");
            let after_name = match line.rsplit_once('}') {
                Some((_, rest)) => rest,
                None => line.split_once(' ').map_or("", |(_, rest)| rest),
            };
            assert_eq!(after_name.split_whitespace().count(), 1, "a sample with a timestamp: {line}");
        }
    }

    #[test]
    fn a_failed_poll_shows_as_poll_success_zero_with_the_findings_kept() {
        let (_, m, _dir) = metrics_with(one_cluster(false));
        let body = text(&m);
        assert!(body.lines().any(|l| l == format!(r#"sgdrift_cluster_poll_success{{{IDS}}} 0"#)));
        assert!(body.contains(r#"severity="critical"} 2"#));
    }

    #[test]
    fn a_removed_cluster_disappears_from_the_next_scrape() {
        let (store, m, _dir) = metrics_with(one_cluster(true));
        assert!(text(&m).contains(r#"eks_cluster="prod""#));
        on_a_runtime(store.update(|s| s.clusters.clear())).unwrap();
        assert!(!text(&m).contains(r#"eks_cluster="prod""#));
    }

    fn on_a_runtime<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
    }

    #[test]
    fn label_values_are_escaped_as_the_text_format_wants() {
        let mut odd = cluster(true);
        odd.report.cluster = "a\"b\\c\nd".into();
        let mut state = PersistedState::default();
        state.clusters.insert("k".into(), odd);
        let (_, m, _dir) = metrics_with(state);
        let body = text(&m);
        assert!(body.contains(r#"eks_cluster="a\"b\\c\nd""#), "{body}");
        let expected_lines = body.lines().filter(|l| l.starts_with("sgdrift_cluster_poll_success")).count();
        assert_eq!(expected_lines, 1, "a newline in a value must not split the sample");
    }

    #[test]
    fn the_content_type_is_the_text_encoders() {
        let (_, m, _dir) = metrics_with(PersistedState::default());
        assert_eq!(m.render().unwrap().content_type, "text/plain; version=0.0.4");
    }

    #[test]
    fn every_drift_family_sits_at_its_own_index_with_a_distinct_name() {
        for (i, family) in Family::ALL.iter().enumerate() {
            assert_eq!(*family as usize, i, "{family:?}");
        }
        let names: std::collections::BTreeSet<&str> = Family::ALL.iter().map(|f| f.describe().0).collect();
        assert_eq!(names.len(), Family::ALL.len());
    }

    #[test]
    fn aws_calls_recorded_through_the_handed_out_metrics_render_by_service_operation_and_error() {
        let (_, m, _dir) = metrics_with(PersistedState::default());
        let op = crate::source::convert::Operation::new("ec2", "DescribeSecurityGroups");
        let throttled = crate::source::SourceError::Throttled { operation: "x".into(), message: "slow down".into() };
        let calls = m.aws_calls.clone();
        for _ in 0..5 {
            calls.record(op, std::time::Duration::from_millis(50), None);
        }
        calls.record(op, std::time::Duration::from_millis(700), Some(&throttled));
        calls.record(op, std::time::Duration::from_secs(40), Some(&throttled));
        let body = text(&m);
        for line in [
            "# TYPE sgdrift_aws_api_requests_total counter",
            r#"sgdrift_aws_api_requests_total{operation="DescribeSecurityGroups",service="ec2"} 7"#,
            r#"sgdrift_aws_api_request_errors_total{error="throttled",operation="DescribeSecurityGroups",service="ec2"} 2"#,
            "# TYPE sgdrift_aws_api_request_duration_seconds histogram",
            r#"sgdrift_aws_api_request_duration_seconds_bucket{operation="DescribeSecurityGroups",service="ec2",le="0.05"} 5"#,
            r#"sgdrift_aws_api_request_duration_seconds_bucket{operation="DescribeSecurityGroups",service="ec2",le="1"} 6"#,
            r#"sgdrift_aws_api_request_duration_seconds_bucket{operation="DescribeSecurityGroups",service="ec2",le="+Inf"} 7"#,
            r#"sgdrift_aws_api_request_duration_seconds_count{operation="DescribeSecurityGroups",service="ec2"} 7"#,
        ] {
            assert!(body.lines().any(|l| l == line), "missing `{line}` in\n{body}");
        }
    }
}
