//! The `aws` source: discovery and SG reads through aws-sdk-eks and aws-sdk-ec2, batched per
//! account and region, metadata cached, every call counted, timed and classified.
//!
//! One poll of a target makes, per account and region: one `ListClusters` walk (only for
//! `clusters = ["*"]`), one `DescribeCluster` per cluster, and `⌈SGs/200⌉`
//! `DescribeSecurityGroups` for the groups of every cluster together. Node groups, launch
//! templates, instances, the VPC, its endpoints and the region's prefix lists change rarely, so
//! they are read again only once `poll.metadata_interval` has passed.

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
use ipnet::IpNet;
use tokio::sync::{OnceCell, Semaphore};
use tokio::task::JoinSet;

use super::convert::{self, CallFailure, ClusterInfo, GroupRecord, InstanceInfo, LaunchTemplateRef, NodegroupInfo};
use super::{style, CallCounts, ClusterPoll, SourceError, TargetPoll, TargetSpec};
use crate::config::PollConfig;
use crate::model::{
    ClusterId, ClusterSnapshot, EndpointMode, IpFamily, NodeGroup, NodeGroupKind, Role, RouteOut, VpcEndpoint,
};

pub use super::convert::Operation;

/// `DescribeSecurityGroups` takes this many ids per call (also EC2's cap on filter values).
pub const SG_BATCH: usize = 200;

/// A paginated walk that has not ended after this many pages is not going to.
const MAX_PAGES: usize = 1000;

const LIST_CLUSTERS: Operation = Operation::new("eks", "ListClusters");
const DESCRIBE_CLUSTER: Operation = Operation::new("eks", "DescribeCluster");
const LIST_NODEGROUPS: Operation = Operation::new("eks", "ListNodegroups");
const DESCRIBE_NODEGROUP: Operation = Operation::new("eks", "DescribeNodegroup");
const DESCRIBE_SECURITY_GROUPS: Operation = Operation::new("ec2", "DescribeSecurityGroups");
const DESCRIBE_LAUNCH_TEMPLATE_VERSIONS: Operation = Operation::new("ec2", "DescribeLaunchTemplateVersions");
const DESCRIBE_INSTANCES: Operation = Operation::new("ec2", "DescribeInstances");
const DESCRIBE_VPCS: Operation = Operation::new("ec2", "DescribeVpcs");
const DESCRIBE_VPC_ENDPOINTS: Operation = Operation::new("ec2", "DescribeVpcEndpoints");
const DESCRIBE_MANAGED_PREFIX_LISTS: Operation = Operation::new("ec2", "DescribeManagedPrefixLists");
const GET_CALLER_IDENTITY: Operation = Operation::new("sts", "GetCallerIdentity");

/// Tags that mark an instance as a node of cluster `<name>` (self-managed nodes carry at least
/// one of them): key, and the value required (`None`: any value).
fn node_instance_filters(cluster: &str) -> [(String, Option<String>); 3] {
    [
        (format!("kubernetes.io/cluster/{cluster}"), None),
        ("eks:cluster-name".to_string(), Some(cluster.to_string())),
        ("alpha.eksctl.io/cluster-name".to_string(), Some(cluster.to_string())),
    ]
}

/// Tags that name the node group of an instance, most specific first.
const NODEGROUP_TAGS: [&str; 3] = ["eks:nodegroup-name", "alpha.eksctl.io/nodegroup-name", "aws:autoscaling:groupName"];

/// How the source talks to AWS; `from_poll` takes it from `[poll]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsOptions {
    /// Per call, retries included (`poll.timeout`).
    pub timeout: Duration,
    /// How long node-group, launch-template, instance, VPC, endpoint and prefix-list metadata
    /// is reused (`poll.metadata_interval`).
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

