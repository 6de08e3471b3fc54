//! The `aws` source: discovery and SG reads through aws-sdk-eks and aws-sdk-ec2, batched per
//! account and region, metadata cached, every call counted, timed and classified.
//!
//! One poll of a target makes, per account and region: one `ListClusters` walk (only for
//! `clusters = ["*"]`), one `DescribeCluster` per cluster, and `⌈SGs/200⌉`
//! `DescribeSecurityGroups` for the groups of every cluster together (their peers included; a
//! peer first seen in this poll costs one more batch). Node groups, Fargate profiles, launch
//! templates, instances, the VPC, its endpoints, route tables and branch ENIs, the `vpc-cni`
//! add-on (only for clusters with branch ENIs) and the region's prefix lists change rarely, so
//! they are read again only once `poll.metadata_interval` has passed. What the reads
//! mean is decided by `assemble`, shared with the files source.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_ec2::config::SharedCredentialsProvider;
use aws_sdk_ec2::types::Filter;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use aws_smithy_types::retry::RetryConfig;
use aws_smithy_types::timeout::TimeoutConfig;
use tokio::sync::{OnceCell, Semaphore};
use tokio::task::JoinSet;

use super::assemble::{
    self, ClusterInfo, ClusterMetadata, FargateProfileInfo, GroupBatch, GroupRecord, InstanceInfo, LaunchTemplateRef,
    LaunchTemplateVersionInfo, NetworkInterfaceInfo, NodegroupInfo, RawCluster, RouteTableInfo, VpcCniAddon,
    VpcEndpointInfo, VpcInfo,
};
use super::convert::{self, CallFailure};
use super::{AwsCallMetrics, CallCounts, ClusterPoll, SourceError, TargetPoll, TargetSpec};
use crate::config::PollConfig;
use crate::model::ClusterId;

pub use super::convert::Operation;

/// `DescribeSecurityGroups` takes this many ids per call (also EC2's cap on filter values).
pub const SG_BATCH: usize = 200;

/// A paginated walk that has not ended after this many pages is not going to.
const MAX_PAGES: usize = 1000;

const LIST_CLUSTERS: Operation = Operation::new("eks", "ListClusters");
const DESCRIBE_CLUSTER: Operation = Operation::new("eks", "DescribeCluster");
const LIST_NODEGROUPS: Operation = Operation::new("eks", "ListNodegroups");
const DESCRIBE_NODEGROUP: Operation = Operation::new("eks", "DescribeNodegroup");
const LIST_FARGATE_PROFILES: Operation = Operation::new("eks", "ListFargateProfiles");
const DESCRIBE_FARGATE_PROFILE: Operation = Operation::new("eks", "DescribeFargateProfile");
const DESCRIBE_ADDON: Operation = Operation::new("eks", "DescribeAddon");
const DESCRIBE_SECURITY_GROUPS: Operation = Operation::new("ec2", "DescribeSecurityGroups");
const DESCRIBE_LAUNCH_TEMPLATE_VERSIONS: Operation = Operation::new("ec2", "DescribeLaunchTemplateVersions");
const DESCRIBE_INSTANCES: Operation = Operation::new("ec2", "DescribeInstances");
const DESCRIBE_VPCS: Operation = Operation::new("ec2", "DescribeVpcs");
const DESCRIBE_VPC_ENDPOINTS: Operation = Operation::new("ec2", "DescribeVpcEndpoints");
const DESCRIBE_MANAGED_PREFIX_LISTS: Operation = Operation::new("ec2", "DescribeManagedPrefixLists");
const DESCRIBE_ROUTE_TABLES: Operation = Operation::new("ec2", "DescribeRouteTables");
const DESCRIBE_NETWORK_INTERFACES: Operation = Operation::new("ec2", "DescribeNetworkInterfaces");
const GET_CALLER_IDENTITY: Operation = Operation::new("sts", "GetCallerIdentity");

