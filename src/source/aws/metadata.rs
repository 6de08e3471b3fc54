//! Reading the metadata of the clusters of one account and region that need it, together: per
//! cluster what EKS only answers per cluster (`DescribeCluster`, node groups, Fargate profiles,
//! the `vpc-cni` add-on), per region one walk for each EC2 shape, filtered by every cluster's
//! tag key or VPC at once and sorted out per cluster here. Each cluster ends with exactly what
//! reading it alone would have given (`assemble::ClusterMetadata`), so batching changes no
//! snapshot.

// A refresh's error carries the classified error and AWS's code and message; metadata is read
// rarely, so boxing it would buy nothing.
#![allow(clippy::result_large_err)]

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use aws_sdk_ec2::types::Filter;

use super::{each, paginate, CachedMetadata, Inner, Scope, EC2_PAGE, FILTER_VALUES};
use crate::source::assemble::{
    self, ClusterInfo, ClusterMetadata, FargateProfileInfo, InstanceInfo, LaunchTemplateRef, LaunchTemplateVersionInfo,
    NetworkInterfaceInfo, NodegroupInfo, RouteTableInfo, VpcCniAddon, VpcEndpointInfo, VpcInfo,
};
use crate::source::convert::{CallFailure, Operation};
use crate::source::SourceError;

const DESCRIBE_CLUSTER: Operation = Operation::new("eks", "DescribeCluster");
const LIST_NODEGROUPS: Operation = Operation::new("eks", "ListNodegroups");
const DESCRIBE_NODEGROUP: Operation = Operation::new("eks", "DescribeNodegroup");
const LIST_FARGATE_PROFILES: Operation = Operation::new("eks", "ListFargateProfiles");
const DESCRIBE_FARGATE_PROFILE: Operation = Operation::new("eks", "DescribeFargateProfile");
const DESCRIBE_ADDON: Operation = Operation::new("eks", "DescribeAddon");
const DESCRIBE_LAUNCH_TEMPLATE_VERSIONS: Operation = Operation::new("ec2", "DescribeLaunchTemplateVersions");
const DESCRIBE_INSTANCES: Operation = Operation::new("ec2", "DescribeInstances");
const DESCRIBE_VPCS: Operation = Operation::new("ec2", "DescribeVpcs");
const DESCRIBE_VPC_ENDPOINTS: Operation = Operation::new("ec2", "DescribeVpcEndpoints");
const DESCRIBE_ROUTE_TABLES: Operation = Operation::new("ec2", "DescribeRouteTables");
const DESCRIBE_NETWORK_INTERFACES: Operation = Operation::new("ec2", "DescribeNetworkInterfaces");

/// Why a cluster's metadata could not be read; `gone` when EKS says the cluster itself does not
/// exist, which no cached copy can stand in for.
#[derive(Debug, Clone)]
pub(super) struct RefreshFailure {
    pub failure: CallFailure,
    pub gone: bool,
}

impl From<CallFailure> for RefreshFailure {
    fn from(failure: CallFailure) -> Self {
        RefreshFailure { failure, gone: false }
    }
}

/// What EKS says of one cluster.
struct EksPart {
    info: ClusterInfo,
    nodegroups: Vec<NodegroupInfo>,
    fargate_profiles: Vec<FargateProfileInfo>,
}

/// The region's EC2 answers for the clusters being refreshed.
struct Regional {
    instances: Result<Vec<InstanceInfo>, CallFailure>,
    vpcs: Result<Vec<VpcInfo>, CallFailure>,
    endpoints: Result<Vec<VpcEndpointInfo>, CallFailure>,
    route_tables: Result<Vec<RouteTableInfo>, CallFailure>,
    interfaces: Result<Vec<NetworkInterfaceInfo>, CallFailure>,
    templates: Result<Vec<LaunchTemplateVersionInfo>, CallFailure>,
}

type Refreshed = BTreeMap<String, Result<CachedMetadata, RefreshFailure>>;

