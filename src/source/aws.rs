//! The `aws` source: discovery and SG reads through aws-sdk-eks and aws-sdk-ec2, batched per
//! account and region, metadata cached, every call counted, timed, classified and paced.
//!
//! A steady poll of a target makes, per account and region: one `ListClusters` walk (only for
//! `clusters = ["*"]`; 100 clusters a page) and `⌈SGs/1000⌉` `DescribeSecurityGroups`: the
//! clusters' VPCs listed by `vpc-id` filter, which brings the peers in those VPCs along (a shared
//! VPC holding many other groups is asked by `group-id` filter instead, and a peer elsewhere
//! costs one walk by id; see [`groups`]). Everything else changes rarely and is read again
//! only once `poll.metadata_interval` has passed, or at once after [`AwsSource::invalidate`]:
//! per cluster `DescribeCluster`, its node groups and Fargate profiles (EKS has no batch form:
//! one list per cluster and one describe per node group or profile) and, for clusters with pods
//! that have their own SGs, the `vpc-cni` add-on; per region, for all the clusters being
//! refreshed together, their instances (one `tag-key` walk), VPCs, endpoints, route tables and
//! branch ENIs (each one walk filtered by every cluster VPC), the `$Latest`/`$Default` launch
//! template versions (one walk; a pinned version neither of those is read on its own), and the
//! prefix lists. What the reads mean is decided by `assemble`, shared with the files source.
//!
//! Calls of one account and region pass a gate per service ([`limits`]): a cap on calls in
//! flight and an optional request rate, which is what keeps sgdrift inside the account's quota;
//! throttled calls are retried with the SDK's standard strategy (exponential backoff with jitter).

mod groups;
mod limits;
mod metadata;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::source::session;
use aws_config::SdkConfig;
use aws_sdk_ec2::config::retry::RetryPartition;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use aws_smithy_types::retry::RetryConfig;
use tokio::sync::OnceCell;
use tokio::task::JoinSet;

use super::assemble::{self, ClusterInfo, ClusterMetadata, RawCluster};
use super::convert::{self, CallFailure};
use super::{AwsCallMetrics, CallCounts, ClusterPoll, SourceError, TargetPoll, TargetSpec};
use crate::config::PollConfig;
use crate::model::ClusterId;
use limits::Gate;

pub use super::convert::Operation;

/// Values one EC2 filter takes in a call: the ids, tag keys or VPCs one request asks for.
pub const FILTER_VALUES: usize = 200;

/// The largest page of EC2's `Describe*` calls that allow 1,000 (`MaxResults`).
const EC2_PAGE: i32 = 1000;

/// A paginated walk that has not ended after this many pages is not going to.
const MAX_PAGES: usize = 1000;

const LIST_CLUSTERS: Operation = Operation::new("eks", "ListClusters");
const DESCRIBE_MANAGED_PREFIX_LISTS: Operation = Operation::new("ec2", "DescribeManagedPrefixLists");
const GET_CALLER_IDENTITY: Operation = Operation::new("sts", "GetCallerIdentity");

/// How the source talks to AWS; `from_poll` takes it from `[poll]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsOptions {
    /// Per call, retries included (`poll.timeout`).
    pub timeout: Duration,
    /// How long a cluster's `DescribeCluster`, node groups, Fargate profiles, launch templates,
    /// instances, VPC, endpoints, route tables, branch ENIs and the prefix lists are reused
    /// (`poll.metadata_interval`).
    pub metadata_interval: Duration,
    /// EKS calls of one account and region in flight at once (`poll.eks_concurrency`).
    pub eks_concurrency: usize,
    /// EC2 calls of one account and region in flight at once (`poll.ec2_concurrency`).
    pub ec2_concurrency: usize,
    /// EKS calls started per second per account and region; `None`: no limit.
    pub eks_requests_per_second: Option<u32>,
    /// EC2 calls started per second per account and region; `None`: no limit.
    pub ec2_requests_per_second: Option<u32>,
    /// Attempts per call with the standard retry strategy; `None` keeps what the SDK config
    /// says (`AWS_MAX_ATTEMPTS`, else 3).
    pub max_attempts: Option<u32>,
}

impl Default for AwsOptions {
    fn default() -> Self {
        AwsOptions::from_poll(&PollConfig::default())
    }
}