/// How the source talks to AWS; `from_poll` takes it from `[poll]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsOptions {
    /// Per call, retries included (`poll.timeout`).
    pub timeout: Duration,
    /// How long node-group, launch-template, instance, VPC, endpoint, route-table, branch-ENI
    /// and prefix-list metadata is reused (`poll.metadata_interval`).
    pub metadata_interval: Duration,
    /// Clusters of one target read at the same time.
    pub concurrency: usize,
    /// Attempts per call with the standard retry strategy; `None` keeps what the SDK config says
    /// (`AWS_MAX_ATTEMPTS`, else 3).
    pub max_attempts: Option<u32>,
}

impl AwsOptions {
    pub fn from_poll(poll: &PollConfig) -> Self {
        AwsOptions {
            timeout: poll.timeout,
            metadata_interval: poll.metadata_interval,
            concurrency: poll.concurrency.max(1),
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
    /// web identity, IMDS); timeouts and the metadata interval from `[poll]`.
    /// Calls are counted into `calls`.
    pub async fn new(poll: &PollConfig, calls: AwsCallMetrics) -> AwsSource {
        let base = aws_config::defaults(BehaviorVersion::latest()).load().await;
        AwsSource::with_calls(base, AwsOptions::from_poll(poll), calls)
    }

    /// From an SDK config built elsewhere (tests point it at a local emulator); calls are
    /// counted apart, in [`AwsSource::stats`].
    pub fn from_sdk_config(base: SdkConfig, options: AwsOptions) -> AwsSource {
        AwsSource::with_calls(base, options, AwsCallMetrics::unregistered())
    }

    fn with_calls(base: SdkConfig, options: AwsOptions, calls: AwsCallMetrics) -> AwsSource {
        let mut b = base.to_builder();
        let timeouts = base.timeout_config().cloned().unwrap_or_else(TimeoutConfig::disabled);
        b.set_timeout_config(Some(timeouts.to_builder().operation_timeout(options.timeout).build()));
        if let Some(n) = options.max_attempts {
            b.set_retry_config(Some(RetryConfig::standard().with_max_attempts(n.max(1))));
        } else if base.retry_config().is_none() {
            b.set_retry_config(Some(RetryConfig::standard()));
        }
        if base.behavior_version().is_none() {
            b.set_behavior_version(Some(BehaviorVersion::latest()));
        }
        // AssumeRoleProvider needs a clock; a hand-built config may lack one.
        if base.time_source().is_none() {
            b.set_time_source(Some(Default::default()));
        }
        AwsSource {
            inner: Arc::new(Inner {
                base: b.build(),
                options,
                stats: calls,
                scopes: tokio::sync::Mutex::new(HashMap::new()),
                metadata: Mutex::new(HashMap::new()),
                peers: Mutex::new(HashMap::new()),
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
    ) -> Result<T, SourceError>
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        self.inner.call(op, fut).await.map_err(|f| f.error)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct ScopeKey {
    role_arn: Option<String>,
    region: String,
}

/// The clients of one (role, region) and the account they act in.
struct Scope {
    key: ScopeKey,
    eks: aws_sdk_eks::Client,
    ec2: aws_sdk_ec2::Client,
    sts: aws_sdk_sts::Client,
    account: OnceCell<String>,
}

/// The metadata of one cluster (`assemble::ClusterMetadata`), read together and kept for
/// `metadata_interval`.
#[derive(Debug)]
struct CachedMetadata {
    fetched_at: Instant,
    /// The VPC it was read for: a change means it is out of date whatever its age.
    vpc_id: Option<String>,
    raw: ClusterMetadata,
    warnings: Vec<String>,
}

struct PrefixLists {
    fetched_at: Instant,
    names: BTreeMap<String, String>,
}

struct Inner {
    base: SdkConfig,
    options: AwsOptions,
    stats: AwsCallMetrics,
    scopes: tokio::sync::Mutex<HashMap<ScopeKey, Arc<Scope>>>,
    metadata: Mutex<HashMap<(ScopeKey, String), Arc<CachedMetadata>>>,
    /// The peers each cluster's groups named at the last poll: read in the first batch, so a
    /// steady poll needs no second one.
    peers: Mutex<HashMap<(ScopeKey, String), BTreeSet<String>>>,
    prefix_lists: Mutex<HashMap<ScopeKey, Arc<PrefixLists>>>,
    /// What each scope's last successful `ListClusters` named (see `wanted_clusters`).
    listed: Mutex<HashMap<ScopeKey, BTreeSet<String>>>,
}

/// A cluster after `DescribeCluster` and its metadata, waiting for its groups.
struct Prepared {
    info: ClusterInfo,
    metadata: Arc<CachedMetadata>,
    warnings: Vec<String>,
}

/// One group of a `DescribeSecurityGroups` answer, or why it cannot be used (with its id when
/// it has one).
type GroupResult = Result<GroupRecord, (Option<String>, SourceError)>;

impl Inner {
    async fn poll(self: Arc<Self>, target: TargetSpec) -> TargetPoll {
        let scope = self.scope(&target).await;
        let account = match self.account(&scope).await {
            Ok(a) => a,
            Err(e) => return TargetPoll { clusters: Vec::new(), error: Some((target.region.clone(), e.error)) },
        };
        let names = if target.clusters.iter().any(|c| c == "*") {
            match self.wanted_clusters(&scope, &target).await {
                Ok(names) => names,
                Err(e) => return TargetPoll { clusters: Vec::new(), error: Some((target.region.clone(), e.error)) },
            }
        } else {
            target.clusters.iter().cloned().collect()
        };
        self.forget_other_clusters(&scope.key, &names, target.clusters.iter().any(|c| c == "*"));

        // Clusters are described (and their metadata refreshed) side by side, so a slow or
        // failing cluster delays none of the others beyond the call timeout.
        let permits = Arc::new(Semaphore::new(self.options.concurrency.max(1)));
        let mut tasks = JoinSet::new();
        let mut task_names = HashMap::new();
        for name in &names {
            let (inner, scope, permits, name2) =
                (Arc::clone(&self), Arc::clone(&scope), Arc::clone(&permits), name.clone());
            let handle = tasks.spawn(async move {
                let _permit = permits.acquire_owned().await;
                inner.prepare(&scope, &name2).await
            });
            task_names.insert(handle.id(), name.clone());
        }
        let mut prepared: BTreeMap<String, Result<Prepared, SourceError>> = BTreeMap::new();
        while let Some(joined) = tasks.join_next_with_id().await {
            match joined {
                Ok((id, result)) => {
                    if let Some(name) = task_names.get(&id) {
                        prepared.insert(name.clone(), result);
                    }
                }
                Err(e) => {
                    if let Some(name) = task_names.get(&e.id()) {
                        let message = format!("reading the cluster stopped unexpectedly: {e}");
                        prepared.insert(name.clone(), Err(SourceError::Server { operation: "poll".into(), message }));
                    }
                }
            }
        }

        let batch = self.fetch_cluster_groups(&scope, &prepared).await;
        let (prefix_lists, prefix_warning) = self.prefix_lists(&scope).await;

        let clusters = prepared
            .into_iter()
            .map(|(name, result)| {
                let id = ClusterId { account_id: account.clone(), region: target.region.clone(), name };
                let result = result.and_then(|mut p| {
                    p.warnings.extend(p.metadata.warnings.iter().cloned());
                    p.warnings.extend(prefix_warning.iter().cloned());
                    assemble::assemble(RawCluster {
                        id: id.clone(),
                        info: &p.info,
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

    /// The groups of every prepared cluster in batches, with the peers their rules name: those
    /// seen at the last poll in the first batch, new ones in one more.
    async fn fetch_cluster_groups(
        &self,
        scope: &Scope,
        prepared: &BTreeMap<String, Result<Prepared, SourceError>>,
    ) -> GroupBatch {
        let ready: Vec<(&String, &Prepared)> = prepared.iter().filter_map(|(n, p)| Some((n, p.as_ref().ok()?))).collect();
        let known_peers = lock(&self.peers).clone();
        let mut ids: BTreeSet<String> = BTreeSet::new();
        for (name, p) in &ready {
            ids.extend(assemble::referenced_groups(&p.info, &p.metadata.raw));
            ids.extend(known_peers.get(&(scope.key.clone(), (*name).clone())).into_iter().flatten().cloned());
        }
        let mut batch = self.fetch_groups(scope, ids.into_iter().collect()).await;
        let mut new_peers: BTreeSet<String> = BTreeSet::new();
        for (name, p) in &ready {
            let peers = assemble::peer_ids(&p.info, &p.metadata.raw, &batch.found);
            new_peers.extend(
                peers.iter().filter(|id| !batch.found.contains_key(*id) && !batch.failed.contains_key(*id)).cloned(),
            );
            lock(&self.peers).insert((scope.key.clone(), (*name).clone()), peers);
        }
        if !new_peers.is_empty() {
            let more = self.fetch_groups(scope, new_peers.into_iter().collect()).await;
            batch.found.extend(more.found);
            batch.failed.extend(more.failed);
        }
        batch
    }

    async fn scope(&self, target: &TargetSpec) -> Arc<Scope> {
        let key = ScopeKey { role_arn: target.role_arn.clone(), region: target.region.clone() };
        let mut scopes = self.scopes.lock().await;
        if let Some(s) = scopes.get(&key) {
            return Arc::clone(s);
        }
        let region = Region::new(key.region.clone());
        let mut conf = self.base.to_builder().region(region.clone());
        if let Some(role) = &key.role_arn {
            let provider = aws_config::sts::AssumeRoleProvider::builder(role.clone())
                .session_name("sgdrift")
                .region(region)
                .configure(&self.base)
                .build()
                .await;
            conf = conf.credentials_provider(SharedCredentialsProvider::new(provider));
        }
        let conf = conf.build();
        let scope = Arc::new(Scope {
            key: key.clone(),
            eks: aws_sdk_eks::Client::new(&conf),
            ec2: aws_sdk_ec2::Client::new(&conf),
            sts: aws_sdk_sts::Client::new(&conf),
            account: OnceCell::new(),
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

    /// Times, counts and classifies one call.
    async fn call<T, E>(
        &self,
        op: Operation,
        fut: impl Future<Output = Result<T, SdkError<E, HttpResponse>>>,
    ) -> Result<T, CallFailure>
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let started = Instant::now();
        let result = fut.await;
        let elapsed = started.elapsed();
        match result {
            Ok(v) => {
                self.stats.record(op, elapsed, None);
                Ok(v)
            }
            Err(e) => {
                let failure = convert::classify(op, e, self.options.timeout);
                self.stats.record(op, elapsed, Some(&failure.error));
                tracing::debug!(operation = %op.action(), error = %failure.error, "AWS call failed");
                Err(failure)
            }
        }
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
            let out = self.call(LIST_CLUSTERS, scope.eks.list_clusters().set_next_token(token).send()).await?;
            Ok((out.clusters().to_vec(), out.next_token().map(str::to_string)))
        })
        .await
    }

    /// `DescribeCluster`, then the cluster's metadata from the cache or from AWS.
    async fn prepare(&self, scope: &Scope, name: &str) -> Result<Prepared, SourceError> {
        let out =
            self.call(DESCRIBE_CLUSTER, scope.eks.describe_cluster().name(name).send()).await.map_err(|f| f.error)?;
        let info = out.cluster().map(ClusterInfo::from).ok_or_else(|| SourceError::Server {
            operation: DESCRIBE_CLUSTER.action(),
            message: format!("the answer for cluster {name} holds no cluster"),
        })?;
        let mut warnings = Vec::new();
        let key = (scope.key.clone(), name.to_string());
        let cached = lock(&self.metadata).get(&key).cloned();
        let fresh = cached
            .as_ref()
            .filter(|m| m.fetched_at.elapsed() < self.options.metadata_interval && m.vpc_id == info.vpc_id);
        let metadata = match fresh {
            Some(m) => Arc::clone(m),
            None => match self.fetch_metadata(scope, &info).await {
                Ok(m) => {
                    let m = Arc::new(m);
                    lock(&self.metadata).insert(key, Arc::clone(&m));
                    m
                }
                // Better last half-hour's node groups than no cluster at all; the next poll
                // tries again, since the stale copy keeps its old timestamp.
                Err(f) => match cached {
                    Some(old) => {
                        warnings.push(format!(
                            "node-group metadata could not be refreshed ({}); using what was read {}s ago",
                            f.error,
                            old.fetched_at.elapsed().as_secs()
                        ));
                        old
                    }
                    None => return Err(f.error),
                },
            },
        };
        Ok(Prepared { info, metadata, warnings })
    }

    async fn fetch_metadata(&self, scope: &Scope, info: &ClusterInfo) -> Result<CachedMetadata, CallFailure> {
        let nodegroups = self.nodegroups(scope, &info.name).await?;
        let mut launch_templates = Vec::new();
        let mut asked: BTreeSet<&LaunchTemplateRef> = BTreeSet::new();
        for lt in nodegroups.iter().filter_map(|ng| ng.launch_template.as_ref()) {
            // A template that is gone reads as no version: `assemble` falls back and says so.
            if asked.insert(lt) {
                launch_templates.extend(self.launch_template_versions(scope, lt).await?);
            }
        }
        let instances = self.instances(scope, &info.name).await?;
        let fargate_profiles = self.fargate_profiles(scope, &info.name).await?;
        let mut raw =
            ClusterMetadata { nodegroups, fargate_profiles, launch_templates, instances, ..ClusterMetadata::default() };
        let mut warnings = Vec::new();
        match info.vpc_id.as_deref() {
            Some(vpc) => self.vpc_metadata(scope, vpc, &mut raw).await?,
            None => warnings.push(
                "DescribeCluster names no VPC: `vpc-cidr` peers, VPC endpoints and routes cannot be resolved".into(),
            ),
        }
        // The enforcing mode matters only to pods with their own SGs: without branch ENIs the
        // call would be one more per cluster for nothing.
        if !assemble::referenced_pod_sets(info, &raw).is_empty() {
            match self.vpc_cni(scope, &info.name).await {
                Ok(addon) => raw.vpc_cni = Some(addon),
                // Only the pod-SG enforcing mode depends on it: unknown, not a failed cluster.
                Err(f) => warnings.push(format!(
                    "the vpc-cni add-on could not be read ({}): the pod-SG enforcing mode is unknown",
                    f.error
                )),
            }
        }
        Ok(CachedMetadata { fetched_at: Instant::now(), vpc_id: info.vpc_id.clone(), raw, warnings })
    }

    async fn nodegroups(&self, scope: &Scope, cluster: &str) -> Result<Vec<NodegroupInfo>, CallFailure> {
        let names = paginate(LIST_NODEGROUPS, |token| async move {
            let out = self
                .call(LIST_NODEGROUPS, scope.eks.list_nodegroups().cluster_name(cluster).set_next_token(token).send())
                .await?;
            Ok((out.nodegroups().to_vec(), out.next_token().map(str::to_string)))
        })
        .await?;
        let mut nodegroups = Vec::new();
        for ng in names {
            let described = self
                .call(
                    DESCRIBE_NODEGROUP,
                    scope.eks.describe_nodegroup().cluster_name(cluster).nodegroup_name(&ng).send(),
                )
                .await;
            match described {
                Ok(out) => nodegroups.extend(out.nodegroup().map(NodegroupInfo::from)),
                // Deleted between the list and the describe: it has no nodes to check.
                Err(f) if f.error.kind() == "not_found" => {}
                Err(f) => return Err(f),
            }
        }
        Ok(nodegroups)
    }

    /// The cluster's Fargate profiles. EKS has no batch form: one list walk per cluster, one
    /// describe per profile, kept with the rest of the metadata.
    async fn fargate_profiles(&self, scope: &Scope, cluster: &str) -> Result<Vec<FargateProfileInfo>, CallFailure> {
        let names = paginate(LIST_FARGATE_PROFILES, |token| async move {
            let req = scope.eks.list_fargate_profiles().cluster_name(cluster).set_next_token(token);
            let out = self.call(LIST_FARGATE_PROFILES, req.send()).await?;
            Ok((out.fargate_profile_names().to_vec(), out.next_token().map(str::to_string)))
        })
        .await?;
        let mut profiles = Vec::new();
        for name in names {
            let req = scope.eks.describe_fargate_profile().cluster_name(cluster).fargate_profile_name(&name);
            match self.call(DESCRIBE_FARGATE_PROFILE, req.send()).await {
                Ok(out) => profiles.extend(out.fargate_profile().map(FargateProfileInfo::from)),
                // Deleted between the list and the describe: it has no pods to check.
                Err(f) if f.error.kind() == "not_found" => {}
                Err(f) => return Err(f),
            }
        }
        Ok(profiles)
    }

    /// The `vpc-cni` managed add-on, or `SelfManaged` when EKS has none by that name (moto, the
    /// tests' emulator, has no DescribeAddon and answers 404 too).
    async fn vpc_cni(&self, scope: &Scope, cluster: &str) -> Result<VpcCniAddon, CallFailure> {
        let req = scope.eks.describe_addon().cluster_name(cluster).addon_name("vpc-cni");
        match self.call(DESCRIBE_ADDON, req.send()).await {
            Ok(out) => Ok(out.addon().map_or(VpcCniAddon::SelfManaged, VpcCniAddon::from)),
            Err(f) if f.error.kind() == "not_found" => Ok(VpcCniAddon::SelfManaged),
            Err(f) => Err(f),
        }
    }

    /// The live instances tagged as nodes of `cluster`, one walk per tag that marks them.
    async fn instances(&self, scope: &Scope, cluster: &str) -> Result<Vec<InstanceInfo>, CallFailure> {
        let mut instances: BTreeMap<String, InstanceInfo> = BTreeMap::new();
        for (key, value) in assemble::node_instance_tags(cluster) {
            let filter = match &value {
                Some(v) => Filter::builder().name(format!("tag:{key}")).values(v.clone()).build(),
                None => Filter::builder().name("tag-key").values(key.clone()).build(),
            };
            let live = Filter::builder()
                .name("instance-state-name")
                .values("pending")
                .values("running")
                .values("stopping")
                .values("stopped")
                .build();
            let found = paginate(DESCRIBE_INSTANCES, |token| {
                let (filter, live) = (filter.clone(), live.clone());
                async move {
                    let req = scope.ec2.describe_instances().filters(filter).filters(live).set_next_token(token);
                    let out = self.call(DESCRIBE_INSTANCES, req.send()).await?;
                    let found: Vec<InstanceInfo> =
                        out.reservations().iter().flat_map(|r| r.instances()).map(InstanceInfo::from).collect();
                    Ok((found, out.next_token().map(str::to_string)))
                }
            })
            .await?;
            for i in found {
                instances.insert(i.id.clone(), i);
            }
        }
        Ok(instances.into_values().collect())
    }

    /// The VPC's CIDRs, and its endpoints, route tables and branch ENIs, each filtered by VPC.
    async fn vpc_metadata(&self, scope: &Scope, vpc: &str, raw: &mut ClusterMetadata) -> Result<(), CallFailure> {
        let vpcs = paginate(DESCRIBE_VPCS, |token| async move {
            let out = self.call(DESCRIBE_VPCS, scope.ec2.describe_vpcs().vpc_ids(vpc).set_next_token(token).send()).await;
            match out {
                Ok(out) => Ok((out.vpcs().iter().map(VpcInfo::from).collect::<Vec<_>>(), out.next_token().map(str::to_string))),
                Err(f) if f.error.kind() == "not_found" => Ok((Vec::new(), None)),
                Err(f) => Err(f),
            }
        })
        .await?;
        raw.vpcs = Some(vpcs);
        let by_vpc = || Filter::builder().name("vpc-id").values(vpc).build();
        raw.vpc_endpoints = Some(
            paginate(DESCRIBE_VPC_ENDPOINTS, |token| async move {
                let req = scope.ec2.describe_vpc_endpoints().filters(by_vpc()).set_next_token(token);
                let out = self.call(DESCRIBE_VPC_ENDPOINTS, req.send()).await?;
                let found = out.vpc_endpoints().iter().map(VpcEndpointInfo::from).collect::<Vec<_>>();
                Ok((found, out.next_token().map(str::to_string)))
            })
            .await?,
        );
        raw.route_tables = Some(
            paginate(DESCRIBE_ROUTE_TABLES, |token| async move {
                let req = scope.ec2.describe_route_tables().filters(by_vpc()).set_next_token(token);
                let out = self.call(DESCRIBE_ROUTE_TABLES, req.send()).await?;
                let found = out.route_tables().iter().map(RouteTableInfo::from).collect::<Vec<_>>();
                Ok((found, out.next_token().map(str::to_string)))
            })
            .await?,
        );
        raw.network_interfaces = Some(
            paginate(DESCRIBE_NETWORK_INTERFACES, |token| async move {
                // The controller's description picks its branch ENIs as surely as
                // `interface-type=branch`, and the AWS emulator of the tests knows only it.
                let branch = Filter::builder().name("description").values(assemble::BRANCH_ENI_DESCRIPTION).build();
                let req = scope.ec2.describe_network_interfaces().filters(by_vpc()).filters(branch).set_next_token(token);
                let out = self.call(DESCRIBE_NETWORK_INTERFACES, req.send()).await?;
                let found = out.network_interfaces().iter().map(NetworkInterfaceInfo::from).collect::<Vec<_>>();
                Ok((found, out.next_token().map(str::to_string)))
            })
            .await?,
        );
        Ok(())
    }

    /// The asked version of one launch template; none if the template or version is gone.
    async fn launch_template_versions(
        &self,
        scope: &Scope,
        lt: &LaunchTemplateRef,
    ) -> Result<Vec<LaunchTemplateVersionInfo>, CallFailure> {
        let version = lt.version.clone().unwrap_or_else(|| "$Default".to_string());
        paginate(DESCRIBE_LAUNCH_TEMPLATE_VERSIONS, |token| {
            let version = version.clone();
            async move {
                let req = scope.ec2.describe_launch_template_versions().versions(version).set_next_token(token);
                let req = match (&lt.id, &lt.name) {
                    (Some(id), _) => req.launch_template_id(id),
                    (None, Some(name)) => req.launch_template_name(name),
                    (None, None) => return Ok((Vec::new(), None)),
                };
                match self.call(DESCRIBE_LAUNCH_TEMPLATE_VERSIONS, req.send()).await {
                    Ok(out) => Ok((
                        out.launch_template_versions().iter().map(LaunchTemplateVersionInfo::from).collect(),
                        out.next_token().map(str::to_string),
                    )),
                    Err(f) if f.error.kind() == "not_found" => Ok((Vec::new(), None)),
                    Err(f) => Err(f),
                }
            }
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
            let out = self
                .call(
                    DESCRIBE_MANAGED_PREFIX_LISTS,
                    scope.ec2.describe_managed_prefix_lists().set_next_token(token).send(),
                )
                .await?;
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

    /// Reads `ids` in batches of `SG_BATCH`. An id that no longer exists fails a `GroupIds`
    /// request as a whole, so the batch is asked again without it: without the ids the error
    /// names, or, when the error does not single them out, through a `group-id` filter, which
    /// skips unknown ids instead of failing.
    async fn fetch_groups(&self, scope: &Scope, ids: Vec<String>) -> GroupBatch {
        let mut batch = GroupBatch::default();
        for chunk in ids.chunks(SG_BATCH) {
            let mut pending: Vec<String> = chunk.to_vec();
            while !pending.is_empty() {
                match self.describe_groups(scope, &pending, false).await {
                    Ok(records) => {
                        take_records(&mut batch, &pending, records);
                        break;
                    }
                    Err(f) if is_missing_group(&f) => {
                        let named: BTreeSet<String> =
                            group_ids_in(&f.message).into_iter().filter(|id| pending.contains(id)).collect();
                        if !named.is_empty() && (named.len() < pending.len() || pending.len() == 1) {
                            pending.retain(|id| !named.contains(id));
                            continue;
                        }
                        match self.describe_groups(scope, &pending, true).await {
                            Ok(records) => take_records(&mut batch, &pending, records),
                            Err(f) => batch.failed.extend(pending.iter().map(|id| (id.clone(), f.error.clone()))),
                        }
                        break;
                    }
                    Err(f) => {
                        batch.failed.extend(pending.iter().map(|id| (id.clone(), f.error.clone())));
                        break;
                    }
                }
            }
        }
        batch
    }

    /// One `DescribeSecurityGroups` walk for `ids`, by `GroupIds` or by a `group-id` filter.
    async fn describe_groups(
        &self,
        scope: &Scope,
        ids: &[String],
        by_filter: bool,
    ) -> Result<Vec<GroupResult>, CallFailure> {
        paginate(DESCRIBE_SECURITY_GROUPS, |token| async move {
            let req = scope.ec2.describe_security_groups().set_next_token(token);
            let req = if by_filter {
                req.filters(Filter::builder().name("group-id").set_values(Some(ids.to_vec())).build())
            } else {
                req.set_group_ids(Some(ids.to_vec()))
            };
            let out = self.call(DESCRIBE_SECURITY_GROUPS, req.send()).await?;
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

    /// Drops cached metadata of clusters the scope no longer has, when the poll saw them all.
    fn forget_other_clusters(&self, scope: &ScopeKey, names: &BTreeSet<String>, saw_all: bool) {
        if saw_all {
            lock(&self.metadata).retain(|(s, name), _| s != scope || names.contains(name));
            lock(&self.peers).retain(|(s, name), _| s != scope || names.contains(name));
        }
    }
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

fn is_missing_group(f: &CallFailure) -> bool {
    matches!(f.code.as_deref(), Some("InvalidGroup.NotFound" | "InvalidGroupId.NotFound" | "InvalidGroupId.Malformed"))
}

/// The `sg-…` ids an EC2 error message names ("The security group 'sg-0abc' does not exist").
fn group_ids_in(message: &str) -> Vec<String> {
    let mut ids = Vec::new();
    let mut rest = message;
    while let Some(at) = rest.find("sg-") {
        let starts_word = at == 0 || !rest[..at].ends_with(|c: char| c.is_ascii_alphanumeric());
        let tail = &rest[at + 3..];
        let len = tail.find(|c: char| !c.is_ascii_alphanumeric()).unwrap_or(tail.len());
        if starts_word && len > 0 {
            ids.push(format!("sg-{}", &tail[..len]));
        }
        rest = &tail[len..];
    }
    ids
}

/// Follows `NextToken` until AWS stops giving one (or gives the same one back).
async fn paginate<T, F, Fut>(op: Operation, mut page: F) -> Result<Vec<T>, CallFailure>
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
    fn group_ids_are_read_from_ec2_error_messages() {
        let table: [(&str, &[&str]); 4] = [
            ("The security group 'sg-0abc123' does not exist", &["sg-0abc123"]),
            ("The security group '{'sg-1', 'sg-2'}' does not exist", &["sg-1", "sg-2"]),
            ("The security group 'sg-0a,sg-0b' does not exist", &["sg-0a", "sg-0b"]),
            ("Invalid id: \"mysg-1\" and sg- alone", &[]),
        ];
        for (message, want) in table {
            assert_eq!(group_ids_in(message), want.iter().map(|s| s.to_string()).collect::<Vec<_>>(), "{message}");
        }
    }

}
