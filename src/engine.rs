//! One poll of one target, evaluated: what `check` runs once and the daemon's scheduler runs on
//! every interval. Sources in, evaluations and report entries out.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::rc::Rc;
use std::sync::{Arc, Mutex, RwLock};

use chrono::{NaiveDate, Utc};

use crate::baseline;
use crate::config::{Settings, Target};
use crate::diff::{self, Evaluation};
use crate::export::report::{ClusterReport, ClusterStatus, FlowReport, GroupRef, OwnedReport};
use crate::flows::FlowContext;
use crate::model::{ClusterId, ClusterSnapshot};
use crate::remediation;
use crate::source::{Source, SourceError, TargetSpec};

/// The outcome for one cluster of one poll.
#[derive(Debug)]
pub struct ClusterOutcome {
    pub id: ClusterId,
    /// Index into `Settings::targets` of the target that named the cluster.
    pub target: usize,
    pub result: Result<(ClusterSnapshot, Evaluation), SourceError>,
}

/// The settings and the source, shared by every poll.
pub struct Engine {
    pub settings: Arc<Settings>,
    pub source: Source,
    /// The accounts of each organization target (by target index), as last discovered.
    accounts: RwLock<BTreeMap<usize, Vec<String>>>,
    plans: PlanCache,
}

impl Engine {
    pub fn new(settings: Arc<Settings>, source: Source) -> Self {
        Engine { settings, source, accounts: RwLock::new(BTreeMap::new()), plans: PlanCache::default() }
    }

    /// Every (target index, region) pair the config names, as the sources want them; an
    /// organization target gives one per discovered account and region.
    pub fn target_specs(&self) -> Vec<(usize, TargetSpec)> {
        let accounts = self.accounts.read().unwrap_or_else(|e| e.into_inner());
        specs(&self.settings.targets, &accounts)
    }

    /// Asks AWS Organizations for the accounts of every organization target. A target whose
    /// discovery fails keeps the accounts it had (a failed call never drops an account from the
    /// report) and is returned with its error. `true` in the first place when the account
    /// lists changed.
    pub async fn discover_accounts(&self) -> (bool, Vec<(usize, SourceError)>) {
        let mut failures = Vec::new();
        let mut found = BTreeMap::new();
        for (i, target) in self.settings.targets.iter().enumerate() {
            let Some(org) = &target.organization else { continue };
            match self.source.organization_accounts(org).await {
                Ok(list) => {
                    found.insert(i, list);
                }
                Err(e) => failures.push((i, e)),
            }
        }
        let mut accounts = self.accounts.write().unwrap_or_else(|e| e.into_inner());
        let before = accounts.clone();
        accounts.extend(found);
        (*accounts != before, failures)
    }

    /// Polls one target in one region and evaluates every cluster it names. A failure of the
    /// whole target (ListClusters, credentials) is returned as `Err` with the region it concerns.
    pub async fn poll_target(&self, index: usize, spec: &TargetSpec) -> Result<Vec<ClusterOutcome>, SourceError> {
        let poll = self.source.poll(spec).await;
        if let Some((_, err)) = poll.error {
            return Err(err);
        }
        let today = Utc::now().date_naive();
        Ok(poll
            .clusters
            .into_iter()
            .map(|c| ClusterOutcome {
                id: c.id,
                target: index,
                result: c.result.map(|snap| {
                    let eval = self.evaluate(index, &snap, today);
                    (snap, eval)
                }),
            })
            .collect())
    }

    /// Evaluates one snapshot against its target's baseline, flows and the exceptions. The
    /// remediation of drift that has not changed since the last poll is not planned again.
    pub fn evaluate(&self, target: usize, snapshot: &ClusterSnapshot, today: NaiveDate) -> Evaluation {
        let Some(t) = self.settings.targets.get(target) else {
            return Evaluation::default();
        };
        let key = (target, snapshot.id.clone());
        let eval = evaluate_planned(t, &self.settings.exceptions, snapshot, today, |make| {
            self.plans.get_or_plan(key.clone(), fingerprint(snapshot, today), make)
        });
        if !eval.findings.iter().any(|f| f.is_drift()) {
            self.plans.forget(&key);
        }
        eval
    }
}