/// Reads the metadata of `names` (clusters of `scope`): EKS per cluster side by side, the
/// instance walk meanwhile, then the VPC-scoped walks and launch templates once the clusters'
/// VPCs and node groups are known, then the add-on where pods have their own SGs.
/// `whole_region`: `names` are every cluster of the region (a wildcard target, all due).
pub(super) async fn refresh(
    inner: &Arc<Inner>,
    scope: &Arc<Scope>,
    names: Vec<String>,
    whole_region: bool,
) -> Refreshed {
    let eks = each(names.clone(), |name| {
        let (inner, scope) = (Arc::clone(inner), Arc::clone(scope));
        async move { eks_part(&inner, &scope, &name).await }
    });
    // Boxed: the SDK's futures are large, and side by side on one stack they would overflow it.
    let (eks, instances) = tokio::join!(Box::pin(eks), Box::pin(instances(inner, scope, &names, whole_region)));
    let mut parts: BTreeMap<String, Result<EksPart, RefreshFailure>> = BTreeMap::new();
    for (name, part) in names.into_iter().zip(eks) {
        let part =
            part.map_err(|error| RefreshFailure::from(CallFailure { error, code: None, message: String::new() }));
        parts.insert(name, part.and_then(|p| p));
    }
    let ready: Vec<&EksPart> = parts.values().filter_map(|p| p.as_ref().ok()).collect();
    let vpc_ids: Vec<String> =
        ready.iter().filter_map(|p| p.info.vpc_id.clone()).collect::<BTreeSet<_>>().into_iter().collect();
    let refs: BTreeSet<LaunchTemplateRef> =
        ready.iter().flat_map(|p| p.nodegroups.iter().filter_map(|ng| ng.launch_template.clone())).collect();
    let (vpcs, endpoints, route_tables, interfaces, templates) = tokio::join!(
        Box::pin(vpcs(inner, scope, &vpc_ids)),
        Box::pin(endpoints(inner, scope, &vpc_ids)),
        Box::pin(route_tables(inner, scope, &vpc_ids)),
        Box::pin(branch_interfaces(inner, scope, &vpc_ids)),
        Box::pin(launch_templates(inner, scope, &refs)),
    );
    let regional = Regional { instances, vpcs, endpoints, route_tables, interfaces, templates };
    let mut out: Refreshed = BTreeMap::new();
    let mut with_pods: Vec<(String, CachedMetadata)> = Vec::new();
    for (name, part) in parts {
        match part.and_then(|p| Ok(cluster_metadata(p, &regional)?)) {
            Ok(m) if !assemble::referenced_pod_sets(&m.info, &m.raw).is_empty() => with_pods.push((name, m)),
            other => {
                out.insert(name, other);
            }
        }
    }
    out.extend(with_addons(inner, scope, with_pods).await);
    out
}

/// One cluster's share of the region's answers, exactly as reading it alone would give it.
fn cluster_metadata(part: EksPart, regional: &Regional) -> Result<CachedMetadata, CallFailure> {
    let EksPart { info, nodegroups, fargate_profiles } = part;
    let mut instances: BTreeMap<String, InstanceInfo> = BTreeMap::new();
    for i in regional.instances.as_ref().map_err(Clone::clone)? {
        if i.belongs_to(&info.name) {
            instances.insert(i.id.clone(), i.clone());
        }
    }
    let templates = if nodegroups.iter().any(|ng| ng.launch_template.is_some()) {
        pick_versions(&nodegroups, regional.templates.as_ref().map_err(Clone::clone)?)
    } else {
        Vec::new()
    };
    let mut raw = ClusterMetadata {
        nodegroups,
        fargate_profiles,
        launch_templates: templates,
        instances: instances.into_values().collect(),
        ..ClusterMetadata::default()
    };
    let mut warnings = Vec::new();
    match info.vpc_id.as_deref() {
        Some(vpc) => {
            let of_vpc = |v: &Option<String>| v.as_deref() == Some(vpc);
            raw.vpcs = Some(keep(&regional.vpcs, |v| v.id == vpc)?);
            raw.vpc_endpoints = Some(keep(&regional.endpoints, |e| of_vpc(&e.vpc_id))?);
            raw.route_tables = Some(keep(&regional.route_tables, |t| of_vpc(&t.vpc_id))?);
            raw.network_interfaces = Some(keep(&regional.interfaces, |n| of_vpc(&n.vpc_id))?);
        }
        None => warnings
            .push("DescribeCluster names no VPC: `vpc-cidr` peers, VPC endpoints and routes cannot be resolved".into()),
    }
    Ok(CachedMetadata { fetched_at: Instant::now(), info, raw, warnings })
}

