//! The fleet benchmark of design.md §5: a generated fleet of 1,000 clusters (5 security groups
//! × 40 rules each) — evaluation time of the whole fleet on one core (normalize is done by the
//! generator; baseline resolution + diff + flows here), `/metrics` render time per scrape for
//! that fleet's state, and the process's resident memory. Run with `cargo bench --bench fleet`,
//! or `scripts/bench-fleet`, which skips optimising the AWS SDK the benchmark never calls.
//!
//! Targets: evaluation < 50 ms (design.md §5), render < 10 ms, RSS < 64 MiB.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use sgdrift::baseline::BaselineRef;
use sgdrift::config::Target;
use sgdrift::diff::Evaluation;
use sgdrift::engine::{evaluate_snapshot, ClusterOutcome};
use sgdrift::export::metrics::{render_drift, Metrics};
use sgdrift::flows::{FlowName, FlowResult, FlowStatus};
use sgdrift::model::{
    finding_id, ClusterId, ClusterSnapshot, Direction, EndpointMode, Finding, FindingKind, IpFamily, NodeGroup,
    NodeGroupKind, Peer, PortRange, Role, RouteOut, Rule, SecurityGroup, Style, Traffic,
};
use sgdrift::scheduler::apply_poll;
use sgdrift::source::TargetSpec;
use sgdrift::state::{PersistedState, StateStore};

const CLUSTERS: usize = 1000;
const RULES_PER_GROUP: usize = 40;
const REGIONS: [&str; 4] = ["eu-west-1", "us-east-1", "eu-central-1", "ap-southeast-2"];

fn main() {
    if cfg!(debug_assertions) {
        println!("fleet benchmark, debug build (cargo test): a smoke run, its timings are not measurements; scripts/bench-fleet measures");
    }
    let fleet: Vec<ClusterSnapshot> = (0..CLUSTERS).map(snapshot).collect();
    let rules: usize = fleet.iter().map(|c| c.groups.values().map(|g| g.rules.len()).sum::<usize>()).sum();
    println!(
        "fleet: {CLUSTERS} clusters, {} groups, {rules} rules",
        fleet.iter().map(|c| c.groups.len()).sum::<usize>()
    );

    let evaluations = match evaluate_fleet(&fleet) {
        Some(evaluations) => evaluations,
        None => {
            println!("evaluation: not measured, the core (baseline/diff/flows) is still todo!(); synthetic findings used below");
            fleet.iter().map(synthetic_evaluation).collect()
        }
    };
    let findings: usize = evaluations.iter().map(|e| e.findings.len()).sum();
    let mut by_kind: BTreeMap<String, usize> = BTreeMap::new();
    for f in evaluations.iter().flat_map(|e| &e.findings) {
        *by_kind.entry(format!("{} {} {}", f.role, f.kind.as_str(), f.severity)).or_default() += 1;
    }
    println!("findings: {findings} over the fleet: {by_kind:?}");

    let mut state = PersistedState::default();
    let now = Utc::now();
    for region in REGIONS {
        let outcomes: Vec<ClusterOutcome> = fleet
            .iter()
            .zip(&evaluations)
            .filter(|(c, _)| c.id.region == region)
            .map(|(c, e)| ClusterOutcome { id: c.id.clone(), target: 0, result: Ok((c.clone(), e.clone())) })
            .collect();
        let spec = TargetSpec { region: region.into(), role_arn: None, clusters: vec!["*".into()] };
        apply_poll(&mut state, &spec, &Ok(outcomes), now, &mut |_, _, _| {});
    }
    let dir = std::env::temp_dir().join(format!("sgdrift-bench-{}", std::process::id()));
    let store = Arc::new(StateStore::with_state(dir.join("state.json"), state));
    let serialize = time(5, || serde_json::to_vec(&store.read_now(|s| s.clone())).map(|v| v.len()).unwrap_or(0));
    let state_bytes = serde_json::to_vec(&store.read_now(|s| s.clone())).map(|v| v.len()).unwrap_or(0);
    println!(
        "state file: {:.1} MiB, serialized in {} (median of 5)",
        state_bytes as f64 / 1048576.0,
        ms(serialize.median)
    );

    let metrics = Metrics::new(Arc::clone(&store)).expect("metrics");
    let rendered = metrics.render().expect("render");
    let series = rendered.body.split(|b| *b == b'\n').filter(|l| !l.is_empty() && l[0] != b'#').count();
    println!("/metrics: {series} series, {:.1} KiB", rendered.body.len() as f64 / 1024.0);
    let render = time(30, || metrics.render().map(|r| r.body.len()).unwrap_or(0));
    println!(
        "/metrics render: median {} · min {} · max {} per scrape (30 scrapes; {})",
        ms(render.median),
        ms(render.min),
        ms(render.max),
        goal("< 10 ms")
    );
    let drift = time(30, || {
        let mut out = String::with_capacity(rendered.body.len());
        store.read_now(|s| render_drift(s.clusters.values(), &mut out));
        out.len()
    });
    let registry = time(30, || {
        let mut out = Vec::new();
        prometheus::Encoder::encode(&prometheus::TextEncoder::new(), &metrics.registry().gather(), &mut out)
            .map(|()| out.len())
            .unwrap_or(0)
    });
    println!(
        "  of which the drift series: median {}; the registry (self, AWS, process): median {}",
        ms(drift.median),
        ms(registry.median)
    );
    println!("resident memory (VmRSS): {} ({}); peak (VmHWM): {}", status("VmRSS"), goal("< 64 MiB"), status("VmHWM"));
}

