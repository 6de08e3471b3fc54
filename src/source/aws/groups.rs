//! `DescribeSecurityGroups` for every cluster of a target at once: `⌈ids/200⌉` calls side by
//! side, and no call spent on a group that no longer exists.
//!
//! A `GroupIds` request fails as a whole when one id does not exist; a `group-id` filter just
//! leaves it out (and is what the AWS emulator of the tests answers slowly). So each batch is
//! asked by `GroupIds` when every id in it is sure to exist — found by the last poll, or
//! attached to an ENI, which EC2 will not let anyone delete (the cluster's own groups, those of
//! its instances, endpoints and branch ENIs) — and by filter when it holds one that may be
//! gone: a launch template's or remote-access group or a peer never read yet, a group not found
//! last time. A sure id that is gone all the same (deleted since) costs its batch one more call
//! by filter, once: from then on it is known missing.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use aws_sdk_ec2::types::Filter;

use super::{each, lock, paginate, ClusterKey, Inner, Prepared, Scope, EC2_PAGE, FILTER_VALUES};
use crate::source::assemble::{self, ClusterInfo, ClusterMetadata, GroupBatch, GroupRecord};
use crate::source::convert::{CallFailure, Operation};
use crate::source::SourceError;

const DESCRIBE_SECURITY_GROUPS: Operation = Operation::new("ec2", "DescribeSecurityGroups");

/// One group of a `DescribeSecurityGroups` answer, or why it cannot be used (with its id when
/// it has one).
type GroupResult = Result<GroupRecord, (Option<String>, SourceError)>;

/// What the polls of a scope learnt about its groups. Merged, not replaced, by each poll: a
/// poll of one cluster (an event's re-poll, another target on the same role and region) must
/// not make the others' groups doubtful again.
#[derive(Debug, Default, Clone)]
pub(super) struct Seen {
    found: BTreeSet<String>,
    missing: BTreeSet<String>,
}

/// How one batch is asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ask {
    ByIds,
    ByFilter,
}

/// The batches for `ids`: `FILTER_VALUES` each, the sure ids first so that the doubtful ones
/// share as few batches as possible; a batch with a doubtful id is asked by filter.
fn plan(ids: &BTreeSet<String>, sure: &BTreeSet<String>) -> Vec<(Vec<String>, Ask)> {
    let (first, doubtful): (Vec<&String>, Vec<&String>) = ids.iter().partition(|id| sure.contains(*id));
    let ordered: Vec<String> = first.into_iter().chain(doubtful).cloned().collect();
    ordered
        .chunks(FILTER_VALUES)
        .map(|chunk| {
            let ask = if chunk.iter().all(|id| sure.contains(id)) { Ask::ByIds } else { Ask::ByFilter };
            (chunk.to_vec(), ask)
        })
        .collect()
}

/// The groups of a cluster that are attached to an ENI, which EC2 refuses to delete while they
/// are: `DescribeCluster`'s (on the control-plane ENIs), its instances', its VPC endpoints' and
/// its branch ENIs'.
fn attached(info: &ClusterInfo, meta: &ClusterMetadata) -> BTreeSet<String> {
    let mut ids: BTreeSet<String> = info.cluster_security_group_id.iter().cloned().collect();
    ids.extend(info.security_group_ids.iter().cloned());
    ids.extend(meta.instances.iter().filter(|i| i.live).flat_map(|i| i.security_group_ids.iter().cloned()));
    let in_vpc = |vpc: &Option<String>| vpc.is_some() && *vpc == info.vpc_id;
    let endpoints = meta.vpc_endpoints.iter().flatten().filter(|e| in_vpc(&e.vpc_id));
    ids.extend(endpoints.flat_map(|e| e.security_group_ids.iter().cloned()));
    let enis = meta.network_interfaces.iter().flatten().filter(|n| in_vpc(&n.vpc_id));
    ids.extend(enis.flat_map(|n| n.security_group_ids.iter().cloned()));
    ids
}