/// Upper bounds (seconds) of the call-duration histogram.
pub const DURATION_BUCKETS: [f64; 12] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// What happened to one operation so far: calls, failures by kind, and how long calls took.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OperationStats {
    /// Calls made (each page of a paginated walk is one call; SDK retries are not counted apart).
    pub requests: u64,
    /// Failed calls by `SourceError::kind()`.
    pub errors: BTreeMap<&'static str, u64>,
    /// Calls per bucket of `DURATION_BUCKETS`, not cumulative; the last entry counts the calls
    /// slower than the last bound.
    pub duration_counts: [u64; DURATION_BUCKETS.len() + 1],
    pub duration_sum_seconds: f64,
}

impl OperationStats {
    pub fn errors_total(&self) -> u64 {
        self.errors.values().sum()
    }

    /// Cumulative counts per upper bound, as a Prometheus histogram wants them (`+Inf` = requests).
    pub fn cumulative_buckets(&self) -> Vec<(f64, u64)> {
        let mut total = 0;
        DURATION_BUCKETS
            .iter()
            .zip(self.duration_counts.iter())
            .map(|(bound, n)| {
                total += n;
                (*bound, total)
            })
            .collect()
    }
}

/// Counters of every AWS call the source made, shared with whoever exports them (the daemon's
/// metrics read `snapshot()` at scrape time).
#[derive(Debug, Default)]
pub struct AwsCallStats {
    by_operation: Mutex<BTreeMap<Operation, OperationStats>>,
}

impl AwsCallStats {
    pub fn record(&self, op: Operation, elapsed: Duration, error: Option<&SourceError>) {
        let mut map = lock(&self.by_operation);
        let s = map.entry(op).or_default();
        s.requests += 1;
        if let Some(e) = error {
            *s.errors.entry(e.kind()).or_default() += 1;
        }
        let secs = elapsed.as_secs_f64();
        let bucket = DURATION_BUCKETS.iter().position(|b| secs <= *b).unwrap_or(DURATION_BUCKETS.len());
        s.duration_counts[bucket] += 1;
        s.duration_sum_seconds += secs;
    }

    /// Every operation called so far, keyed by service and operation.
    pub fn snapshot(&self) -> BTreeMap<Operation, OperationStats> {
        lock(&self.by_operation).clone()
    }

    /// `"<service>:<operation>"` → calls, e.g. `"ec2:DescribeSecurityGroups"`.
    pub fn call_counts(&self) -> CallCounts {
        lock(&self.by_operation).iter().map(|(op, s)| (op.action(), s.requests)).collect()
    }

    /// `"<service>:<operation>"` → failed calls by error kind.
    pub fn error_counts(&self) -> BTreeMap<String, BTreeMap<&'static str, u64>> {
        lock(&self.by_operation)
            .iter()
            .filter(|(_, s)| !s.errors.is_empty())
            .map(|(op, s)| (op.action(), s.errors.clone()))
            .collect()
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
    pub async fn new(poll: &PollConfig) -> AwsSource {
        let base = aws_config::defaults(BehaviorVersion::latest()).load().await;
        AwsSource::from_sdk_config(base, AwsOptions::from_poll(poll))
    }