/// The target a timing is read against; a debug build (`cargo test` runs every bench) is
/// unoptimised, so its numbers say nothing about the target and must not read as a failure.
fn goal(goal: &str) -> String {
    if cfg!(debug_assertions) {
        "debug build, not a measurement".to_string()
    } else {
        format!("target {goal}")
    }
}

/// Times the evaluation of the whole fleet on this one thread; `None` while the core is todo.
fn evaluate_fleet(fleet: &[ClusterSnapshot]) -> Option<Vec<Evaluation>> {
    let target = Target {
        regions: REGIONS.iter().map(|r| r.to_string()).collect(),
        role_arn: None,
        clusters: vec!["*".into()],
        baseline: BaselineRef::Profile(sgdrift::baseline::Profile::Minimal),
        webhook_ports: vec![9443],
        trust_controllers: sgdrift::baseline::Controller::ALL.to_vec(),
        organization: None,
    };
    let today = Utc::now().date_naive();
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let probe = std::panic::catch_unwind(|| evaluate_snapshot(&target, &[], &fleet[0], today));
    std::panic::set_hook(hook);
    probe.ok()?;
    let mut out = Vec::new();
    let timing = time(5, || {
        out = fleet.iter().map(|c| evaluate_snapshot(&target, &[], c, today)).collect::<Vec<_>>();
        out.len()
    });
    println!(
        "evaluation of {} clusters (resolve + diff + flows, one core): median {} · min {} · max {} (5 runs; {})",
        fleet.len(),
        ms(timing.median),
        ms(timing.min),
        ms(timing.max),
        goal("< 50 ms")
    );
    Some(out)
}

struct Timing {
    median: Duration,
    min: Duration,
    max: Duration,
}

fn time(runs: usize, mut f: impl FnMut() -> usize) -> Timing {
    let mut samples: Vec<Duration> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            std::hint::black_box(f());
            start.elapsed()
        })
        .collect();
    samples.sort();
    Timing { median: samples[runs / 2], min: samples[0], max: samples[runs - 1] }
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn status(key: &str) -> String {
    let text = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0.0);
    format!("{:.1} MiB", kb / 1024.0)
}

fn sg_id(cluster: usize, n: usize) -> String {
    format!("sg-0{cluster:011x}{n:05x}")
}