/// The groups of every prepared cluster, with the peers their rules name: those seen at the
/// last poll in the first batches, new ones in one more. An id asked for and not found is not
/// asked again in the same poll.
pub(super) async fn fetch_cluster_groups(
    inner: &Arc<Inner>,
    scope: &Arc<Scope>,
    prepared: &BTreeMap<String, Result<Prepared, SourceError>>,
) -> GroupBatch {
    let ready: Vec<(ClusterKey, &Prepared)> =
        prepared.iter().filter_map(|(n, p)| Some(((scope.key.clone(), n.clone()), p.as_ref().ok()?))).collect();
    let known_peers = lock(&inner.peers).clone();
    let seen = lock(&inner.seen_groups).get(&scope.key).cloned().unwrap_or_default();
    let (mut ids, mut sure) = (BTreeSet::new(), seen.found);
    for (key, p) in &ready {
        ids.extend(assemble::referenced_groups(&p.metadata.info, &p.metadata.raw));
        ids.extend(known_peers.get(key).into_iter().flatten().cloned());
        sure.extend(attached(&p.metadata.info, &p.metadata.raw));
    }
    sure.retain(|id| !seen.missing.contains(id));
    let mut batch = fetch(inner, scope, &ids, &sure).await;
    let mut new_peers: BTreeSet<String> = BTreeSet::new();
    for (key, p) in &ready {
        let peers = assemble::peer_ids(&p.metadata.info, &p.metadata.raw, &batch.found);
        new_peers.extend(peers.iter().filter(|id| !ids.contains(*id)).cloned());
        lock(&inner.peers).insert(key.clone(), peers);
    }
    if !new_peers.is_empty() {
        let more = fetch(inner, scope, &new_peers, &BTreeSet::new()).await;
        batch.found.extend(more.found);
        batch.failed.extend(more.failed);
        ids.extend(new_peers);
    }
    let (found, missing): (BTreeSet<String>, BTreeSet<String>) =
        ids.into_iter().filter(|id| !batch.failed.contains_key(id)).partition(|id| batch.found.contains_key(id));
    let mut all_seen = lock(&inner.seen_groups);
    let seen = all_seen.entry(scope.key.clone()).or_default();
    seen.found.retain(|id| !missing.contains(id));
    seen.missing.retain(|id| !found.contains(id));
    seen.found.extend(found);
    seen.missing.extend(missing);
    drop(all_seen);
    for (key, p) in &ready {
        notice_vanished_cluster_groups(inner, key, &p.metadata.info, &batch);
    }
    batch
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

/// Reads `ids` in the batches of [`plan`], side by side (the EC2 gate caps how many at once).
async fn fetch(inner: &Arc<Inner>, scope: &Arc<Scope>, ids: &BTreeSet<String>, sure: &BTreeSet<String>) -> GroupBatch {
    let batches = plan(ids, sure);
    let answers = each(batches.clone(), |(chunk, ask)| {
        let (inner, scope) = (Arc::clone(inner), Arc::clone(scope));
        async move {
            match describe(&inner, &scope, &chunk, ask).await {
                // A sure group gone after all: this batch once more, by filter.
                Err(f) if ask == Ask::ByIds && is_missing_group(&f) => {
                    describe(&inner, &scope, &chunk, Ask::ByFilter).await
                }
                other => other,
            }
        }
    })
    .await;
    let mut batch = GroupBatch::default();
    for ((chunk, _), answer) in batches.iter().zip(answers) {
        match answer.and_then(|r| r.map_err(|f| f.error)) {
            Ok(records) => take_records(&mut batch, chunk, records),
            Err(e) => batch.failed.extend(chunk.iter().map(|id| (id.clone(), e.clone()))),
        }
    }
    batch
}

fn is_missing_group(f: &CallFailure) -> bool {
    matches!(f.code.as_deref(), Some("InvalidGroup.NotFound" | "InvalidGroupId.NotFound" | "InvalidGroupId.Malformed"))
}

/// One `DescribeSecurityGroups` walk for `ids`.
async fn describe(inner: &Inner, scope: &Scope, ids: &[String], ask: Ask) -> Result<Vec<GroupResult>, CallFailure> {
    paginate(DESCRIBE_SECURITY_GROUPS, |token| async move {
        let req = scope.ec2.describe_security_groups().set_next_token(token);
        let req = match ask {
            // Without a page size EC2 answers all the named groups at once.
            Ask::ByIds => req.set_group_ids(Some(ids.to_vec())),
            Ask::ByFilter => req
                .filters(Filter::builder().name("group-id").set_values(Some(ids.to_vec())).build())
                .max_results(EC2_PAGE),
        };
        let out = inner.scoped(scope, DESCRIBE_SECURITY_GROUPS, req.send()).await?;
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
    })
    .await
}

fn take_records(batch: &mut GroupBatch, asked: &[String], records: Vec<GroupResult>) {
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
        for id in asked.iter().filter(|id| !batch.found.contains_key(*id)) {
            batch.failed.entry(id.clone()).or_insert_with(|| e.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: usize, prefix: &str) -> Vec<String> {
        (0..n).map(|i| format!("sg-{prefix}{i:04}")).collect()
    }

    #[test]
    fn batches_hold_200_ids_with_the_doubtful_ones_together_asked_by_filter() {
        // (sure ids, doubtful ids, the batches: size and how each is asked)
        let table: [(usize, usize, &[(usize, Ask)]); 5] = [
            (5, 0, &[(5, Ask::ByIds)]),
            (0, 3, &[(3, Ask::ByFilter)]),
            (400, 1, &[(200, Ask::ByIds), (200, Ask::ByIds), (1, Ask::ByFilter)]),
            // The doubtful share the last batch with sure ones: ⌈ids/200⌉ calls, never more.
            (399, 1, &[(200, Ask::ByIds), (200, Ask::ByFilter)]),
            (150, 100, &[(200, Ask::ByFilter), (50, Ask::ByFilter)]),
        ];
        for (n_sure, n_doubtful, want) in table {
            let sure: BTreeSet<String> = ids(n_sure, "a").into_iter().collect();
            let all: BTreeSet<String> = sure.iter().cloned().chain(ids(n_doubtful, "b")).collect();
            let got: Vec<(usize, Ask)> = plan(&all, &sure).iter().map(|(c, a)| (c.len(), *a)).collect();
            assert_eq!(got, want, "{n_sure} sure, {n_doubtful} doubtful");
            let asked: BTreeSet<String> = plan(&all, &sure).into_iter().flat_map(|(c, _)| c).collect();
            assert_eq!(asked, all, "every id asked once");
        }
    }
}