/// The items of a region's answer that `wanted`, or the answer's failure.
fn keep<T: Clone>(answer: &Result<Vec<T>, CallFailure>, wanted: impl Fn(&T) -> bool) -> Result<Vec<T>, CallFailure> {
    Ok(answer.as_ref().map_err(Clone::clone)?.iter().filter(|t| wanted(t)).cloned().collect())
}

/// The launch-template versions the cluster's node groups name, one per distinct reference,
/// in node-group order: what one `DescribeLaunchTemplateVersions` per reference gives.
fn pick_versions(nodegroups: &[NodegroupInfo], pool: &[LaunchTemplateVersionInfo]) -> Vec<LaunchTemplateVersionInfo> {
    let mut asked: BTreeSet<&LaunchTemplateRef> = BTreeSet::new();
    let mut out = Vec::new();
    for lt in nodegroups.iter().filter_map(|ng| ng.launch_template.as_ref()) {
        if asked.insert(lt) {
            out.extend(assemble::find_version(pool, lt).cloned());
        }
    }
    out
}

/// `DescribeCluster`, the node groups and the Fargate profiles of one cluster.
async fn eks_part(inner: &Inner, scope: &Scope, name: &str) -> Result<EksPart, RefreshFailure> {
    let out = match inner.scoped(scope, DESCRIBE_CLUSTER, scope.eks.describe_cluster().name(name).send()).await {
        Ok(out) => out,
        Err(f) => {
            let gone = f.error.kind() == "not_found";
            return Err(RefreshFailure { failure: f, gone });
        }
    };
    let info = out.cluster().map(ClusterInfo::from).ok_or_else(|| {
        RefreshFailure::from(CallFailure {
            error: SourceError::Server {
                operation: DESCRIBE_CLUSTER.action(),
                message: format!("the answer for cluster {name} holds no cluster"),
            },
            code: None,
            message: String::new(),
        })
    })?;
    let nodegroups = nodegroups(inner, scope, name).await?;
    let fargate_profiles = fargate_profiles(inner, scope, name).await?;
    Ok(EksPart { info, nodegroups, fargate_profiles })
}

async fn nodegroups(inner: &Inner, scope: &Scope, cluster: &str) -> Result<Vec<NodegroupInfo>, CallFailure> {
    let names = paginate(LIST_NODEGROUPS, |token| async move {
        let req = scope.eks.list_nodegroups().cluster_name(cluster).max_results(100).set_next_token(token);
        let out = inner.scoped(scope, LIST_NODEGROUPS, req.send()).await?;
        Ok((out.nodegroups().to_vec(), out.next_token().map(str::to_string)))
    })
    .await?;
    describe_each(names, |ng| async move {
        let req = scope.eks.describe_nodegroup().cluster_name(cluster).nodegroup_name(ng);
        Ok(inner.scoped(scope, DESCRIBE_NODEGROUP, req.send()).await?.nodegroup().map(NodegroupInfo::from))
    })
    .await
}

/// The cluster's Fargate profiles. EKS has no batch form: one list walk per cluster, one
/// describe per profile, kept with the rest of the metadata.
async fn fargate_profiles(inner: &Inner, scope: &Scope, cluster: &str) -> Result<Vec<FargateProfileInfo>, CallFailure> {
    let names = paginate(LIST_FARGATE_PROFILES, |token| async move {
        let req = scope.eks.list_fargate_profiles().cluster_name(cluster).max_results(100).set_next_token(token);
        let out = inner.scoped(scope, LIST_FARGATE_PROFILES, req.send()).await?;
        Ok((out.fargate_profile_names().to_vec(), out.next_token().map(str::to_string)))
    })
    .await?;
    describe_each(names, |name| async move {
        let req = scope.eks.describe_fargate_profile().cluster_name(cluster).fargate_profile_name(name);
        Ok(inner
            .scoped(scope, DESCRIBE_FARGATE_PROFILE, req.send())
            .await?
            .fargate_profile()
            .map(FargateProfileInfo::from))
    })
    .await
}

