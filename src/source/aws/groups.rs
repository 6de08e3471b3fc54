//! `DescribeSecurityGroups` for every cluster of a target at once: the clusters' VPCs listed by
//! `vpc-id` filter in pages of 1,000 — ⌈SGs/1000⌉ calls for a fleet of VPCs that hold little
//! besides their clusters — and what a listing cannot cover by `group-id` filter, 200 ids a call.
//!
//! A listing needs no list of ids, so a group deleted by hand is simply absent from it, and a
//! rule's peer in the same VPC (the common case) comes with it: a steady poll is the listing
//! alone. A VPC that holds many groups besides its clusters' (a shared VPC) would make the
//! listing read more than it needs: once a listing has shown that a VPC holds more than
//! [`LISTING_FACTOR`] groups per group wanted, its groups are asked by id instead, which costs
//! fewer calls there (a page of ids names 200 groups, a listing page carries 1,000). A filter,
//! not `GroupIds`: a `GroupIds` request fails as a whole when one id does not exist.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use aws_sdk_ec2::types::Filter;

use super::{each, lock, paginate, ClusterKey, Inner, Prepared, Scope, EC2_PAGE, FILTER_VALUES};
use crate::source::assemble::{self, ClusterInfo, GroupBatch, GroupRecord};
use crate::source::convert::{CallFailure, Operation};
use crate::source::SourceError;

const DESCRIBE_SECURITY_GROUPS: Operation = Operation::new("ec2", "DescribeSecurityGroups");

/// Ids per listed group at which asking by id costs fewer calls than listing: an id filter
/// names 200 groups a call, a listing page carries 1,000.
const LISTING_FACTOR: usize = EC2_PAGE as usize / FILTER_VALUES;

/// One group of a `DescribeSecurityGroups` answer, or why it cannot be used (with its id when
/// it has one).
type GroupResult = Result<GroupRecord, (Option<String>, SourceError)>;

/// What the polls of a scope learnt about its groups. Merged, not replaced, by each poll: a
/// poll of one cluster (an event's re-poll, another target on the same role and region) must
/// not make the others' groups doubtful again.
#[derive(Debug, Default, Clone)]
pub(super) struct Seen {
    /// The VPC of each group found.
    vpc_of: BTreeMap<String, Option<String>>,
    missing: BTreeSet<String>,
    /// How many groups each VPC held at its last listing.
    vpc_groups: BTreeMap<String, usize>,
}

/// One `DescribeSecurityGroups` walk.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Ask {
    /// Every group of these VPCs.
    Vpcs(Vec<String>),
    /// These groups.
    Ids(Vec<String>),
}

/// Which of the VPCs holding the clusters' own groups (`own`) are listed: those never listed,
/// and those whose last listing held at most [`LISTING_FACTOR`] groups per group wanted there.
/// The others' groups are asked by id.
fn listed_vpcs(own: &BTreeMap<String, BTreeSet<String>>, sizes: &BTreeMap<String, usize>) -> BTreeSet<String> {
    own.iter()
        .filter(|(vpc, want)| sizes.get(*vpc).is_none_or(|&held| held <= LISTING_FACTOR * want.len()))
        .map(|(vpc, _)| vpc.clone())
        .collect()
}

/// The walks: the VPCs' listings and the ids, 200 values a walk.
fn asks(vpcs: &BTreeSet<String>, ids: &BTreeSet<String>) -> Vec<Ask> {
    let (vpcs, ids): (Vec<String>, Vec<String>) = (vpcs.iter().cloned().collect(), ids.iter().cloned().collect());
    let listings = vpcs.chunks(FILTER_VALUES).map(|c| Ask::Vpcs(c.to_vec()));
    listings.chain(ids.chunks(FILTER_VALUES).map(|c| Ask::Ids(c.to_vec()))).collect()
}