    /// From an SDK config built elsewhere (tests point it at a local emulator).
    pub fn from_sdk_config(base: SdkConfig, options: AwsOptions) -> AwsSource {
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
                stats: Arc::new(AwsCallStats::default()),
                scopes: tokio::sync::Mutex::new(HashMap::new()),
                metadata: Mutex::new(HashMap::new()),
                prefix_lists: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Reads every cluster `target` names. A failure before any cluster is known (credentials,
    /// `GetCallerIdentity`, `ListClusters`) goes in `TargetPoll::error`; a failure of one cluster
    /// fails that cluster only.
    pub async fn poll(&self, target: &TargetSpec) -> TargetPoll {
        Arc::clone(&self.inner).poll(target.clone()).await
    }

    /// `"<service>:<operation>"` → calls made so far.
    pub fn call_counts(&self) -> CallCounts {
        self.inner.stats.call_counts()
    }

    /// The shared counters (requests, errors by kind, durations) for the daemon's metrics.
    pub fn stats(&self) -> Arc<AwsCallStats> {
        Arc::clone(&self.inner.stats)
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

/// Node-group, launch-template, instance, VPC and endpoint facts of one cluster, read together.
#[derive(Debug)]
struct ClusterMetadata {
    fetched_at: Instant,
    /// The cluster facts it was read for: a change means it is out of date whatever its age.
    vpc_id: Option<String>,
    with_endpoints: bool,
    nodegroups: Vec<NodegroupInfo>,
    launch_templates: BTreeMap<LaunchTemplateRef, Vec<String>>,
    instances: Vec<InstanceInfo>,
    vpc_cidrs: Vec<IpNet>,
    vpc_endpoints: Vec<VpcEndpoint>,
    warnings: Vec<String>,
}

struct PrefixLists {
    fetched_at: Instant,
    names: BTreeMap<String, String>,
}

struct Inner {
    base: SdkConfig,
    options: AwsOptions,
    stats: Arc<AwsCallStats>,
    scopes: tokio::sync::Mutex<HashMap<ScopeKey, Arc<Scope>>>,
    metadata: Mutex<HashMap<(ScopeKey, String), Arc<ClusterMetadata>>>,
    prefix_lists: Mutex<HashMap<ScopeKey, Arc<PrefixLists>>>,
}

/// A cluster after `DescribeCluster` and its metadata, waiting for its groups.
struct Prepared {
    info: ClusterInfo,
    metadata: Arc<ClusterMetadata>,
    warnings: Vec<String>,
}

/// The outcome of the batched `DescribeSecurityGroups` calls of one poll.
#[derive(Default)]
struct GroupBatch {
    found: HashMap<String, GroupRecord>,
    /// Ids whose batch failed, or whose group could not be read, with why. An id in neither
    /// map no longer exists.
    failed: HashMap<String, SourceError>,
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
            match self.list_clusters(&scope).await {
                Ok(names) => names.into_iter().filter(|n| target.wants(n)).collect::<BTreeSet<_>>(),
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

        let ids: BTreeSet<String> = prepared
            .values()
            .filter_map(|p| p.as_ref().ok())
            .flat_map(|p| referenced_groups(&p.info, &p.metadata))
            .collect();
        let batch = self.fetch_groups(&scope, ids.into_iter().collect()).await;
        let (prefix_lists, prefix_warning) = self.prefix_lists(&scope).await;

        let clusters = prepared
            .into_iter()
            .map(|(name, result)| {
                let id = ClusterId { account_id: account.clone(), region: target.region.clone(), name };
                let result = result.and_then(|mut p| {
                    p.warnings.extend(prefix_warning.iter().cloned());
                    assemble(id.clone(), &p, &batch, &prefix_lists)
                });
                ClusterPoll { id, result }
            })
            .collect();
        TargetPoll { clusters, error: None }
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
        let fresh = cached.as_ref().filter(|m| {
            m.fetched_at.elapsed() < self.options.metadata_interval
                && m.vpc_id == info.vpc_id
                && m.with_endpoints == info.endpoint_private_access
        });
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

    async fn fetch_metadata(&self, scope: &Scope, info: &ClusterInfo) -> Result<ClusterMetadata, CallFailure> {
        let cluster = info.name.as_str();
        let mut warnings = Vec::new();

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

        let mut launch_templates = BTreeMap::new();
        for lt in nodegroups.iter().filter_map(|ng| ng.launch_template.clone()) {
            if launch_templates.contains_key(&lt) {
                continue;
            }
            // A template that is gone is left out: `node_groups` falls back and says so.
            if let Some(ids) = self.launch_template_groups(scope, &lt).await? {
                launch_templates.insert(lt, ids);
            }
        }

        let mut instances: BTreeMap<String, InstanceInfo> = BTreeMap::new();
        for (key, value) in node_instance_filters(cluster) {
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
                    let out = self
                        .call(
                            DESCRIBE_INSTANCES,
                            scope.ec2.describe_instances().filters(filter).filters(live).set_next_token(token).send(),
                        )
                        .await?;
                    let found: Vec<InstanceInfo> = out
                        .reservations()
                        .iter()
                        .flat_map(|r| r.instances())
                        .filter(|i| convert::instance_is_live(i))
                        .map(InstanceInfo::from)
                        .collect();
                    Ok((found, out.next_token().map(str::to_string)))
                }
            })
            .await?;
            for i in found {
                instances.insert(i.id.clone(), i);
            }
        }

        let mut vpc_cidrs = Vec::new();
        let mut vpc_endpoints = Vec::new();
        if let Some(vpc) = info.vpc_id.as_deref() {
            let vpcs = paginate(DESCRIBE_VPCS, |token| async move {
                let out =
                    self.call(DESCRIBE_VPCS, scope.ec2.describe_vpcs().vpc_ids(vpc).set_next_token(token).send()).await;
                match out {
                    Ok(out) => Ok((
                        out.vpcs().iter().map(convert::vpc_cidrs).collect::<Vec<_>>(),
                        out.next_token().map(str::to_string),
                    )),
                    Err(f) if f.error.kind() == "not_found" => Ok((Vec::new(), None)),
                    Err(f) => Err(f),
                }
            })
            .await?;
            if vpcs.is_empty() {
                warnings.push(format!("VPC {vpc} of the cluster does not exist: `vpc-cidr` peers cannot be resolved"));
            }
            vpc_cidrs = vpcs.into_iter().flatten().collect();

            // Nodes of a cluster with private API access reach AWS services through the VPC's
            // endpoints; the endpoints' groups then matter.
            if info.endpoint_private_access {
                vpc_endpoints = paginate(DESCRIBE_VPC_ENDPOINTS, |token| async move {
                    let by_vpc = Filter::builder().name("vpc-id").values(vpc).build();
                    let out = self
                        .call(
                            DESCRIBE_VPC_ENDPOINTS,
                            scope.ec2.describe_vpc_endpoints().filters(by_vpc).set_next_token(token).send(),
                        )
                        .await?;
                    let found: Vec<VpcEndpoint> =
                        out.vpc_endpoints().iter().filter_map(convert::vpc_endpoint).collect();
                    Ok((found, out.next_token().map(str::to_string)))
                })
                .await?;
                vpc_endpoints.sort_by(|a, b| a.service_name.cmp(&b.service_name).then_with(|| a.id.cmp(&b.id)));
            }
        } else {
            warnings.push("DescribeCluster names no VPC: `vpc-cidr` peers and VPC endpoints cannot be resolved".into());
        }

        Ok(ClusterMetadata {
            fetched_at: Instant::now(),
            vpc_id: info.vpc_id.clone(),
            with_endpoints: info.endpoint_private_access,
            nodegroups,
            launch_templates,
            instances: instances.into_values().collect(),
            vpc_cidrs,
            vpc_endpoints,
            warnings,
        })
    }

    /// The groups of one launch-template version; `None` if the template or version is gone.
    async fn launch_template_groups(
        &self,
        scope: &Scope,
        lt: &LaunchTemplateRef,
    ) -> Result<Option<Vec<String>>, CallFailure> {
        let version = lt.version.clone().unwrap_or_else(|| "$Default".to_string());
        let versions = paginate(DESCRIBE_LAUNCH_TEMPLATE_VERSIONS, |token| {
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
                        out.launch_template_versions().iter().map(convert::launch_template_security_groups).collect(),
                        out.next_token().map(str::to_string),
                    )),
                    Err(f) if f.error.kind() == "not_found" => Ok((Vec::new(), None)),
                    Err(f) => Err(f),
                }
            }
        })
        .await?;
        Ok(versions.into_iter().next())
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