/// Describes each of `names` in turn. One deleted between the list and the describe is left
/// out: it has no nodes or pods to check.
async fn describe_each<T, F, Fut>(names: Vec<String>, describe: F) -> Result<Vec<T>, CallFailure>
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = Result<Option<T>, CallFailure>>,
{
    let mut out = Vec::new();
    for name in names {
        match describe(name).await {
            Ok(found) => out.extend(found),
            Err(f) if f.error.kind() == "not_found" => {}
            Err(f) => return Err(f),
        }
    }
    Ok(out)
}

/// The `vpc-cni` add-on of each cluster with pods that have their own SGs, side by side. The
/// enforcing mode matters only to those pods: for other clusters it would be one more call
/// each for nothing. A failure leaves the mode unknown, with a warning, not a failed cluster.
async fn with_addons(inner: &Arc<Inner>, scope: &Arc<Scope>, clusters: Vec<(String, CachedMetadata)>) -> Refreshed {
    let names: Vec<String> = clusters.iter().map(|(n, _)| n.clone()).collect();
    let addons = each(names, |name| {
        let (inner, scope) = (Arc::clone(inner), Arc::clone(scope));
        async move { vpc_cni(&inner, &scope, &name).await }
    })
    .await;
    let mut out = Refreshed::new();
    for ((name, mut m), addon) in clusters.into_iter().zip(addons) {
        match addon.and_then(|a| a.map_err(|f| f.error)) {
            Ok(addon) => m.raw.vpc_cni = Some(addon),
            Err(e) => m
                .warnings
                .push(format!("the vpc-cni add-on could not be read ({e}): the pod-SG enforcing mode is unknown")),
        }
        out.insert(name, Ok(m));
    }
    out
}

/// The `vpc-cni` managed add-on, or `SelfManaged` when EKS has none by that name (moto, the
/// tests' emulator, has no DescribeAddon and answers 404 too).
async fn vpc_cni(inner: &Inner, scope: &Scope, cluster: &str) -> Result<VpcCniAddon, CallFailure> {
    let req = scope.eks.describe_addon().cluster_name(cluster).addon_name("vpc-cni");
    match inner.scoped(scope, DESCRIBE_ADDON, req.send()).await {
        Ok(out) => Ok(out.addon().map_or(VpcCniAddon::SelfManaged, VpcCniAddon::from)),
        Err(f) if f.error.kind() == "not_found" => Ok(VpcCniAddon::SelfManaged),
        Err(f) => Err(f),
    }
}

/// The filters (name, values) that find the live nodes of `clusters`, each of at most
/// `FILTER_VALUES` values. For a whole region's clusters, one `tag-key` walk whatever their
/// number: the tag keys of `assemble::node_instance_tags`, with the per-cluster
/// `kubernetes.io/cluster/<name>` as one wildcard (EC2 filter values take `*`; EKS cluster
/// names cannot hold one), which finds only nodes of clusters read anyway, and those of
/// Kubernetes clusters outside EKS, dropped locally. For some of a region's clusters (a named
/// target, a cluster due early), one walk per tag with the clusters' names as values, so that
/// the nodes of other clusters are not read. Which cluster an instance is a node of is decided
/// locally, by the same tags.
fn instance_filters(clusters: &[String], whole_region: bool) -> Vec<(String, Vec<String>)> {
    let chunks = |name: String, values: Vec<String>| -> Vec<(String, Vec<String>)> {
        values.chunks(FILTER_VALUES).map(|c| (name.clone(), c.to_vec())).collect()
    };
    if whole_region {
        if clusters.is_empty() {
            return Vec::new();
        }
        let keys: BTreeSet<String> = assemble::node_instance_tags("*").into_iter().map(|(k, _)| k).collect();
        return chunks("tag-key".into(), keys.into_iter().collect());
    }
    let mut by_filter: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for c in clusters {
        for (key, value) in assemble::node_instance_tags(c) {
            match value {
                Some(v) => by_filter.entry(format!("tag:{key}")).or_default().push(v),
                None => by_filter.entry("tag-key".into()).or_default().push(key),
            }
        }
    }
    by_filter.into_iter().flat_map(|(name, values)| chunks(name, values)).collect()
}