impl AwsOptions {
    pub fn from_poll(poll: &PollConfig) -> Self {
        let rate = |r: u32| (r > 0).then_some(r);
        AwsOptions {
            timeout: poll.timeout,
            metadata_interval: poll.metadata_interval,
            eks_concurrency: poll.eks_concurrency.max(1),
            ec2_concurrency: poll.ec2_concurrency.max(1),
            eks_requests_per_second: rate(poll.eks_requests_per_second),
            ec2_requests_per_second: rate(poll.ec2_requests_per_second),
            max_attempts: None,
        }
    }
}

/// A poisoned lock only means another poll panicked mid-update of a cache or a counter; the
/// data is still usable, and the poll loop must not panic in turn.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Reads EKS clusters and their security groups from AWS.
pub struct AwsSource {
    inner: Arc<Inner>,
}

impl AwsSource {
    /// Credentials, region and endpoint from the standard chain (`AWS_*` variables, profiles,
    /// web identity, IMDS); timeouts, the metadata interval and the gates from `[poll]`.
    /// Calls are counted into `calls`.
    pub async fn new(poll: &PollConfig, calls: AwsCallMetrics) -> AwsSource {
        let options = AwsOptions::from_poll(poll);
        AwsSource::with_calls(session::load(options.timeout).await, options, calls)
    }

    /// From an SDK config built elsewhere (tests point it at a local emulator); calls are
    /// counted apart, in [`AwsSource::stats`].
    pub fn from_sdk_config(base: SdkConfig, options: AwsOptions) -> AwsSource {
        AwsSource::with_calls(base, options, AwsCallMetrics::unregistered())
    }