/// Which role wins when one group plays several: design.md §1's order.
fn precedence(role: Role) -> u8 {
    match role {
        Role::Cluster => 0,
        Role::ControlPlane => 1,
        Role::RemoteAccess => 2,
        Role::Node => 3,
        Role::Pod => 4,
        Role::Endpoint => 5,
    }
}

/// The node group an instance belongs to, and whether the tag says EKS manages it
/// (`eks:nodegroup-name` is set by EKS on managed nodes only).
fn instance_node_group(i: &InstanceInfo) -> (String, bool) {
    if let Some(ng) = i.tags.get("eks:nodegroup-name") {
        return (ng.clone(), true);
    }
    let name = NODEGROUP_TAGS[1..].iter().find_map(|k| i.tags.get(*k)).map_or("self-managed", String::as_str);
    (name.to_string(), false)
}

/// The SG sets of the cluster's nodes, managed node groups first (by name), then the groups of
/// instances no managed node group accounts for. A managed group without a launch template gets
/// the cluster SG plus its remote-access SG; with one, the template's groups (the cluster SG only
/// if the template lists none — reference §1.6).
fn node_groups(info: &ClusterInfo, meta: &ClusterMetadata, warnings: &mut Vec<String>) -> Vec<NodeGroup> {
    let cluster_sg: Vec<String> = info.cluster_security_group_id.iter().cloned().collect();
    let mut managed: Vec<&NodegroupInfo> = meta.nodegroups.iter().collect();
    managed.sort_by(|a, b| a.name.cmp(&b.name));
    let managed_names: BTreeSet<&str> = managed.iter().map(|ng| ng.name.as_str()).collect();
    let managed_asgs: BTreeSet<&str> =
        managed.iter().flat_map(|ng| ng.auto_scaling_groups.iter().map(String::as_str)).collect();
    let instance_groups = |of: &dyn Fn(&InstanceInfo) -> bool| -> Vec<String> {
        sorted(meta.instances.iter().filter(|i| of(i)).flat_map(|i| i.security_group_ids.iter().cloned()).collect())
    };

    let mut groups = Vec::new();
    for ng in managed {
        let ids: Vec<String> = match &ng.launch_template {
            None => cluster_sg.iter().chain(ng.remote_access_security_group.iter()).cloned().collect(),
            Some(lt) => match meta.launch_templates.get(lt) {
                Some(ids) if !ids.is_empty() => ids.clone(),
                Some(_) => cluster_sg.clone(),
                None => {
                    let from_instances = instance_groups(&|i| instance_node_group(i).0 == ng.name);
                    let template = format!(
                        "launch template {} version {} of node group {} does not exist",
                        lt.id.as_deref().or(lt.name.as_deref()).unwrap_or("(unnamed)"),
                        lt.version.as_deref().unwrap_or("$Default"),
                        ng.name
                    );
                    if from_instances.is_empty() {
                        warnings.push(format!("{template} and none of its instances is running: assuming EKS's default, the cluster security group"));
                        cluster_sg.clone()
                    } else {
                        warnings.push(format!("{template}: its security groups are read from its instances"));
                        from_instances
                    }
                }
            },
        };
        groups.push(NodeGroup {
            name: ng.name.clone(),
            kind: NodeGroupKind::Managed,
            security_group_ids: sorted(ids),
            route_out_v4: RouteOut::NoData,
            route_out_v6: RouteOut::NoData,
        });
    }

    let mut others: BTreeMap<(String, NodeGroupKind), Vec<String>> = BTreeMap::new();
    for i in &meta.instances {
        let (name, managed_tag) = instance_node_group(i);
        if managed_names.contains(name.as_str())
            || i.tags.get("aws:autoscaling:groupName").is_some_and(|a| managed_asgs.contains(a.as_str()))
        {
            continue;
        }
        let kind = if managed_tag { NodeGroupKind::Managed } else { NodeGroupKind::SelfManaged };
        others.entry((name, kind)).or_default().extend(i.security_group_ids.iter().cloned());
    }
    for ((name, kind), ids) in others {
        if kind == NodeGroupKind::Managed {
            warnings.push(format!(
                "instances name managed node group {name}, which ListNodegroups does not list: its security groups are read from its instances"
            ));
        }
        groups.push(NodeGroup {
            name,
            kind,
            security_group_ids: sorted(ids),
            route_out_v4: RouteOut::NoData,
            route_out_v6: RouteOut::NoData,
        });
    }
    groups
}