/// The live instances that may be nodes of `clusters`, one walk per filter of
/// [`instance_filters`], the walks side by side.
async fn instances(
    inner: &Arc<Inner>,
    scope: &Arc<Scope>,
    clusters: &[String],
    whole_region: bool,
) -> Result<Vec<InstanceInfo>, CallFailure> {
    let walks = each(instance_filters(clusters, whole_region), |(name, values)| {
        let (inner, scope) = (Arc::clone(inner), Arc::clone(scope));
        async move { instance_walk(&inner, &scope, Filter::builder().name(name).set_values(Some(values)).build()).await }
    })
    .await;
    let mut by_id: BTreeMap<String, InstanceInfo> = BTreeMap::new();
    for walk in walks {
        let found = walk.map_err(|error| CallFailure { error, code: None, message: String::new() })??;
        by_id.extend(found.into_iter().map(|i| (i.id.clone(), i)));
    }
    Ok(by_id.into_values().collect())
}

async fn instance_walk(inner: &Inner, scope: &Scope, tagged: Filter) -> Result<Vec<InstanceInfo>, CallFailure> {
    let live = Filter::builder()
        .name("instance-state-name")
        .values("pending")
        .values("running")
        .values("stopping")
        .values("stopped")
        .build();
    paginate(DESCRIBE_INSTANCES, |token| {
        let (tagged, live) = (tagged.clone(), live.clone());
        async move {
            let req = scope
                .ec2
                .describe_instances()
                .filters(tagged)
                .filters(live)
                .max_results(EC2_PAGE)
                .set_next_token(token);
            let out = inner.scoped(scope, DESCRIBE_INSTANCES, req.send()).await?;
            let found: Vec<InstanceInfo> =
                out.reservations().iter().flat_map(|r| r.instances()).map(InstanceInfo::from).collect();
            Ok((found, out.next_token().map(str::to_string)))
        }
    })
    .await
}

/// A `vpc-id` filter naming `vpcs`.
fn of_vpcs(vpcs: &[String]) -> Filter {
    Filter::builder().name("vpc-id").set_values(Some(vpcs.to_vec())).build()
}

/// Runs `walk` over `vpcs` in filters of `FILTER_VALUES`, one after the other (a fleet with more
/// VPCs than that in one region is rare; the other walks run alongside).
async fn per_chunk<T, F, Fut>(vpcs: &[String], mut walk: F) -> Result<Vec<T>, CallFailure>
where
    F: FnMut(Filter) -> Fut,
    Fut: Future<Output = Result<Vec<T>, CallFailure>>,
{
    let mut out = Vec::new();
    for chunk in vpcs.chunks(FILTER_VALUES) {
        out.extend(walk(of_vpcs(chunk)).await?);
    }
    Ok(out)
}

/// The clusters' VPCs; one that does not exist is simply absent (`assemble` says so).
async fn vpcs(inner: &Inner, scope: &Scope, vpcs: &[String]) -> Result<Vec<VpcInfo>, CallFailure> {
    per_chunk(vpcs, |filter| {
        paginate(DESCRIBE_VPCS, move |token| {
            let req = scope.ec2.describe_vpcs().filters(filter.clone()).max_results(EC2_PAGE).set_next_token(token);
            async move {
                let out = inner.scoped(scope, DESCRIBE_VPCS, req.send()).await?;
                Ok((out.vpcs().iter().map(VpcInfo::from).collect(), out.next_token().map(str::to_string)))
            }
        })
    })
    .await
}

async fn endpoints(inner: &Inner, scope: &Scope, vpcs: &[String]) -> Result<Vec<VpcEndpointInfo>, CallFailure> {
    per_chunk(vpcs, |filter| {
        paginate(DESCRIBE_VPC_ENDPOINTS, move |token| {
            let req =
                scope.ec2.describe_vpc_endpoints().filters(filter.clone()).max_results(EC2_PAGE).set_next_token(token);
            async move {
                let out = inner.scoped(scope, DESCRIBE_VPC_ENDPOINTS, req.send()).await?;
                let found = out.vpc_endpoints().iter().map(VpcEndpointInfo::from).collect();
                Ok((found, out.next_token().map(str::to_string)))
            }
        })
    })
    .await
}