/// The groups of every prepared cluster, with the peers their rules name.
///
/// A cluster's own groups (its cluster and control-plane SGs, its nodes', endpoints' and pods')
/// live in its VPC — EC2 attaches no group of another VPC — so one its VPC's listing does not
/// hold is gone, at no further cost. A peer may live anywhere (a peered VPC, another account):
/// a known peer outside the listed VPCs is asked by id with the first walks, a new one that no
/// listing held after them, and one asked in vain is known missing: later polls spend no call
/// on it.
pub(super) async fn fetch_cluster_groups(
    inner: &Arc<Inner>,
    scope: &Arc<Scope>,
    prepared: &BTreeMap<String, Result<Prepared, SourceError>>,
) -> GroupBatch {
    let ready: Vec<(ClusterKey, &Prepared)> =
        prepared.iter().filter_map(|(n, p)| Some(((scope.key.clone(), n.clone()), p.as_ref().ok()?))).collect();
    let known_peers = lock(&inner.peers).clone();
    let seen = lock(&inner.seen_groups).get(&scope.key).cloned().unwrap_or_default();
    let (mut own, mut by_id): (BTreeMap<String, BTreeSet<String>>, BTreeSet<String>) = Default::default();
    for (_, p) in &ready {
        let ids = assemble::referenced_groups(&p.metadata.info, &p.metadata.raw);
        match &p.metadata.info.vpc_id {
            Some(vpc) => own.entry(vpc.clone()).or_default().extend(ids),
            None => by_id.extend(ids),
        }
    }
    let listed = listed_vpcs(&own, &seen.vpc_groups);
    by_id.extend(own.iter().filter(|(vpc, _)| !listed.contains(*vpc)).flat_map(|(_, ids)| ids.iter().cloned()));
    let mut asked: BTreeSet<String> = own.values().flatten().chain(&by_id).cloned().collect();
    // What each listing is expected to hold: a failed one fails these, and does not make them missing.
    let mut covered = own.clone();
    let peers = ready.iter().flat_map(|(key, _)| known_peers.get(key).into_iter().flatten());
    for id in peers.filter(|id| !seen.missing.contains(*id) && !asked.contains(*id)).cloned().collect::<Vec<_>>() {
        match seen.vpc_of.get(&id).cloned().flatten().filter(|v| listed.contains(v)) {
            Some(vpc) => covered.entry(vpc).or_default().insert(id.clone()),
            None => by_id.insert(id.clone()),
        };
        asked.insert(id);
    }
    let (mut batch, sizes) = fetch(inner, scope, asks(&listed, &by_id), &covered).await;
    let mut again = BTreeSet::new();
    for (key, p) in &ready {
        let peers = assemble::peer_ids(&p.metadata.info, &p.metadata.raw, &batch.found);
        let new = peers.iter().filter(|id| !asked.contains(*id) && !seen.missing.contains(*id));
        again.extend(new.filter(|id| is_unanswered(&batch, id)).cloned());
        asked.extend(peers.iter().cloned());
        lock(&inner.peers).insert(key.clone(), peers);
    }
    if !again.is_empty() {
        let (more, _) = fetch(inner, scope, asks(&BTreeSet::new(), &again), &BTreeMap::new()).await;
        batch.found.extend(more.found);
        batch.failed.extend(more.failed);
    }
    // The listings' other groups served their purpose: peers found without a call.
    batch.found.retain(|id, _| asked.contains(id));
    batch.failed.retain(|id, _| asked.contains(id));
    remember(inner, scope, &asked, &batch, sizes);
    for (key, p) in &ready {
        notice_vanished_cluster_groups(inner, key, &p.metadata.info, &batch);
    }
    batch
}

fn is_unanswered(batch: &GroupBatch, id: &str) -> bool {
    !batch.found.contains_key(id) && !batch.failed.contains_key(id)
}

/// What this poll learnt, merged into the scope's [`Seen`].
fn remember(
    inner: &Inner,
    scope: &Scope,
    asked: &BTreeSet<String>,
    batch: &GroupBatch,
    sizes: BTreeMap<String, usize>,
) {
    let missing = asked.iter().filter(|id| is_unanswered(batch, id)).cloned();
    let mut all_seen = lock(&inner.seen_groups);
    let seen = all_seen.entry(scope.key.clone()).or_default();
    for id in missing {
        seen.vpc_of.remove(&id);
        seen.missing.insert(id);
    }
    for (id, g) in &batch.found {
        seen.missing.remove(id);
        seen.vpc_of.insert(id.clone(), g.vpc_id.clone());
    }
    seen.vpc_groups.extend(sizes);
}

/// A cluster SG or control-plane SG of cached metadata that was there at the last poll and is
/// gone now means the cluster was deleted and made again under its name, or its groups
/// replaced: its metadata is read again at the next poll, once. A group that stays gone after
/// that (deleted by hand) is drift to report, and costs no further reads.
fn notice_vanished_cluster_groups(inner: &Inner, key: &ClusterKey, info: &ClusterInfo, batch: &GroupBatch) {
    let mut own = info.cluster_security_group_id.iter().chain(&info.security_group_ids);
    let found = own.all(|id| batch.found.contains_key(id) || batch.failed.contains_key(id));
    let before = lock(&inner.own_groups_found).insert(key.clone(), found);
    if before == Some(true) && !found {
        lock(&inner.due).insert(key.clone());
    }
}