/// Every group id the cluster names, before anything is known about the groups themselves.
fn referenced_groups(info: &ClusterInfo, meta: &ClusterMetadata) -> Vec<String> {
    let mut ids: Vec<String> = info.cluster_security_group_id.iter().cloned().collect();
    ids.extend(info.security_group_ids.iter().cloned());
    ids.extend(meta.nodegroups.iter().filter_map(|ng| ng.remote_access_security_group.clone()));
    ids.extend(meta.launch_templates.values().flatten().cloned());
    ids.extend(meta.instances.iter().flat_map(|i| i.security_group_ids.iter().cloned()));
    ids.extend(meta.vpc_endpoints.iter().flat_map(|e| e.security_group_ids.iter().cloned()));
    sorted(ids)
}

/// Every group id the cluster uses, with its role (design.md §1; the first role in the order
/// cluster, control-plane, remote-access, node, endpoint wins). eksctl puts its SSH group
/// (`<stack>-remoteAccess`) in the launch template: it is remote access all the same.
fn roles_of(
    info: &ClusterInfo,
    meta: &ClusterMetadata,
    node_groups: &[NodeGroup],
    found: &HashMap<String, GroupRecord>,
) -> BTreeMap<String, Role> {
    let mut roles: BTreeMap<String, Role> = BTreeMap::new();
    let mut assign = |id: &str, role: Role| {
        let keep = roles.get(id).is_some_and(|r| precedence(*r) <= precedence(role));
        if !keep {
            roles.insert(id.to_string(), role);
        }
    };
    if let Some(id) = &info.cluster_security_group_id {
        assign(id, Role::Cluster);
    }
    for id in &info.security_group_ids {
        assign(id, Role::ControlPlane);
    }
    for id in meta.nodegroups.iter().filter_map(|ng| ng.remote_access_security_group.as_ref()) {
        assign(id, Role::RemoteAccess);
    }
    for id in node_groups.iter().flat_map(|ng| ng.security_group_ids.iter()) {
        let ssh = found.get(id).is_some_and(|g| g.name.ends_with("-remoteAccess"));
        assign(id, if ssh { Role::RemoteAccess } else { Role::Node });
    }
    // What is really attached counts too, even where a launch template says otherwise.
    for id in meta.instances.iter().flat_map(|i| i.security_group_ids.iter()) {
        assign(id, Role::Node);
    }
    for id in meta.vpc_endpoints.iter().flat_map(|e| e.security_group_ids.iter()) {
        assign(id, Role::Endpoint);
    }
    roles
}