async fn route_tables(inner: &Inner, scope: &Scope, vpcs: &[String]) -> Result<Vec<RouteTableInfo>, CallFailure> {
    per_chunk(vpcs, |filter| {
        paginate(DESCRIBE_ROUTE_TABLES, move |token| {
            // 100 is the largest page DescribeRouteTables gives.
            let req = scope.ec2.describe_route_tables().filters(filter.clone()).max_results(100).set_next_token(token);
            async move {
                let out = inner.scoped(scope, DESCRIBE_ROUTE_TABLES, req.send()).await?;
                let found = out.route_tables().iter().map(RouteTableInfo::from).collect();
                Ok((found, out.next_token().map(str::to_string)))
            }
        })
    })
    .await
}

/// The branch ENIs of the VPCs. The controller's description picks them as surely as
/// `interface-type=branch`, and the AWS emulator of the tests knows only it.
async fn branch_interfaces(
    inner: &Inner,
    scope: &Scope,
    vpcs: &[String],
) -> Result<Vec<NetworkInterfaceInfo>, CallFailure> {
    per_chunk(vpcs, |filter| {
        paginate(DESCRIBE_NETWORK_INTERFACES, move |token| {
            let branch = Filter::builder().name("description").values(assemble::BRANCH_ENI_DESCRIPTION).build();
            let req = scope
                .ec2
                .describe_network_interfaces()
                .filters(filter.clone())
                .filters(branch)
                .max_results(EC2_PAGE)
                .set_next_token(token);
            async move {
                let out = inner.scoped(scope, DESCRIBE_NETWORK_INTERFACES, req.send()).await?;
                let found = out.network_interfaces().iter().map(NetworkInterfaceInfo::from).collect();
                Ok((found, out.next_token().map(str::to_string)))
            }
        })
    })
    .await
}

/// The versions `refs` name: the `$Latest` and `$Default` version of every template of the
/// region in one walk (EC2 answers that without template ids), then each pinned version that
/// is neither, on its own. A template or version that is gone reads as none: `assemble` falls
/// back and says so.
async fn launch_templates(
    inner: &Arc<Inner>,
    scope: &Arc<Scope>,
    refs: &BTreeSet<LaunchTemplateRef>,
) -> Result<Vec<LaunchTemplateVersionInfo>, CallFailure> {
    if refs.is_empty() {
        return Ok(Vec::new());
    }
    let mut pool = template_walk(inner, scope, None, vec!["$Latest".into(), "$Default".into()]).await?;
    let pinned: Vec<LaunchTemplateRef> = refs
        .iter()
        .filter(|lt| lt.id.is_some() || lt.name.is_some())
        .filter(|lt| assemble::find_version(&pool, lt).is_none())
        .filter(|lt| lt.version.as_deref().is_some_and(|v| v.parse::<i64>().is_ok()))
        .cloned()
        .collect();
    let walks = each(pinned, |lt| {
        let (inner, scope) = (Arc::clone(inner), Arc::clone(scope));
        let version = lt.version.clone().unwrap_or_default();
        async move { template_walk(&inner, &scope, Some(&lt), vec![version]).await }
    })
    .await;
    for walk in walks {
        pool.extend(walk.map_err(|error| CallFailure { error, code: None, message: String::new() })??);
    }
    // `$Latest` and `$Default` are the same version of a template with one.
    let mut seen = BTreeSet::new();
    pool.retain(|v| seen.insert((v.template_id.clone(), v.template_name.clone(), v.version_number)));
    Ok(pool)
}