/// The remediation plan of each (target, cluster) with drift, with the fingerprint of the
/// snapshot and day it was made for. Planning evaluates every candidate step again; a steady
/// poll of drift nobody has touched needs none of that. A generation (config, baselines,
/// exceptions) has its own engine, so its own cache.
#[derive(Default)]
struct PlanCache {
    plans: Mutex<HashMap<PlanKey, (u64, Arc<remediation::Plan>)>>,
}

/// A target's index and one of its clusters.
type PlanKey = (usize, ClusterId);

impl PlanCache {
    fn get_or_plan(
        &self,
        key: PlanKey,
        fingerprint: u64,
        make: impl FnOnce() -> remediation::Plan,
    ) -> Arc<remediation::Plan> {
        let lock = || self.plans.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((made_for, plan)) = lock().get(&key) {
            if *made_for == fingerprint {
                return Arc::clone(plan);
            }
        }
        // Planned without the lock: other clusters' polls evaluate meanwhile.
        let plan = Arc::new(make());
        lock().insert(key, (fingerprint, Arc::clone(&plan)));
        plan
    }

    fn forget(&self, key: &PlanKey) {
        self.plans.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(key);
    }
}

/// Everything a plan depends on besides the generation's settings: the snapshot and the day
/// (exceptions expire).
fn fingerprint(snapshot: &ClusterSnapshot, today: NaiveDate) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    (snapshot, today).hash(&mut hasher);
    hasher.finish()
}

/// The pure evaluation of one snapshot under one target's settings.
pub fn evaluate_snapshot(
    target: &Target,
    exceptions: &[baseline::Exception],
    snapshot: &ClusterSnapshot,
    today: NaiveDate,
) -> Evaluation {
    // What `baseline::resolve(&for_cluster(..), ..)` gives, without building or copying the
    // (shared) profile for each cluster.
    let [own, profile] = target.baseline.rule_sets(snapshot.endpoint_mode, snapshot.style);
    let webhooks = webhook_rules(&target.webhook_ports);
    let peers = baseline::SnapshotPeers::new(snapshot);
    let expected = baseline::resolve_borrowed(&[own, profile, &webhooks], &peers);
    let flows = FlowContext { webhook_ports: target.webhook_ports.clone() };
    let expected_of = |id: &str| expected.get(id).map(Vec::as_slice).unwrap_or_default();
    diff::evaluate_with(snapshot, expected_of, &flows, exceptions, &target.trust_controllers, today)
}

/// `baseline::webhook_rules(ports)`: every cluster of a target asks for the same rules, so each
/// thread keeps those of the ports it was last asked for instead of building them per cluster.
fn webhook_rules(ports: &[u16]) -> Rc<[baseline::BaselineRule]> {
    type PortsRules = (Vec<u16>, Rc<[baseline::BaselineRule]>);
    thread_local! {
        static LAST: RefCell<Option<PortsRules>> = const { RefCell::new(None) };
    }
    LAST.with_borrow_mut(|last| match last {
        Some((asked, rules)) if asked.as_slice() == ports => Rc::clone(rules),
        _ => {
            let rules: Rc<[baseline::BaselineRule]> = baseline::webhook_rules(ports).into();
            *last = Some((ports.to_vec(), Rc::clone(&rules)));
            rules
        }
    })
}

/// [`evaluate_snapshot`], each finding carrying the checked change that restores the baseline
/// (design.md §2 remediation): what `check`, the daemon and `fix` report.
pub fn evaluate_with_remediation(
    target: &Target,
    exceptions: &[baseline::Exception],
    snapshot: &ClusterSnapshot,
    today: NaiveDate,
) -> Evaluation {
    evaluate_planned(target, exceptions, snapshot, today, |make| Arc::new(make()))
}