fn sorted(mut ids: Vec<String>) -> Vec<String> {
    ids.sort();
    ids.dedup();
    ids
}

fn assemble(
    id: ClusterId,
    prepared: &Prepared,
    batch: &GroupBatch,
    prefix_lists: &BTreeMap<String, String>,
) -> Result<ClusterSnapshot, SourceError> {
    let (info, meta) = (&prepared.info, &*prepared.metadata);
    if let Some(e) = referenced_groups(info, meta).iter().find_map(|id| batch.failed.get(id)) {
        return Err(e.clone());
    }
    let mut warnings = meta.warnings.clone();
    warnings.extend(prepared.warnings.iter().cloned());
    let node_groups = node_groups(info, meta, &mut warnings);
    let mut groups = BTreeMap::new();
    for (gid, role) in roles_of(info, meta, &node_groups, &batch.found) {
        match batch.found.get(&gid) {
            Some(g) => {
                groups.insert(gid, g.with_role(role));
            }
            None => warnings.push(format!(
                "security group {gid} ({role}) does not exist: it was named by the cluster but AWS no longer has it"
            )),
        }
    }
    let style = style::detect(&info.name, &info.tags, groups.values());
    Ok(ClusterSnapshot {
        id,
        endpoint_mode: EndpointMode::from_access(info.endpoint_public_access, info.endpoint_private_access),
        public_access_cidrs: info.public_access_cidrs.clone(),
        style,
        ip_family: IpFamily::Ipv4,
        remote_network: None,
        vpc_id: info.vpc_id.clone().unwrap_or_default(),
        vpc_cidrs: meta.vpc_cidrs.clone(),
        cluster_security_group_id: info.cluster_security_group_id.clone(),
        control_plane_security_group_ids: info.security_group_ids.clone(),
        groups,
        node_groups,
        vpc_endpoints: meta.vpc_endpoints.clone(),
        pod_security_group_sets: Vec::new(),
        peer_groups: BTreeMap::new(),
        prefix_lists: prefix_lists.clone(),
        warnings,
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

    fn metadata(
        nodegroups: Vec<NodegroupInfo>,
        lts: &[(LaunchTemplateRef, &[&str])],
        instances: Vec<InstanceInfo>,
    ) -> ClusterMetadata {
        ClusterMetadata {
            fetched_at: Instant::now(),
            vpc_id: Some("vpc-1".into()),
            with_endpoints: false,
            nodegroups,
            launch_templates: lts.iter().map(|(k, v)| (k.clone(), v.iter().map(|s| s.to_string()).collect())).collect(),
            instances,
            vpc_cidrs: Vec::new(),
            vpc_endpoints: Vec::new(),
            warnings: Vec::new(),
        }
    }

    fn info() -> ClusterInfo {
        ClusterInfo {
            name: "prod".into(),
            arn: None,
            endpoint_public_access: true,
            endpoint_private_access: false,
            public_access_cidrs: Vec::new(),
            vpc_id: Some("vpc-1".into()),
            cluster_security_group_id: Some("sg-cluster".into()),
            security_group_ids: vec!["sg-cp".into()],
            tags: BTreeMap::new(),
        }
    }

    fn lt(id: &str) -> LaunchTemplateRef {
        LaunchTemplateRef { id: Some(id.into()), name: None, version: Some("1".into()) }
    }

    fn ng(name: &str, lt_id: Option<&str>, ra: Option<&str>) -> NodegroupInfo {
        NodegroupInfo {
            name: name.into(),
            launch_template: lt_id.map(lt),
            remote_access_security_group: ra.map(str::to_string),
            auto_scaling_groups: vec![format!("eks-{name}")],
        }
    }

    fn instance(id: &str, groups: &[&str], tags: &[(&str, &str)]) -> InstanceInfo {
        InstanceInfo {
            id: id.into(),
            security_group_ids: groups.iter().map(|s| s.to_string()).collect(),
            tags: tags.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        }
    }

    fn record(id: &str, name: &str) -> (String, GroupRecord) {
        let g = GroupRecord {
            id: id.into(),
            name: name.into(),
            description: String::new(),
            owner_id: None,
            vpc_id: None,
            tags: BTreeMap::new(),
            rules: Vec::new(),
        };
        (id.to_string(), g)
    }

    #[test]
    fn node_group_sets_and_roles_follow_the_launch_template_rules() {
        let ngs = vec![
            ng("plain", None, Some("sg-ra")),
            ng("lt", Some("lt-1"), None),
            ng("lt-empty", Some("lt-2"), None),
            ng("lt-gone", Some("lt-3"), None),
            ng("lt-gone-no-nodes", Some("lt-4"), None),
        ];
        let instances = vec![
            instance("i-1", &["sg-self"], &[("alpha.eksctl.io/nodegroup-name", "ng-self")]),
            instance("i-2", &["sg-node", "sg-extra"], &[("eks:nodegroup-name", "lt")]),
            instance("i-3", &["sg-old"], &[("eks:nodegroup-name", "lt-gone")]),
            instance("i-4", &["sg-asg"], &[("aws:autoscaling:groupName", "eks-plain")]),
            instance("i-5", &["sg-bare"], &[]),
        ];
        let meta = metadata(ngs, &[(lt("lt-1"), &["sg-node", "sg-cp", "sg-ssh"]), (lt("lt-2"), &[])], instances);
        let mut warnings = Vec::new();
        let sets = node_groups(&info(), &meta, &mut warnings);
        let got: Vec<(&str, NodeGroupKind, Vec<String>)> =
            sets.iter().map(|g| (g.name.as_str(), g.kind, g.security_group_ids.clone())).collect();
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(
            got,
            vec![
                ("lt", NodeGroupKind::Managed, s(&["sg-cp", "sg-node", "sg-ssh"])),
                ("lt-empty", NodeGroupKind::Managed, s(&["sg-cluster"])),
                ("lt-gone", NodeGroupKind::Managed, s(&["sg-old"])),
                ("lt-gone-no-nodes", NodeGroupKind::Managed, s(&["sg-cluster"])),
                ("plain", NodeGroupKind::Managed, s(&["sg-cluster", "sg-ra"])),
                ("ng-self", NodeGroupKind::SelfManaged, s(&["sg-self"])),
                ("self-managed", NodeGroupKind::SelfManaged, s(&["sg-bare"])),
            ]
        );
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        let found: HashMap<String, GroupRecord> =
            [record("sg-ssh", "eksctl-c-nodegroup-ng-remoteAccess")].into_iter().collect();
        let roles = roles_of(&info(), &meta, &sets, &found);
        // A control-plane group that a launch template also lists keeps the stronger role.
        assert_eq!(roles.get("sg-cp"), Some(&Role::ControlPlane));
        assert_eq!(roles.get("sg-node"), Some(&Role::Node));
        assert_eq!(roles.get("sg-ra"), Some(&Role::RemoteAccess));
        assert_eq!(roles.get("sg-ssh"), Some(&Role::RemoteAccess), "eksctl's SSH group in a launch template");
        assert_eq!(roles.get("sg-self"), Some(&Role::Node));
        assert_eq!(roles.get("sg-extra"), Some(&Role::Node), "attached to a managed node, though no template lists it");
        assert_eq!(roles.get("sg-cluster"), Some(&Role::Cluster));
    }

    #[test]
    fn call_stats_count_requests_errors_and_durations_per_operation() {
        let stats = AwsCallStats::default();
        stats.record(DESCRIBE_SECURITY_GROUPS, Duration::from_millis(3), None);
        stats.record(DESCRIBE_SECURITY_GROUPS, Duration::from_secs(40), None);
        let denied = SourceError::AccessDenied {
            operation: "x".into(),
            action: "ec2:DescribeSecurityGroups".into(),
            message: String::new(),
        };
        stats.record(DESCRIBE_SECURITY_GROUPS, Duration::from_millis(30), Some(&denied));
        assert_eq!(stats.call_counts().get("ec2:DescribeSecurityGroups"), Some(&3));
        let snap = stats.snapshot();
        let s = &snap[&DESCRIBE_SECURITY_GROUPS];
        assert_eq!(s.errors.get("access_denied"), Some(&1));
        assert_eq!(s.errors_total(), 1);
        let cumulative = s.cumulative_buckets();
        assert_eq!(cumulative.first(), Some(&(0.005, 1)));
        assert_eq!(cumulative.last(), Some(&(30.0, 2)), "the 40 s call is above every bound");
        assert!((s.duration_sum_seconds - 40.033).abs() < 1e-9);
    }
}