    fn with_calls(base: SdkConfig, options: AwsOptions, calls: AwsCallMetrics) -> AwsSource {
        let mut b = session::with_timeout(base.clone(), options.timeout).to_builder();
        // Standard, not adaptive: the adaptive strategy's client-side rate limiter, shared by
        // every call of an account and region, is cut at each throttle, and with a quarter of
        // the requests throttled the first poll of every cluster waited past a minute
        // (tests/it/fault_suite.rs, aws-throttled; tried again with a partition per account).
        // The gates of `limits` keep the request rate per account and region instead.
        let attempts = options.max_attempts.or_else(|| base.retry_config().map(|r| r.max_attempts()));
        let retry = RetryConfig::standard();
        b.set_retry_config(Some(match attempts {
            Some(n) => retry.with_max_attempts(n.max(1)),
            None => retry,
        }));
        AwsSource {
            inner: Arc::new(Inner {
                base: b.build(),
                options,
                stats: calls,
                scopes: tokio::sync::Mutex::new(HashMap::new()),
                metadata: Mutex::new(HashMap::new()),
                due: Mutex::new(HashSet::new()),
                peers: Mutex::new(HashMap::new()),
                own_groups_found: Mutex::new(HashMap::new()),
                seen_groups: Mutex::new(HashMap::new()),
                prefix_lists: Mutex::new(HashMap::new()),
                listed: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Reads every cluster `target` names. A failure before any cluster is known (credentials,
    /// `GetCallerIdentity`, a first `ListClusters`) goes in `TargetPoll::error`; a failure of one
    /// cluster fails that cluster only.
    pub async fn poll(&self, target: &TargetSpec) -> TargetPoll {
        Arc::clone(&self.inner).poll(target.clone()).await
    }

    /// Makes the next poll of `cluster` in `target`'s account and region read its
    /// `DescribeCluster` and the rest of its metadata again, whatever their age: for a change
    /// feed that saw EKS change the cluster (its endpoint access, a node group added or gone).
    /// Until then the cached metadata stays in use.
    pub fn invalidate(&self, target: &TargetSpec, cluster: &str) {
        let key = ScopeKey { role_arn: target.role_arn.clone(), region: target.region.clone() };
        lock(&self.inner.due).insert((key, cluster.to_string()));
    }

    /// `"<service>:<operation>"` → calls made so far.
    pub fn call_counts(&self) -> CallCounts {
        self.inner.stats.call_counts()
    }

    /// The counters it records into (requests, errors by kind, durations).
    pub fn stats(&self) -> AwsCallMetrics {
        self.inner.stats.clone()
    }

    /// The base SDK config (credentials, endpoint, timeouts, retries) for the source's siblings
    /// that call other services (organization discovery).
    pub(super) fn sdk_config(&self) -> &SdkConfig {
        &self.inner.base
    }

    /// One call, timed and counted like the source's own.
    pub(super) async fn counted<T, E>(
        &self,
        op: Operation,
        fut: impl Future<Output = Result<T, SdkError<E, HttpResponse>>>,
    ) -> Result<T, CallFailure>
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        self.inner.call(op, fut).await
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct ScopeKey {
    role_arn: Option<String>,
    region: String,
}

/// The clients of one (role, region), the account they act in, and the gates its calls pass.
struct Scope {
    key: ScopeKey,
    eks: aws_sdk_eks::Client,
    ec2: aws_sdk_ec2::Client,
    sts: aws_sdk_sts::Client,
    account: OnceCell<String>,
    eks_gate: Gate,
    ec2_gate: Gate,
}

impl Scope {
    fn gate(&self, op: Operation) -> Option<&Gate> {
        match op.service {
            "eks" => Some(&self.eks_gate),
            "ec2" => Some(&self.ec2_gate),
            _ => None,
        }
    }
}

/// One cluster's `DescribeCluster` and metadata (`assemble::ClusterMetadata`), read together
/// and kept for `metadata_interval`.
#[derive(Debug)]
struct CachedMetadata {
    fetched_at: Instant,
    info: ClusterInfo,
    raw: ClusterMetadata,
    warnings: Vec<String>,
}

struct PrefixLists {
    fetched_at: Instant,
    names: BTreeMap<String, String>,
}

type ClusterKey = (ScopeKey, String);

struct Inner {
    base: SdkConfig,
    options: AwsOptions,
    stats: AwsCallMetrics,
    scopes: tokio::sync::Mutex<HashMap<ScopeKey, Arc<Scope>>>,
    metadata: Mutex<HashMap<ClusterKey, Arc<CachedMetadata>>>,
    /// Clusters whose metadata the next poll reads again whatever its age.
    due: Mutex<HashSet<ClusterKey>>,
    /// The peers each cluster's groups named at the last poll: read in the first batch, so a
    /// steady poll needs no second one.
    peers: Mutex<HashMap<ClusterKey, BTreeSet<String>>>,
    /// Whether the groups `DescribeCluster` names were all found at the last poll: when they
    /// vanish from cached metadata, the cluster was probably replaced, and is read again.
    own_groups_found: Mutex<HashMap<ClusterKey, bool>>,
    /// Per scope, the groups its last poll found and those it asked for in vain.
    seen_groups: Mutex<HashMap<ScopeKey, groups::Seen>>,
    prefix_lists: Mutex<HashMap<ScopeKey, Arc<PrefixLists>>>,
    /// What each scope's last successful `ListClusters` named (see `wanted_clusters`).
    listed: Mutex<HashMap<ScopeKey, BTreeSet<String>>>,
}

/// A cluster with its metadata, waiting for its groups.
struct Prepared {
    metadata: Arc<CachedMetadata>,
    warnings: Vec<String>,
}

impl Inner {
    async fn poll(self: Arc<Self>, target: TargetSpec) -> TargetPoll {
        let scope = self.scope(&target).await;
        let account = match self.account(&scope).await {
            Ok(a) => a,
            Err(e) => return TargetPoll { clusters: Vec::new(), error: Some((target.region.clone(), e.error)) },
        };
        let wildcard = target.clusters.iter().any(|c| c == "*");
        let names = if wildcard {
            match self.wanted_clusters(&scope, &target).await {
                Ok(names) => names,
                Err(e) => return TargetPoll { clusters: Vec::new(), error: Some((target.region.clone(), e.error)) },
            }
        } else {
            target.clusters.iter().cloned().collect()
        };
        self.forget_other_clusters(&scope.key, &names, wildcard);

        let prepared = Box::pin(self.prepare(&scope, &names, wildcard)).await;
        let batch = Box::pin(groups::fetch_cluster_groups(&self, &scope, &prepared)).await;
        let (prefix_lists, prefix_warning) = Box::pin(self.prefix_lists(&scope)).await;

        let clusters = prepared
            .into_iter()
            .map(|(name, result)| {
                let id = ClusterId { account_id: account.clone(), region: target.region.clone(), name };
                let result = result.and_then(|mut p| {
                    p.warnings.extend(p.metadata.warnings.iter().cloned());
                    p.warnings.extend(prefix_warning.iter().cloned());
                    assemble::assemble(RawCluster {
                        id: id.clone(),
                        info: &p.metadata.info,
                        metadata: &p.metadata.raw,
                        groups: &batch,
                        prefix_lists: &prefix_lists,
                        warnings: p.warnings,
                    })
                });
                ClusterPoll { id, result }
            })
            .collect();
        TargetPoll { clusters, error: None }
    }

    /// Every named cluster's metadata: from the cache while it is fresh, else read again for
    /// all the clusters that need it together. A refresh that fails keeps the last metadata
    /// with a warning; without one, or when the cluster itself is gone, the cluster fails.
    /// `wildcard`: `names` are every cluster of the region.
    async fn prepare(
        self: &Arc<Self>,
        scope: &Arc<Scope>,
        names: &BTreeSet<String>,
        wildcard: bool,
    ) -> BTreeMap<String, Result<Prepared, SourceError>> {
        let mut out = BTreeMap::new();
        let mut stale: BTreeMap<String, Option<Arc<CachedMetadata>>> = BTreeMap::new();
        {
            let cache = lock(&self.metadata);
            let due = lock(&self.due);
            for name in names {
                let key = (scope.key.clone(), name.clone());
                let cached = cache.get(&key).cloned();
                match cached {
                    Some(m) if m.fetched_at.elapsed() < self.options.metadata_interval && !due.contains(&key) => {
                        out.insert(name.clone(), Ok(Prepared { metadata: m, warnings: Vec::new() }));
                    }
                    cached => {
                        stale.insert(name.clone(), cached);
                    }
                }
            }
        }
        if stale.is_empty() {
            return out;
        }
        let whole_region = wildcard && stale.len() == names.len();
        let refreshed = Box::pin(metadata::refresh(self, scope, stale.keys().cloned().collect(), whole_region)).await;
        for (name, result) in refreshed {
            let key = (scope.key.clone(), name.clone());
            let prepared = match (result, stale.remove(&name).flatten()) {
                (Ok(m), _) => {
                    let m = Arc::new(m);
                    lock(&self.metadata).insert(key.clone(), Arc::clone(&m));
                    lock(&self.due).remove(&key);
                    Ok(Prepared { metadata: m, warnings: Vec::new() })
                }
                (Err(f), _) if f.gone => Err(f.failure.error),
                // Better last half-hour's node groups than no cluster at all; the next poll
                // tries again, since the stale copy keeps its old timestamp.
                (Err(f), Some(old)) => {
                    let warning = format!(
                        "the cluster's metadata could not be refreshed ({}); using what was read {}s ago",
                        f.failure.error,
                        old.fetched_at.elapsed().as_secs()
                    );
                    Ok(Prepared { metadata: old, warnings: vec![warning] })
                }
                (Err(f), None) => Err(f.failure.error),
            };
            out.insert(name, prepared);
        }
        out
    }

    async fn scope(&self, target: &TargetSpec) -> Arc<Scope> {
        let key = ScopeKey { role_arn: target.role_arn.clone(), region: target.region.clone() };
        let mut scopes = self.scopes.lock().await;
        if let Some(s) = scopes.get(&key) {
            return Arc::clone(s);
        }
        let conf = session::scoped(&self.base, &key.region, key.role_arn.as_deref(), "sgdrift").await;
        let partition = |service| retry_partition(&key, service);
        let o = &self.options;
        let scope = Arc::new(Scope {
            key: key.clone(),
            eks: aws_sdk_eks::Client::from_conf(
                aws_sdk_eks::config::Builder::from(&conf).retry_partition(partition("eks")).build(),
            ),
            ec2: aws_sdk_ec2::Client::from_conf(
                aws_sdk_ec2::config::Builder::from(&conf).retry_partition(partition("ec2")).build(),
            ),
            sts: aws_sdk_sts::Client::from_conf(
                aws_sdk_sts::config::Builder::from(&conf).retry_partition(partition("sts")).build(),
            ),
            account: OnceCell::new(),
            eks_gate: Gate::new(o.eks_concurrency, o.eks_requests_per_second),
            ec2_gate: Gate::new(o.ec2_concurrency, o.ec2_requests_per_second),
        });
        scopes.insert(key, Arc::clone(&scope));
        scope
    }

    /// The account the scope's credentials act in, asked once and kept.
    async fn account(&self, scope: &Scope) -> Result<String, CallFailure> {
        scope
            .account
            .get_or_try_init(|| async {
                let out = self.call(GET_CALLER_IDENTITY, scope.sts.get_caller_identity().send()).await?;
                out.account().map(str::to_string).ok_or_else(|| CallFailure {
                    error: SourceError::Server {
                        operation: GET_CALLER_IDENTITY.action(),
                        message: "the answer names no account".into(),
                    },
                    code: None,
                    message: String::new(),
                })
            })
            .await
            .cloned()
    }

    /// One call of the scope, through its service's gate.
    async fn scoped<T, E>(
        &self,
        scope: &Scope,
        op: Operation,
        fut: impl Future<Output = Result<T, SdkError<E, HttpResponse>>>,
    ) -> Result<T, CallFailure>
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let _permit = match scope.gate(op) {
            Some(gate) => gate.enter().await,
            None => None,
        };
        self.call(op, fut).await
    }

    /// Times, counts and classifies one call.
    async fn call<T, E>(
        &self,
        op: Operation,
        fut: impl Future<Output = Result<T, SdkError<E, HttpResponse>>>,
    ) -> Result<T, CallFailure>
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        self.stats.timed(op, self.options.timeout, fut).await
    }

    /// The clusters `target` wants among those `ListClusters` names. When the listing is
    /// throttled (past the SDK's retries) after an earlier one succeeded, the clusters of that
    /// earlier listing: AWS throttles each API on its own, so one throttled call must not leave
    /// every cluster of the target unevaluated for a cycle (each cluster's own calls still say
    /// whether it is there). AWS down or failing stays a failure of the whole target.
    async fn wanted_clusters(&self, scope: &Scope, target: &TargetSpec) -> Result<BTreeSet<String>, CallFailure> {
        let all: BTreeSet<String> = match self.list_clusters(scope).await {
            Ok(names) => {
                let names: BTreeSet<String> = names.into_iter().collect();
                lock(&self.listed).insert(scope.key.clone(), names.clone());
                names
            }
            Err(e) if e.error.kind() == "throttled" => {
                let Some(last) = lock(&self.listed).get(&scope.key).cloned() else { return Err(e) };
                tracing::warn!(
                    region = %scope.key.region, error = %e.error, clusters = last.len(),
                    "ListClusters throttled; polling the clusters it listed last time"
                );
                last
            }
            Err(e) => return Err(e),
        };
        Ok(all.into_iter().filter(|n| target.wants(n)).collect())
    }

    async fn list_clusters(&self, scope: &Scope) -> Result<Vec<String>, CallFailure> {
        paginate(LIST_CLUSTERS, |token| async move {
            // 100 is EKS's largest page: a steady poll of 200 clusters lists them in two calls.
            let req = scope.eks.list_clusters().max_results(100).set_next_token(token);
            let out = self.scoped(scope, LIST_CLUSTERS, req.send()).await?;
            Ok((out.clusters().to_vec(), out.next_token().map(str::to_string)))
        })
        .await
    }

    /// Every managed prefix list of the region (AWS-managed ones included), id → name, for
    /// `prefix-list:<name>` peers. Shared by the scope's clusters; a failure keeps the last
    /// names and becomes a warning.
    async fn prefix_lists(&self, scope: &Scope) -> (BTreeMap<String, String>, Option<String>) {
        let cached = lock(&self.prefix_lists).get(&scope.key).cloned();
        if let Some(c) = cached.as_ref().filter(|c| c.fetched_at.elapsed() < self.options.metadata_interval) {
            return (c.names.clone(), None);
        }
        let fetched = paginate(DESCRIBE_MANAGED_PREFIX_LISTS, |token| async move {
            let req = scope.ec2.describe_managed_prefix_lists().max_results(100).set_next_token(token);
            let out = self.scoped(scope, DESCRIBE_MANAGED_PREFIX_LISTS, req.send()).await?;
            Ok((
                out.prefix_lists().iter().filter_map(convert::prefix_list).collect(),
                out.next_token().map(str::to_string),
            ))
        })
        .await;
        match fetched {
            Ok(lists) => {
                let names: BTreeMap<String, String> = lists.into_iter().collect();
                let entry = Arc::new(PrefixLists { fetched_at: Instant::now(), names: names.clone() });
                lock(&self.prefix_lists).insert(scope.key.clone(), entry);
                (names, None)
            }
            Err(f) => (
                cached.map(|c| c.names.clone()).unwrap_or_default(),
                Some(format!("prefix-list names could not be read ({}): prefix-list peers stay unnamed", f.error)),
            ),
        }
    }

    /// Drops cached metadata of clusters the scope no longer has, when the poll saw them all.
    fn forget_other_clusters(&self, scope: &ScopeKey, names: &BTreeSet<String>, saw_all: bool) {
        if saw_all {
            lock(&self.metadata).retain(|(s, name), _| s != scope || names.contains(name));
            lock(&self.peers).retain(|(s, name), _| s != scope || names.contains(name));
            lock(&self.due).retain(|(s, name)| s != scope || names.contains(name));
            lock(&self.own_groups_found).retain(|(s, name), _| s != scope || names.contains(name));
        }
    }
}

/// Runs `work` on every item, each on a task of its own (the gates decide how many calls are
/// in flight), and gives the results in the items' order. A task that panicked gives an error
/// instead of taking the poll down with it.
async fn each<T, R, F, Fut>(items: Vec<T>, work: F) -> Vec<Result<R, SourceError>>
where
    F: Fn(T) -> Fut,
    Fut: Future<Output = R> + Send + 'static,
    R: Send + 'static,
{
    let n = items.len();
    let mut tasks = JoinSet::new();
    for (i, item) in items.into_iter().enumerate() {
        let fut = work(item);
        tasks.spawn(async move { (i, fut.await) });
    }
    let mut out: Vec<Option<Result<R, SourceError>>> = (0..n).map(|_| None).collect();
    while let Some(joined) = tasks.join_next().await {
        if let Ok((i, r)) = joined {
            out[i] = Some(Ok(r));
        }
    }
    out.into_iter()
        .map(|r| {
            r.unwrap_or_else(|| {
                Err(SourceError::Server { operation: "poll".into(), message: "reading stopped unexpectedly".into() })
            })
        })
        .collect()
}

/// The retry partition of a scope's clients, per service. The SDK's default, one per service
/// and region, is shared by every client of the process: the throttles of one account would
/// drain the retry quota of every other account in that region, and their throttled calls
/// would then fail without a retry. AWS throttles per account and region; so do the retries.
fn retry_partition(key: &ScopeKey, service: &str) -> RetryPartition {
    let who = key.role_arn.as_deref().unwrap_or("default-credentials");
    RetryPartition::new(format!("sgdrift-{service}-{}-{who}", key.region))
}

/// Follows `NextToken` until AWS stops giving one (or gives the same one back).
pub(super) async fn paginate<T, F, Fut>(op: Operation, mut page: F) -> Result<Vec<T>, CallFailure>
where
    F: FnMut(Option<String>) -> Fut,
    Fut: Future<Output = Result<(Vec<T>, Option<String>), CallFailure>>,
{
    let mut items = Vec::new();
    let mut token: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let (mut got, next) = page(token.clone()).await?;
        items.append(&mut got);
        match next.filter(|t| !t.is_empty()) {
            Some(next) if Some(&next) != token.as_ref() => token = Some(next),
            _ => return Ok(items),
        }
    }
    Err(CallFailure {
        error: SourceError::Server {
            operation: op.action(),
            message: format!("still paginating after {MAX_PAGES} pages"),
        },
        code: None,
        message: String::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_account_role_and_region_retries_apart_per_service() {
        let key =
            |role: Option<&str>, region: &str| ScopeKey { role_arn: role.map(str::to_string), region: region.into() };
        let keys = [
            key(None, "eu-west-1"),
            key(Some("arn:aws:iam::111122223333:role/sgdrift"), "eu-west-1"),
            key(Some("arn:aws:iam::444455556666:role/sgdrift"), "eu-west-1"),
            key(Some("arn:aws:iam::111122223333:role/sgdrift"), "us-east-1"),
        ];
        // By name: the SDK shares a partition's retry quota with every partition of its name.
        let mut partitions = std::collections::HashSet::new();
        for k in &keys {
            for service in ["ec2", "eks", "sts"] {
                let name = retry_partition(k, service).to_string();
                assert!(partitions.insert(name), "{k:?} {service}: a partition of its own");
                assert_eq!(retry_partition(k, service), retry_partition(&k.clone(), service), "stable across calls");
            }
        }
    }
}