/// [`evaluate_with_remediation`], the plan asked of `planned`, which is handed the planning
/// and may answer from a cache instead.
fn evaluate_planned(
    target: &Target,
    exceptions: &[baseline::Exception],
    snapshot: &ClusterSnapshot,
    today: NaiveDate,
    planned: impl FnOnce(&mut dyn FnMut() -> remediation::Plan) -> Arc<remediation::Plan>,
) -> Evaluation {
    let evaluate = |s: &ClusterSnapshot| evaluate_snapshot(target, exceptions, s, today);
    let mut eval = evaluate(snapshot);
    if eval.findings.iter().any(|f| f.is_drift()) {
        let options = remediation::Options { role_arn: target.role_for(&snapshot.id), ..Default::default() };
        let plan = planned(&mut || remediation::plan(snapshot, &eval, &options, evaluate));
        remediation::annotate(&mut eval.findings, snapshot, &plan, &options);
    }
    eval
}

/// Every (target index, region) pair of `targets`; an organization target's pairs are one per
/// account of `accounts` (its discovered accounts) and region, each through its member role.
pub fn specs(targets: &[Target], accounts: &BTreeMap<usize, Vec<String>>) -> Vec<(usize, TargetSpec)> {
    let mut specs = Vec::new();
    for (i, t) in targets.iter().enumerate() {
        let spec = |region: &String, role_arn: Option<String>| TargetSpec {
            region: region.clone(),
            role_arn,
            clusters: t.clusters.clone(),
        };
        match &t.organization {
            None => specs.extend(t.regions.iter().map(|r| (i, spec(r, t.role_arn.clone())))),
            Some(org) => {
                for account in accounts.get(&i).into_iter().flatten() {
                    specs.extend(t.regions.iter().map(|r| (i, spec(r, Some(org.role_arn(account, r))))));
                }
            }
        }
    }
    specs
}