/// One `DescribeLaunchTemplateVersions` walk: `versions` of `lt`, or of every template.
async fn template_walk(
    inner: &Inner,
    scope: &Scope,
    lt: Option<&LaunchTemplateRef>,
    versions: Vec<String>,
) -> Result<Vec<LaunchTemplateVersionInfo>, CallFailure> {
    paginate(DESCRIBE_LAUNCH_TEMPLATE_VERSIONS, |token| {
        let mut req =
            scope.ec2.describe_launch_template_versions().set_versions(Some(versions.clone())).set_next_token(token);
        req = match lt.map(|lt| (&lt.id, &lt.name)) {
            Some((Some(id), _)) => req.launch_template_id(id),
            Some((None, Some(name))) => req.launch_template_name(name),
            // A page size only without a template: EC2 refuses one with a single template's
            // version numbers.
            _ => req.max_results(200),
        };
        async move {
            match inner.scoped(scope, DESCRIBE_LAUNCH_TEMPLATE_VERSIONS, req.send()).await {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_whole_region_is_found_by_tag_keys_and_some_of_its_clusters_by_their_names() {
        // (clusters, whole region, the filters: name and number of values)
        let table: [(usize, bool, &[(&str, usize)]); 6] = [
            // `kubernetes.io/cluster/*` and the three keys whose value names the cluster.
            (1, true, &[("tag-key", 4)]),
            (41, true, &[("tag-key", 4)]),
            (1000, true, &[("tag-key", 4)]),
            (0, true, &[]),
            (
                1,
                false,
                &[
                    ("tag-key", 1),
                    ("tag:alpha.eksctl.io/cluster-name", 1),
                    ("tag:eks:cluster-name", 1),
                    ("tag:eks:eks-cluster-name", 1),
                ],
            ),
            (
                201,
                false,
                &[
                    ("tag-key", 200),
                    ("tag-key", 1),
                    ("tag:alpha.eksctl.io/cluster-name", 200),
                    ("tag:alpha.eksctl.io/cluster-name", 1),
                    ("tag:eks:cluster-name", 200),
                    ("tag:eks:cluster-name", 1),
                    ("tag:eks:eks-cluster-name", 200),
                    ("tag:eks:eks-cluster-name", 1),
                ],
            ),
        ];
        for (n, whole, want) in table {
            let names: Vec<String> = (0..n).map(|i| format!("c{i:03}")).collect();
            let filters = instance_filters(&names, whole);
            let got: Vec<(&str, usize)> = filters.iter().map(|(f, v)| (f.as_str(), v.len())).collect();
            assert_eq!(got, want, "{n} clusters, whole region {whole}");
            if !whole {
                let eks = filters.iter().filter(|(f, _)| f == "tag:eks:cluster-name").flat_map(|(_, v)| v);
                assert_eq!(eks.cloned().collect::<Vec<_>>(), names, "the names are the values");
            } else if n > 0 {
                assert!(filters[0].1.contains(&"kubernetes.io/cluster/*".to_string()), "{filters:?}");
            }
        }
    }

    #[test]
    fn each_cluster_gets_the_one_version_each_of_its_template_references_names() {
        let version = |id: &str, n: i64, default: bool, sg: &str| LaunchTemplateVersionInfo {
            template_id: Some(id.into()),
            template_name: Some(format!("{id}-name")),
            version_number: n,
            default_version: default,
            security_group_ids: vec![sg.into()],
        };
        let pool = [
            version("lt-a", 3, false, "sg-a3"),
            version("lt-a", 2, true, "sg-a2"),
            version("lt-a", 1, false, "sg-a1"),
            version("lt-b", 1, true, "sg-b1"),
        ];
        let ng = |name: &str, id: Option<&str>, tname: Option<&str>, v: Option<&str>| NodegroupInfo {
            name: name.into(),
            launch_template: Some(LaunchTemplateRef {
                id: id.map(Into::into),
                name: tname.map(Into::into),
                version: v.map(Into::into),
            }),
            remote_access_security_group: None,
            auto_scaling_groups: Vec::new(),
            subnets: Vec::new(),
        };
        // (node groups, the groups of the versions picked, in node-group order)
        let table: Vec<(Vec<NodegroupInfo>, Vec<&str>)> = vec![
            (vec![ng("latest", Some("lt-a"), None, Some("$Latest"))], vec!["sg-a3"]),
            (
                vec![ng("default", Some("lt-a"), None, None), ng("again", Some("lt-a"), None, Some("$Default"))],
                vec!["sg-a2", "sg-a2"],
            ),
            (
                vec![ng("pinned", Some("lt-a"), None, Some("1")), ng("by-name", None, Some("lt-b-name"), Some("1"))],
                vec!["sg-a1", "sg-b1"],
            ),
            // The same reference twice is one version; a template nobody has, none.
            (
                vec![
                    ng("x", Some("lt-b"), None, Some("1")),
                    ng("y", Some("lt-b"), None, Some("1")),
                    ng("gone", Some("lt-z"), None, None),
                ],
                vec!["sg-b1"],
            ),
        ];
        for (nodegroups, want) in table {
            let got: Vec<String> =
                pick_versions(&nodegroups, &pool).into_iter().flat_map(|v| v.security_group_ids).collect();
            assert_eq!(got, want, "{:?}", nodegroups.iter().map(|n| &n.name).collect::<Vec<_>>());
        }
    }
}