/// One cluster laid out like eksctl: cluster SG, control-plane SG and three node SGs (two
/// managed node groups and a self-managed one), 40 rules each: what EKS and eksctl create, then
/// the additions teams make over time — mostly inside what the baseline allows (pod ports from
/// other nodes, egress anywhere), with real drift on one cluster in four (SSH from the
/// internet, an app port open to 10.0.0.0/8).
fn snapshot(i: usize) -> ClusterSnapshot {
    let id = ClusterId {
        account_id: format!("{:012}", 111_122_220_000u64 + (i as u64 % 7)),
        region: REGIONS[i % REGIONS.len()].to_string(),
        name: format!("fleet-{i:04}"),
    };
    let roles = [Role::Cluster, Role::ControlPlane, Role::Node, Role::Node, Role::Node];
    let ids: Vec<String> = (0..roles.len()).map(|n| sg_id(i, n)).collect();
    let any4 = || Peer::parse("0.0.0.0/0").unwrap();
    let tcp = |from: u16, to: u16| Traffic::Tcp(PortRange::new(from, to).unwrap());
    let rule = |direction, traffic, peer| Rule { direction, traffic, peer, description: None };
    let mut groups = BTreeMap::new();
    for (n, role) in roles.iter().enumerate() {
        let node = &ids[2 + n % 3];
        let mut rules = match role {
            Role::Cluster => vec![
                rule(Direction::Ingress, Traffic::All, Peer::group(&ids[0])),
                rule(Direction::Ingress, Traffic::All, Peer::group(&ids[2])),
                rule(Direction::Ingress, tcp(443, 443), Peer::group(&ids[3])),
                rule(Direction::Egress, Traffic::All, any4()),
            ],
            Role::ControlPlane => vec![
                rule(Direction::Ingress, tcp(443, 443), Peer::group(&ids[2])),
                rule(Direction::Ingress, tcp(443, 443), Peer::group(&ids[3])),
                rule(Direction::Ingress, tcp(443, 443), Peer::group(&ids[4])),
                rule(Direction::Egress, tcp(1025, 65535), Peer::group(&ids[2])),
                rule(Direction::Egress, tcp(443, 443), Peer::group(&ids[2])),
                rule(Direction::Egress, Traffic::All, any4()),
            ],
            _ => {
                let mut node_rules = vec![
                    rule(Direction::Ingress, Traffic::All, Peer::group(&ids[n])),
                    rule(Direction::Ingress, tcp(1025, 65535), Peer::group(&ids[1])),
                    rule(Direction::Ingress, tcp(443, 443), Peer::group(&ids[1])),
                    rule(Direction::Ingress, tcp(10250, 10250), Peer::group(&ids[1])),
                    rule(Direction::Egress, Traffic::All, any4()),
                ];
                for other in &ids[2..] {
                    node_rules.push(rule(Direction::Ingress, tcp(53, 53), Peer::group(other)));
                    node_rules.push(rule(Direction::Ingress, Traffic::Udp(PortRange::single(53)), Peer::group(other)));
                }
                node_rules
            }
        };
        if i % 4 == 0 && n == 2 {
            rules.push(rule(Direction::Ingress, tcp(22, 22), any4()));
            rules.push(rule(Direction::Ingress, tcp(8080, 8080), Peer::parse("10.0.0.0/8").unwrap()));
        }
        let mut k = 0;
        while rules.len() < RULES_PER_GROUP {
            let port = 2000 + (k * 331 + n * 17) as u16;
            rules.push(if k % 2 == 0 && *role != Role::ControlPlane {
                rule(Direction::Ingress, tcp(port, port + 9), Peer::group(node))
            } else {
                let cidr = format!("10.{}.{}.0/24", (i + k) % 256, (k * 7 + n) % 256);
                let traffic = if k % 3 == 0 { Traffic::Udp(PortRange::single(port)) } else { tcp(port, port) };
                rule(Direction::Egress, traffic, Peer::parse(&cidr).unwrap())
            });
            k += 1;
        }
        for (j, r) in rules.iter_mut().enumerate() {
            r.description = (j % 2 == 0).then(|| format!("rule {j} of {}", id.name));
        }
        let group = SecurityGroup {
            id: ids[n].clone(),
            name: format!("eksctl-{}-{}-{n}", id.name, role.as_str()),
            description: format!("{} group of {}", role.as_str(), id.name),
            owner_id: Some(id.account_id.clone()),
            vpc_id: Some(format!("vpc-0{i:016x}")),
            tags: BTreeMap::from([("alpha.eksctl.io/cluster-name".to_string(), id.name.clone())]),
            roles: [*role].into(),
            rules: sgdrift::model::canonicalize(rules),
        };
        groups.insert(ids[n].clone(), group);
    }
    let node_group = |name: &str, kind, security_group_ids| NodeGroup {
        name: name.into(),
        kind,
        security_group_ids,
        route_out_v4: RouteOut::NoData,
        route_out_v6: RouteOut::NoData,
    };
    let node_groups = vec![
        node_group("ng-a", NodeGroupKind::Managed, vec![ids[0].clone(), ids[2].clone()]),
        node_group("ng-b", NodeGroupKind::Managed, vec![ids[3].clone()]),
        node_group("ng-self", NodeGroupKind::SelfManaged, vec![ids[4].clone()]),
    ];
    ClusterSnapshot {
        id,
        endpoint_mode: [EndpointMode::Public, EndpointMode::PublicPrivate][i % 2],
        public_access_cidrs: vec!["0.0.0.0/0".into()],
        style: Style::Eksctl,
        ip_family: IpFamily::Ipv4,
        remote_network: None,
        vpc_id: format!("vpc-0{i:016x}"),
        vpc_cidrs: vec!["192.168.0.0/16".parse().unwrap()],
        cluster_security_group_id: Some(ids[0].clone()),
        control_plane_security_group_ids: vec![ids[1].clone()],
        groups,
        node_groups,
        vpc_endpoints: vec![],
        pod_security_group_sets: vec![],
        data_plane: Default::default(),
        peer_groups: BTreeMap::new(),
        prefix_lists: BTreeMap::new(),
        warnings: vec![],
    }
}

/// Stand-in findings while the core is todo: each extra rule of the first node group is
/// unexpected, and one flow is closed on every tenth cluster.
fn synthetic_evaluation(c: &ClusterSnapshot) -> Evaluation {
    let node = c.groups.values().find(|g| g.has_role(Role::Node)).unwrap();
    let findings = node.rules[5..]
        .iter()
        .map(|r| {
            let f = Finding::test().in_cluster(&c.id).on(&node.id).rule(&r.to_string());
            let f = if r.direction == Direction::Egress { f.low() } else { f.medium() };
            let f = f.id(&finding_id(&c.id, &node.id, FindingKind::Unexpected, &format!("{:?}", r.traffic)));
            match &r.description {
                Some(d) => f.description(d),
                None => f,
            }
            .build()
        })
        .collect();
    let closed = c.id.name.ends_with('0');
    let flows = FlowName::ALL
        .iter()
        .flat_map(|name| {
            c.node_groups.iter().map(move |ng| FlowResult {
                name: *name,
                node_group: Some(ng.name.clone()),
                status: if closed && *name == FlowName::Dns { FlowStatus::Closed } else { FlowStatus::Open },
                detail: "open".into(),
                missing: vec![],
            })
        })
        .collect();
    Evaluation { findings, flows, owned: Vec::new() }
}
