//! Who made the change behind a new finding (`changed_by`): the feed's recent events first;
//! failing those, with `attribution = "cloudtrail"`, CloudTrail `LookupEvents` on the finding's
//! group since the cluster's last clean poll — for new findings only, at most 2 requests per
//! second per (role, region) as CloudTrail allows, answers cached briefly.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::time::Instant;

use crate::engine::ClusterOutcome;
use crate::model::{ClusterId, Finding};
use crate::source::TargetSpec;
use crate::state::{cluster_key, PersistedState, StateStore};

use super::aws::CloudTrail;
use super::cloudtrail::{parse_record, Change, Envelope, Parsed};
use super::matching::{self, Index};

/// Events the feed delivered, kept for the polls they trigger (and a timer poll soon after).
const RECENT: usize = 10_000;
/// CloudTrail's `LookupEvents` quota: 2 requests per second per account and region.
const LOOKUP_SPACING: Duration = Duration::from_millis(500);
/// How long a look-up's answer is reused (several new findings on one group, a burst of polls).
const CACHE_FOR: Duration = Duration::from_secs(60);
/// Looked back before the last clean poll: a change made while it ran was not in it.
const LOOKBACK_MARGIN: chrono::Duration = chrono::Duration::minutes(5);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The shared attribution state: the feed writes events in, the scheduler attributes each poll.
pub struct Attribution {
    recent: Mutex<VecDeque<Arc<Change>>>,
    /// The VPC of each cluster, as this process's polls saw it.
    vpcs: Mutex<BTreeMap<ClusterId, (String, String)>>,
    lookup: Option<Lookup>,
}

/// A role (`None`: the daemon's own credentials) in a region: LookupEvents' rate-limit unit.
type Slot = (Option<String>, String);
/// A group of one role and region.
type GroupKey = (Option<String>, String, String);
/// When a group's history was asked, and the changes it held.
type Answer = (Instant, Arc<Vec<Change>>);

struct Lookup {
    trail: CloudTrail,
    /// (role, region) → when the next request may go.
    slots: Mutex<HashMap<Slot, Instant>>,
    /// (role, region, group) → when it was asked, and the changes found.
    cache: Mutex<HashMap<GroupKey, Answer>>,
}

impl Attribution {
    /// With `trail`, new findings no feed event explains are looked up in CloudTrail.
    pub fn new(trail: Option<CloudTrail>) -> Attribution {
        let lookup = trail.map(|trail| Lookup { trail, slots: Mutex::default(), cache: Mutex::default() });
        Attribution { recent: Mutex::default(), vpcs: Mutex::default(), lookup }
    }

    /// Keeps a change the feed received, for the findings its re-poll finds.
    pub fn remember(&self, change: Arc<Change>) {
        let mut recent = lock(&self.recent);
        if recent.len() == RECENT {
            recent.pop_front();
        }
        recent.push_back(change);
    }

    /// Where each cluster's groups and VPC are, from `state` and this process's polls.
    pub fn index(&self, state: &PersistedState) -> Index {
        let vpcs = lock(&self.vpcs)
            .iter()
            .map(|(id, (region, vpc))| (region.clone(), vpc.clone(), id.clone()))
            .collect::<Vec<_>>();
        Index::build(state, vpcs)
    }

    /// Fills `changed_by` of the findings of `outcomes` that their cluster's last recorded poll
    /// did not have. A cluster polled for the first time introduces nothing: its findings
    /// predate sgdrift, and a look-up would have no "since".
    pub async fn attribute(&self, spec: &TargetSpec, outcomes: &mut [ClusterOutcome], store: &StateStore) {
        let recent: Vec<Arc<Change>> = lock(&self.recent).iter().cloned().collect();
        for outcome in outcomes.iter_mut() {
            let id = outcome.id.clone();
            let Ok((snapshot, evaluation)) = &mut outcome.result else { continue };
            lock(&self.vpcs).insert(id.clone(), (id.region.clone(), snapshot.vpc_id.clone()));
            let key = cluster_key(&id);
            let previous = store.read_now(|s| {
                s.clusters
                    .get(&key)
                    .map(|c| (c.first_seen.keys().cloned().collect::<HashSet<String>>(), c.report.last_success))
            });
            let Some((seen, last_success)) = previous else { continue };
            let mut new: Vec<&mut Finding> =
                evaluation.findings.iter_mut().filter(|f| !seen.contains(&f.id) && f.changed_by.is_none()).collect();
            // Only a change made since the last clean poll can have introduced a finding.
            let since = last_success.map(|t| t - LOOKBACK_MARGIN);
            let fresh = || recent.iter().map(|c| c.as_ref()).filter(|c| since.is_none_or(|t| c.actor.event_time >= t));
            for f in new.iter_mut() {
                f.changed_by = matching::best(fresh(), f, &id).map(|c| c.actor.clone());
            }
            let (Some(lookup), Some(since)) = (&self.lookup, last_success) else { continue };
            let groups: BTreeSet<String> =
                new.iter().filter(|f| f.changed_by.is_none()).map(|f| f.group_id.clone()).collect();
            for group in groups {
                let changes = lookup.changes(spec, &group, since - LOOKBACK_MARGIN).await;
                for f in new.iter_mut().filter(|f| f.group_id == group && f.changed_by.is_none()) {
                    f.changed_by = matching::best(changes.iter(), f, &id).map(|c| c.actor.clone());
                }
            }
        }
    }
}

impl Lookup {
    /// The changes CloudTrail recorded on `group` since `since`, from the cache or one request
    /// made when the rate limit allows; none when the request fails (logged, and cached so that
    /// a denied permission is not asked again at every poll).
    async fn changes(&self, spec: &TargetSpec, group: &str, since: DateTime<Utc>) -> Arc<Vec<Change>> {
        let key = (spec.role_arn.clone(), spec.region.clone(), group.to_string());
        if let Some((at, changes)) = lock(&self.cache).get(&key) {
            if at.elapsed() < CACHE_FOR {
                return Arc::clone(changes);
            }
        }
        let slot = {
            let mut slots = lock(&self.slots);
            let now = Instant::now();
            let slot = slots.get(&(key.0.clone(), key.1.clone())).copied().unwrap_or(now).max(now);
            slots.insert((key.0.clone(), key.1.clone()), slot + LOOKUP_SPACING);
            slot
        };
        tokio::time::sleep_until(slot).await;
        let changes = match self.trail.lookup(spec.role_arn.as_deref(), &spec.region, group, since).await {
            Ok(records) => records.iter().filter_map(|r| record_change(r)).collect(),
            Err(e) => {
                tracing::warn!(group, region = %spec.region, kind = e.kind(), error = %e, "CloudTrail LookupEvents failed: new findings on this group carry no changed_by");
                Vec::new()
            }
        };
        let changes = Arc::new(changes);
        lock(&self.cache).insert(key, (Instant::now(), Arc::clone(&changes)));
        changes
    }
}

/// One `CloudTrailEvent` of `LookupEvents`, if it is a change sgdrift reads.
fn record_change(record: &str) -> Option<Change> {
    let value: serde_json::Value = serde_json::from_str(record).ok()?;
    match parse_record(&value, &Envelope::default()) {
        Ok(Parsed::Change(c)) => Some(*c),
        Ok(Parsed::Ignored(_)) => None,
        Err(e) => {
            tracing::debug!(error = %e, "a LookupEvents record is not a change event; skipped");
            None
        }
    }
}