/// Runs the walks side by side (the EC2 gate caps how many at once): every group they found,
/// the ids a failed walk was for (`covered`: the groups expected in each listed VPC) marked
/// with its error, and how many groups each listed VPC held.
async fn fetch(
    inner: &Arc<Inner>,
    scope: &Arc<Scope>,
    asks: Vec<Ask>,
    covered: &BTreeMap<String, BTreeSet<String>>,
) -> (GroupBatch, BTreeMap<String, usize>) {
    let answers = each(asks.clone(), |ask| {
        let (inner, scope) = (Arc::clone(inner), Arc::clone(scope));
        async move { describe(&inner, &scope, &ask).await }
    })
    .await;
    let (mut batch, mut sizes) = (GroupBatch::default(), BTreeMap::new());
    for (ask, answer) in asks.iter().zip(answers) {
        let covered: Vec<&String> = match ask {
            Ask::Vpcs(vpcs) => vpcs.iter().flat_map(|v| covered.get(v).into_iter().flatten()).collect(),
            Ask::Ids(ids) => ids.iter().collect(),
        };
        match answer.and_then(|r| r.map_err(|f| f.error)) {
            Ok(records) => {
                if let Ask::Vpcs(vpcs) = ask {
                    sizes.extend(vpcs.iter().map(|v| (v.clone(), 0)));
                    for vpc in records.iter().filter_map(|r| r.as_ref().ok()?.vpc_id.clone()) {
                        *sizes.entry(vpc).or_default() += 1;
                    }
                }
                take_records(&mut batch, &covered, records);
            }
            Err(e) => batch.failed.extend(covered.into_iter().map(|id| (id.clone(), e.clone()))),
        }
    }
    (batch, sizes)
}

/// One `DescribeSecurityGroups` walk, in pages of 1,000.
async fn describe(inner: &Inner, scope: &Scope, ask: &Ask) -> Result<Vec<GroupResult>, CallFailure> {
    let filter = match ask {
        Ask::Vpcs(vpcs) => Filter::builder().name("vpc-id").set_values(Some(vpcs.clone())).build(),
        Ask::Ids(ids) => Filter::builder().name("group-id").set_values(Some(ids.clone())).build(),
    };
    paginate(DESCRIBE_SECURITY_GROUPS, |token| {
        let req = scope.ec2.describe_security_groups().filters(filter.clone()).max_results(EC2_PAGE);
        async move {
            let out = inner.scoped(scope, DESCRIBE_SECURITY_GROUPS, req.set_next_token(token).send()).await?;
            let records = out
                .security_groups()
                .iter()
                .map(|sg| {
                    GroupRecord::try_from(sg).map_err(|e| {
                        let error = SourceError::Server {
                            operation: DESCRIBE_SECURITY_GROUPS.action(),
                            message: format!("cannot read security group {e}"),
                        };
                        (sg.group_id().map(str::to_string), error)
                    })
                })
                .collect();
            Ok((records, out.next_token().map(str::to_string)))
        }
    })
    .await
}

fn take_records(batch: &mut GroupBatch, asked: &[&String], records: Vec<GroupResult>) {
    let mut anonymous = None;
    for r in records {
        match r {
            Ok(g) => {
                batch.found.insert(g.id.clone(), g);
            }
            Err((Some(id), e)) => {
                batch.failed.insert(id, e);
            }
            Err((None, e)) => anonymous = Some(e),
        }
    }
    // A group without an id could be any of the batch's ids that was not read.
    if let Some(e) = anonymous {
        for id in asked.iter().filter(|id| !batch.found.contains_key(id.as_str())) {
            batch.failed.entry((*id).clone()).or_insert_with(|| e.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: usize, prefix: &str) -> BTreeSet<String> {
        (0..n).map(|i| format!("sg-{prefix}{i:04}")).collect()
    }

    fn shape(asks: &[Ask]) -> Vec<(char, usize)> {
        asks.iter()
            .map(|a| match a {
                Ask::Vpcs(v) => ('v', v.len()),
                Ask::Ids(i) => ('i', i.len()),
            })
            .collect()
    }

    #[test]
    fn vpcs_are_listed_unless_their_last_listing_held_five_times_more_groups_than_wanted() {
        // (VPCs with 5 wanted groups each, the groups each held at its last listing, ids asked
        // by id besides, the walks: listing ('v') or ids ('i') and how many values each)
        let table: [(usize, Option<usize>, usize, &[(char, usize)]); 6] = [
            (1, None, 0, &[('v', 1)]),
            // 200 VPC values a filter.
            (450, None, 0, &[('v', 200), ('v', 200), ('v', 50)]),
            (3, Some(25), 0, &[('v', 3)]),
            // A shared VPC: 26 groups for 5 wanted, the 5 asked by id.
            (1, Some(26), 0, &[('i', 5)]),
            (60, Some(1000), 0, &[('i', 200), ('i', 100)]),
            (1, None, 3, &[('v', 1), ('i', 3)]),
        ];
        for (n_vpcs, held, extra, want) in table {
            let own: BTreeMap<String, BTreeSet<String>> =
                (0..n_vpcs).map(|v| (format!("vpc-{v:04}"), ids(5, &format!("{v:04}-")))).collect();
            let sizes: BTreeMap<String, usize> =
                held.map(|h| own.keys().map(|v| (v.clone(), h)).collect()).unwrap_or_default();
            let listed = listed_vpcs(&own, &sizes);
            let mut by_id = ids(extra, "extra");
            by_id.extend(own.iter().filter(|(v, _)| !listed.contains(*v)).flat_map(|(_, i)| i.iter().cloned()));
            assert_eq!(shape(&asks(&listed, &by_id)), want, "{n_vpcs} VPCs holding {held:?}, {extra} more");
        }
    }
}