/// The report entry of one outcome (design.md §3 "Findings").
pub fn cluster_report(outcome: &ClusterOutcome) -> ClusterReport {
    let mut report = ClusterReport::failed(&outcome.id.account_id, &outcome.id.region, &outcome.id.name, None);
    match &outcome.result {
        Err(e) => report.error = Some(e.to_string()),
        Ok((snap, eval)) => {
            report.endpoint_mode = Some(snap.endpoint_mode);
            report.style = Some(snap.style);
            report.status =
                if eval.findings.iter().any(|f| f.is_drift()) { ClusterStatus::Drift } else { ClusterStatus::Ok };
            report.groups = snap
                .groups
                .values()
                .map(|g| GroupRef { id: g.id.clone(), name: g.name.clone(), role: g.primary_role() })
                .collect();
            report.findings = eval.findings.clone();
            report.flows = eval
                .flows
                .iter()
                .map(|f| FlowReport {
                    name: f.name,
                    status: f.status,
                    detail: f.detail.clone(),
                    node_group: f.node_group.clone(),
                })
                .collect();
            report.owned = eval.owned.iter().map(OwnedReport::from_owned).collect();
            report.warnings = snap.warnings.clone();
        }
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::baseline::{fixtures::snapshot, BaselineRef, ResolveContext};
    use crate::model::{EndpointMode, Style};

    /// The straightforward evaluation the poll loop's shortcut (shared profiles, borrowed
    /// resolution, indexed coverage) must agree with.
    fn reference(target: &Target, snapshot: &ClusterSnapshot, today: NaiveDate) -> Evaluation {
        let base = target.baseline.for_cluster(snapshot.endpoint_mode, snapshot.style);
        let ctx = ResolveContext { webhook_ports: target.webhook_ports.clone() };
        let resolved = baseline::resolve(&base, snapshot, &ctx);
        let flows = FlowContext { webhook_ports: target.webhook_ports.clone() };
        diff::evaluate(snapshot, &resolved, &flows, &[], &target.trust_controllers, today)
    }

    #[test]
    fn evaluating_a_snapshot_agrees_with_resolving_the_baseline_then_diffing() {
        let today: NaiveDate = "2026-11-28".parse().expect("date");
        let file = baseline::parse_str(
            "profile = \"eks-strict\"\n[[rule]]\nrole = \"node\"\ndirection = \"ingress\"\nprotocol = \"tcp\"\nports = \"22\"\npeer = \"0.0.0.0/0\"\nstatus = \"required\"\nwhy = \"bastion\"\n[[rule]]\nrole = \"control-plane\"\ndirection = \"ingress\"\nprotocol = \"tcp\"\nports = \"443\"\npeer = \"role:node\"\nstatus = \"required\"\n",
            "test.toml",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let baselines = [
            BaselineRef::Profile(crate::baseline::Profile::Minimal),
            BaselineRef::Profile(crate::baseline::Profile::Strict),
            BaselineRef::File(file),
        ];
        let mut checked = 0;
        for baseline in baselines {
            for webhook_ports in [vec![], vec![9443, 8443, 9443]] {
                for mode in EndpointMode::ALL {
                    for style in Style::ALL {
                        let target = Target {
                            regions: vec!["eu-west-1".into()],
                            role_arn: None,
                            clusters: vec!["*".into()],
                            baseline: baseline.clone(),
                            webhook_ports: webhook_ports.clone(),
                            trust_controllers: baseline::Controller::ALL.to_vec(),
                            organization: None,
                        };
                        let mut s = snapshot();
                        s.endpoint_mode = mode;
                        s.style = style;
                        let got = evaluate_snapshot(&target, &[], &s, today);
                        assert_eq!(got, reference(&target, &s, today), "{baseline:?} {mode} {style} {webhook_ports:?}");
                        checked += got.findings.len();
                    }
                }
            }
        }
        assert!(checked > 0, "the fixture should produce findings to compare");
    }

    #[test]
    fn a_plan_is_made_again_only_when_the_snapshot_or_the_day_changed() {
        let today: NaiveDate = "2026-11-28".parse().expect("date");
        let target = Target {
            regions: vec!["eu-west-1".into()],
            role_arn: None,
            clusters: vec!["*".into()],
            baseline: BaselineRef::Profile(crate::baseline::Profile::Strict),
            webhook_ports: vec![],
            trust_controllers: vec![],
            organization: None,
        };
        let cache = PlanCache::default();
        let made = std::cell::Cell::new(0);
        let eval = |s: &ClusterSnapshot, day: NaiveDate| {
            evaluate_planned(&target, &[], s, day, |make| {
                cache.get_or_plan((0, s.id.clone()), fingerprint(s, day), || {
                    made.set(made.get() + 1);
                    make()
                })
            })
        };
        let drifting = snapshot();
        let first = eval(&drifting, today);
        assert!(first.findings.iter().any(|f| f.is_drift()), "the fixture drifts under eks-strict");
        assert!(first.findings.iter().any(|f| f.remediation.is_some()), "and something can be remediated");
        assert_eq!(first, evaluate_with_remediation(&target, &[], &drifting, today), "the cache changes nothing");
        // (the snapshot, the day, plans made so far)
        let mut changed = drifting.clone();
        changed.groups.values_mut().next().expect("a group").rules.pop();
        let tomorrow = today.succ_opt().expect("a next day");
        let steps = [(&drifting, today, 1), (&changed, today, 2), (&changed, today, 2), (&changed, tomorrow, 3)];
        for (s, day, want) in steps {
            let got = eval(s, day);
            assert_eq!(made.get(), want);
            assert_eq!(got, evaluate_with_remediation(&target, &[], s, day));
        }
        cache.forget(&(0, drifting.id.clone()));
        eval(&changed, tomorrow);
        assert_eq!(made.get(), 4, "forgotten: made again");
    }
}
