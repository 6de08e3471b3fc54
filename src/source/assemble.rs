//! The one pure step from raw AWS shapes to a `ClusterSnapshot`, shared by every source: which
//! groups play which roles, the node groups and their SG sets, VPC CIDRs, endpoints, routes out,
//! pod SG sets, peer groups and the style. Sources only fetch and convert (`convert` for the SDK,
//! `files` for the AWS CLI's JSON) into the plain shapes below; every decision is made here, once.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use ipnet::IpNet;

use super::{style, SourceError};
use crate::model::{
    canonicalize, normalize, ClusterId, ClusterSnapshot, DataPlane, Direction, EfaSet, EndpointMode, IpFamily,
    NodeGroup, NodeGroupKind, ParseError, Peer, PeerGroup, PodSgEnforcingMode, RawPermission, RemoteNetwork, Role,
    RouteOut, Rule, SecurityGroup, Style, VpcEndpoint, VpcEndpointKind,
};

/// What `DescribeCluster` says about one cluster, as far as security groups go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterInfo {
    pub name: String,
    pub arn: Option<String>,
    pub endpoint_public_access: bool,
    pub endpoint_private_access: bool,
    pub public_access_cidrs: Vec<String>,
    pub vpc_id: Option<String>,
    pub cluster_security_group_id: Option<String>,
    pub security_group_ids: Vec<String>,
    pub tags: BTreeMap<String, String>,
    /// `kubernetesNetworkConfig.ipFamily`.
    pub ip_family: IpFamily,
    /// `computeConfig.enabled`: EKS Auto Mode runs the nodes.
    pub auto_mode: bool,
    /// `remoteNetworkConfig`: hybrid nodes.
    pub remote_network: Option<RemoteNetwork>,
}

/// The launch template a managed node group names (`launchTemplate.{id,name,version}`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LaunchTemplateRef {
    pub id: Option<String>,
    pub name: Option<String>,
    pub version: Option<String>,
}

/// What `DescribeNodegroup` says about one managed node group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodegroupInfo {
    pub name: String,
    pub launch_template: Option<LaunchTemplateRef>,
    pub remote_access_security_group: Option<String>,
    /// The Auto Scaling groups EKS made for it: their instances are this group's nodes.
    pub auto_scaling_groups: Vec<String>,
    /// The subnets its nodes are launched in (`subnets`): their route tables decide its way out.
    pub subnets: Vec<String>,
}

/// One version of a launch template (`DescribeLaunchTemplateVersions`) and the groups it gives
/// its instances: `SecurityGroupIds`, or those of its network interfaces (one or the other).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchTemplateVersionInfo {
    pub template_id: Option<String>,
    pub template_name: Option<String>,
    pub version_number: i64,
    pub default_version: bool,
    pub security_group_ids: Vec<String>,
}

/// One EC2 instance that may be a node: its tags, subnet, every SG on its ENIs and the ENIs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceInfo {
    pub id: String,
    /// Not terminated or shutting down.
    pub live: bool,
    pub subnet_id: Option<String>,
    /// Every SG on any of its ENIs.
    pub security_group_ids: Vec<String>,
    pub tags: BTreeMap<String, String>,
    /// Its attached network interfaces (`NetworkInterfaces` of `DescribeInstances`).
    pub interfaces: Vec<InstanceInterfaceInfo>,
}

/// One network interface attached to an instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceInterfaceInfo {
    /// `Attachment.DeviceIndex`: 0 is the primary ENI.
    pub device_index: Option<i32>,
    /// `interface`, `efa`, `efa-only`, `trunk`, …
    pub interface_type: Option<String>,
    pub subnet_id: Option<String>,
    pub security_group_ids: Vec<String>,
}

impl InstanceInterfaceInfo {
    fn is_efa(&self) -> bool {
        self.interface_type.as_deref().is_some_and(|t| t.starts_with("efa"))
    }

    /// A secondary ENI the VPC CNI attached for pods (not EFA, not a pod-SG trunk).
    fn is_secondary_pod_eni(&self) -> bool {
        self.device_index.is_some_and(|d| d > 0) && self.interface_type.as_deref().is_none_or(|t| t == "interface")
    }
}

/// A Fargate profile (`DescribeFargateProfile`): its pods get the cluster SG (reference §1.6,
/// D-fg) in its subnets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FargateProfileInfo {
    pub name: String,
    /// `ACTIVE`, `CREATING`, `DELETING`, …
    pub status: Option<String>,
    pub subnets: Vec<String>,
}

/// What `DescribeAddon` says of the `vpc-cni` add-on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VpcCniAddon {
    /// No such managed add-on (`ResourceNotFoundException`): the VPC CNI is self-managed, and
    /// its settings live in the `aws-node` DaemonSet, which sgdrift does not read.
    SelfManaged,
    /// The managed add-on and its `configurationValues` (JSON or YAML), if any.
    Managed { configuration_values: Option<String> },
}

/// Tags that mark an instance as a node of cluster `<name>`: key, and the value required
/// (`None`: any value). EKS managed nodes, eksctl, the AWS node template and terraform-aws-eks
/// set one of them; Karpenter sets `kubernetes.io/cluster/<name>` and `eks:eks-cluster-name`.
pub fn node_instance_tags(cluster: &str) -> [(String, Option<String>); 4] {
    [
        (format!("kubernetes.io/cluster/{cluster}"), None),
        ("eks:cluster-name".to_string(), Some(cluster.to_string())),
        ("eks:eks-cluster-name".to_string(), Some(cluster.to_string())),
        ("alpha.eksctl.io/cluster-name".to_string(), Some(cluster.to_string())),
    ]
}

impl InstanceInfo {
    pub fn belongs_to(&self, cluster: &str) -> bool {
        node_instance_tags(cluster)
            .iter()
            .any(|(k, v)| self.tags.get(k).is_some_and(|got| v.as_ref().is_none_or(|want| got == want)))
    }

    /// The node group the instance belongs to, and its kind: `eks:nodegroup-name` is set by EKS
    /// on managed nodes only, `karpenter.sh/nodepool` by Karpenter (and Auto Mode).
    /// The SGs of its primary ENI (device index 0), else of all its ENIs together when the
    /// answer gives no attachment.
    fn primary_set(&self) -> Vec<String> {
        match self.interfaces.iter().find(|n| n.device_index == Some(0)) {
            Some(primary) => sorted(primary.security_group_ids.clone()),
            None => sorted(self.security_group_ids.clone()),
        }
    }

    /// The SG set of its EFA interfaces, if it has any.
    fn efa_set(&self) -> Option<Vec<String>> {
        let ids: Vec<String> =
            self.interfaces.iter().filter(|n| n.is_efa()).flat_map(|n| n.security_group_ids.iter().cloned()).collect();
        (!ids.is_empty()).then(|| sorted(ids))
    }

    /// Its secondary pod ENIs whose SG set differs from the primary's (custom networking), with
    /// their subnets.
    fn custom_network_sets(&self) -> Vec<(Vec<String>, Option<String>)> {
        let primary = self.primary_set();
        self.interfaces
            .iter()
            .filter(|n| n.is_secondary_pod_eni())
            .map(|n| (sorted(n.security_group_ids.clone()), n.subnet_id.clone()))
            .filter(|(set, _)| !set.is_empty() && *set != primary)
            .collect()
    }

    fn node_group(&self) -> (String, NodeGroupKind) {
        if let Some(ng) = self.tags.get("eks:nodegroup-name") {
            return (ng.clone(), NodeGroupKind::Managed);
        }
        if let Some(pool) = self.tags.get("karpenter.sh/nodepool") {
            return (pool.clone(), NodeGroupKind::Karpenter);
        }
        let name = ["alpha.eksctl.io/nodegroup-name", "aws:autoscaling:groupName"]
            .iter()
            .find_map(|k| self.tags.get(*k))
            .map_or("self-managed", String::as_str);
        (name.to_string(), NodeGroupKind::SelfManaged)
    }
}

/// One CIDR block of a VPC and its association state (`associated`, `disassociated`, …).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CidrBlock {
    pub cidr: IpNet,
    pub state: Option<String>,
}

/// What `DescribeVpcs` says about a VPC's address space.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VpcInfo {
    pub id: String,
    /// `CidrBlock`, for answers without an association set.
    pub primary: Option<IpNet>,
    pub ipv4: Vec<CidrBlock>,
    pub ipv6: Vec<CidrBlock>,
}

/// A VPC endpoint as `DescribeVpcEndpoints` gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VpcEndpointInfo {
    pub id: String,
    pub vpc_id: Option<String>,
    pub service_name: String,
    /// `Interface`, `Gateway`, `GatewayLoadBalancer`, …
    pub endpoint_type: String,
    pub state: Option<String>,
    pub security_group_ids: Vec<String>,
    pub private_dns_enabled: bool,
}

/// One route table of the cluster VPC (`DescribeRouteTables`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteTableInfo {
    pub id: String,
    pub vpc_id: Option<String>,
    /// The VPC's main table: it serves every subnet without an explicit association.
    pub main: bool,
    pub subnet_ids: Vec<String>,
    pub routes: Vec<RouteInfo>,
}

/// One route: its destination, the id of its target (`igw-…`, `nat-…`, `tgw-…`, `local`, …)
/// and its state (`active`, `blackhole`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteInfo {
    pub destination: Option<IpNet>,
    pub target: Option<String>,
    pub state: Option<String>,
}

/// A network interface of the cluster VPC (`DescribeNetworkInterfaces`); branch ENIs carry the
/// groups of *security groups for pods*.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkInterfaceInfo {
    pub id: String,
    pub interface_type: Option<String>,
    pub description: Option<String>,
    pub vpc_id: Option<String>,
    pub security_group_ids: Vec<String>,
}

/// A security group as EC2 describes it, with canonical rules but no role yet: the same group
/// can play different roles in different clusters of one batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupRecord {
    pub id: String,
    pub name: String,
    pub description: String,
    pub owner_id: Option<String>,
    pub vpc_id: Option<String>,
    pub tags: BTreeMap<String, String>,
    pub rules: Vec<Rule>,
}

impl GroupRecord {
    /// Normalizes the group's permissions into its canonical rules (`model::normalize`). The
    /// error names the list that failed (`IpPermissions`, `IpPermissionsEgress`).
    pub fn with_permissions(mut self, ingress: &[RawPermission], egress: &[RawPermission]) -> Result<Self, ParseError> {
        let owner = self.owner_id.as_deref();
        let mut rules =
            normalize(Direction::Ingress, ingress, owner).map_err(|e| ParseError(format!("IpPermissions: {}", e.0)))?;
        rules.extend(
            normalize(Direction::Egress, egress, owner)
                .map_err(|e| ParseError(format!("IpPermissionsEgress: {}", e.0)))?,
        );
        self.rules = canonicalize(rules);
        Ok(self)
    }

    fn with_roles(&self, roles: BTreeSet<Role>) -> SecurityGroup {
        SecurityGroup {
            id: self.id.clone(),
            name: self.name.clone(),
            description: self.description.clone(),
            owner_id: self.owner_id.clone(),
            vpc_id: self.vpc_id.clone(),
            tags: self.tags.clone(),
            roles,
            rules: self.rules.clone(),
        }
    }

    /// Groups of the same account that the rules name as peers.
    fn peer_ids(&self) -> impl Iterator<Item = &str> {
        self.rules.iter().filter_map(|r| match &r.peer {
            Peer::Group { id, owner: None } => Some(id.as_str()),
            _ => None,
        })
    }
}

/// What the `DescribeSecurityGroups` calls of one poll gave: groups by id, and ids that could
/// not be read, with why. An id in neither map does not exist (or is not visible).
#[derive(Debug, Default)]
pub struct GroupBatch {
    pub found: HashMap<String, GroupRecord>,
    pub failed: HashMap<String, SourceError>,
}

/// Everything besides the cluster and its groups that a source read about one cluster. `None`
/// marks what the source could not read at all (a files source without the optional file).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterMetadata {
    pub nodegroups: Vec<NodegroupInfo>,
    pub fargate_profiles: Vec<FargateProfileInfo>,
    /// `None`: not read (no pods with their own SGs, or no `describe-addon-vpc-cni.json`).
    pub vpc_cni: Option<VpcCniAddon>,
    pub launch_templates: Vec<LaunchTemplateVersionInfo>,
    pub instances: Vec<InstanceInfo>,
    pub vpcs: Option<Vec<VpcInfo>>,
    pub vpc_endpoints: Option<Vec<VpcEndpointInfo>>,
    pub route_tables: Option<Vec<RouteTableInfo>>,
    pub network_interfaces: Option<Vec<NetworkInterfaceInfo>>,
}

/// One cluster's raw shapes, ready to assemble.
pub struct RawCluster<'a> {
    pub id: ClusterId,
    pub info: &'a ClusterInfo,
    pub metadata: &'a ClusterMetadata,
    pub groups: &'a GroupBatch,
    pub prefix_lists: &'a BTreeMap<String, String>,
    /// What the source itself noticed (a stale cache, an absent optional file).
    pub warnings: Vec<String>,
}

/// Turns one cluster's raw shapes into its snapshot. Fails only when a group the cluster needs
/// could not be read (as opposed to no longer existing, which is a warning).
pub fn assemble(raw: RawCluster<'_>) -> Result<ClusterSnapshot, SourceError> {
    let RawCluster { id, info, metadata: meta, groups: batch, prefix_lists, mut warnings } = raw;
    if let Some(e) = referenced_groups(info, meta).iter().find_map(|id| batch.failed.get(id)) {
        return Err(e.clone());
    }
    let mut node_groups = node_groups(info, meta, &mut warnings);
    let mut roles = roles_of(info, meta, &node_groups, &batch.found);
    let peers = peer_candidates(&roles, &batch.found);
    if let Some(e) = peers.iter().find_map(|id| batch.failed.get(id)) {
        return Err(e.clone());
    }
    // eksctl's shared node SG is in every eksctl cluster, on nodes or not yet: the cluster SG's
    // rules name it (`IngressNodeToDefaultClusterSG`), its tags say what it is.
    let candidates: Vec<String> = roles.keys().chain(peers.iter()).cloned().collect();
    for gid in candidates {
        if batch.found.get(&gid).is_some_and(|g| is_eksctl_shared_node_group(&info.name, g)) {
            let origin = || "eksctl's ClusterSharedNodeSecurityGroup".to_string();
            roles.entry(gid).or_insert_with(|| (BTreeSet::new(), origin())).0.insert(Role::Node);
        }
    }

    let mut groups = BTreeMap::new();
    for (gid, (set, origin)) in roles {
        match batch.found.get(&gid) {
            Some(g) => {
                groups.insert(gid, g.with_roles(set));
            }
            None => warnings.push(format!(
                "security group {gid} ({}, {origin}) was not found by DescribeSecurityGroups (describe-security-groups.json for the files source): it was deleted or the read missed it, so its rules are unknown",
                set.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(", ")
            )),
        }
    }
    let peer_groups = peers
        .iter()
        .filter(|p| !groups.contains_key(*p))
        .filter_map(|p| batch.found.get(p))
        .map(|g| (g.id.clone(), PeerGroup { id: g.id.clone(), name: g.name.clone(), tags: g.tags.clone() }))
        .collect();

    let vpc_id = info.vpc_id.clone().unwrap_or_default();
    for ng in &mut node_groups {
        ng.group.route_out_v4 = route_out(&vpc_id, meta.route_tables.as_deref(), &ng.subnets, false);
        ng.group.route_out_v6 = route_out(&vpc_id, meta.route_tables.as_deref(), &ng.subnets, true);
    }
    let data_plane = DataPlane {
        efa: node_groups
            .iter()
            .flat_map(|ng| {
                ng.efa.iter().map(|set| EfaSet { node_group: ng.group.name.clone(), security_group_ids: set.clone() })
            })
            .collect(),
        pod_sg_enforcing_mode: enforcing_mode(meta.vpc_cni.as_ref(), &mut warnings),
    };
    let style = if info.auto_mode { Style::AutoMode } else { style::detect(&info.name, &info.tags, groups.values()) };
    Ok(ClusterSnapshot {
        id,
        endpoint_mode: EndpointMode::from_access(info.endpoint_public_access, info.endpoint_private_access),
        public_access_cidrs: info.public_access_cidrs.clone(),
        style,
        ip_family: info.ip_family,
        remote_network: info.remote_network.clone(),
        vpc_cidrs: vpc_cidrs(&vpc_id, meta.vpcs.as_deref(), &mut warnings),
        vpc_id,
        cluster_security_group_id: info.cluster_security_group_id.clone(),
        control_plane_security_group_ids: info.security_group_ids.clone(),
        groups,
        node_groups: node_groups.into_iter().map(|ng| ng.group).collect(),
        vpc_endpoints: vpc_endpoints(info.vpc_id.as_deref(), meta.vpc_endpoints.as_deref()),
        pod_security_group_sets: pod_sets(info.vpc_id.as_deref(), meta.network_interfaces.as_deref()),
        data_plane,
        peer_groups,
        prefix_lists: prefix_lists.clone(),
        warnings,
    })
}

/// Every group id the cluster names before anything is known about the groups themselves:
/// what a source must read (plus the peers, see [`peer_ids`]).
pub fn referenced_groups(info: &ClusterInfo, meta: &ClusterMetadata) -> BTreeSet<String> {
    let mut ids: BTreeSet<String> = info.cluster_security_group_id.iter().cloned().collect();
    ids.extend(info.security_group_ids.iter().cloned());
    ids.extend(meta.nodegroups.iter().filter_map(|ng| ng.remote_access_security_group.clone()));
    ids.extend(meta.launch_templates.iter().flat_map(|v| v.security_group_ids.iter().cloned()));
    ids.extend(cluster_instances(info, meta).flat_map(|i| i.security_group_ids.iter().cloned()));
    let endpoints = vpc_endpoints(info.vpc_id.as_deref(), meta.vpc_endpoints.as_deref());
    ids.extend(endpoints.into_iter().flat_map(|e| e.security_group_ids));
    ids.extend(pod_sets(info.vpc_id.as_deref(), meta.network_interfaces.as_deref()).into_iter().flatten());
    ids
}

/// The distinct SG sets of the cluster VPC's branch ENIs: pods with their own SGs.
pub fn referenced_pod_sets(info: &ClusterInfo, meta: &ClusterMetadata) -> Vec<Vec<String>> {
    pod_sets(info.vpc_id.as_deref(), meta.network_interfaces.as_deref())
}

/// The groups that the rules of the cluster's own groups name as peers, once those are read:
/// a source that reads groups by id reads these too (load-balancer SGs, eksctl's shared node SG
/// before any node carries it).
pub fn peer_ids(info: &ClusterInfo, meta: &ClusterMetadata, found: &HashMap<String, GroupRecord>) -> BTreeSet<String> {
    let node_groups = node_groups(info, meta, &mut Vec::new());
    peer_candidates(&roles_of(info, meta, &node_groups, found), found)
}

fn peer_candidates(roles: &BTreeMap<String, Origins>, found: &HashMap<String, GroupRecord>) -> BTreeSet<String> {
    roles
        .keys()
        .filter_map(|id| found.get(id))
        .flat_map(|g| g.peer_ids())
        .filter(|p| !roles.contains_key(*p))
        .map(str::to_string)
        .collect()
}

/// The evidence eksctl's CloudFormation leaves on `ClusterSharedNodeSecurityGroup` (eksctl
/// pkg/cfn/builder/cluster.go; reference §4.1–§4.2): its logical id (tag, `Name` tag or group
/// name) in the cluster stack `eksctl-<cluster>-cluster`, or eksctl's cluster tags.
fn is_eksctl_shared_node_group(cluster: &str, g: &GroupRecord) -> bool {
    const LOGICAL_ID: &str = "ClusterSharedNodeSecurityGroup";
    let stack = format!("eksctl-{cluster}-cluster");
    let tag = |k: &str| g.tags.get(k).map(String::as_str);
    let is_shared = tag("aws:cloudformation:logical-id") == Some(LOGICAL_ID)
        || tag("Name") == Some(format!("{stack}/{LOGICAL_ID}").as_str())
        || g.name.starts_with(&format!("{stack}-{LOGICAL_ID}-"));
    let of_cluster = tag("aws:cloudformation:stack-name") == Some(stack.as_str())
        || tag("alpha.eksctl.io/cluster-name") == Some(cluster)
        || tag("eksctl.cluster.k8s.io/v1alpha1/cluster-name") == Some(cluster)
        || g.name.starts_with(&format!("{stack}-"));
    is_shared && of_cluster
}

/// The roles of one group and where the first of them came from (for warnings).
type Origins = (BTreeSet<Role>, String);

/// Every group id the cluster uses, with its roles (design.md §1). The cluster SG and the
/// remote-access SGs keep their own role on the nodes they ride on; every other group on a node
/// is `node`. eksctl puts its SSH group (`<stack>-remoteAccess`) in the launch template: it is
/// remote access all the same.
fn roles_of(
    info: &ClusterInfo,
    meta: &ClusterMetadata,
    node_groups: &[AssembledGroup],
    found: &HashMap<String, GroupRecord>,
) -> BTreeMap<String, Origins> {
    let mut roles: BTreeMap<String, Origins> = BTreeMap::new();
    let mut assign = |id: &str, role: Role, origin: &dyn Fn() -> String| {
        roles.entry(id.to_string()).or_insert_with(|| (BTreeSet::new(), origin())).0.insert(role);
    };
    if let Some(id) = &info.cluster_security_group_id {
        assign(id, Role::Cluster, &|| "the cluster security group of DescribeCluster".into());
    }
    for id in &info.security_group_ids {
        assign(id, Role::ControlPlane, &|| "resourcesVpcConfig.securityGroupIds of DescribeCluster".into());
    }
    for ng in &meta.nodegroups {
        if let Some(id) = &ng.remote_access_security_group {
            assign(id, Role::RemoteAccess, &|| format!("the remote-access group of node group {}", ng.name));
        }
    }
    let remote_access: BTreeSet<&str> =
        meta.nodegroups.iter().filter_map(|ng| ng.remote_access_security_group.as_deref()).collect();
    let own_role = |id: &str| info.cluster_security_group_id.as_deref() == Some(id) || remote_access.contains(id);
    let ssh = |id: &str| found.get(id).is_some_and(|g| g.name.ends_with("-remoteAccess"));
    let on_nodes = |id: &str| if ssh(id) { Some(Role::RemoteAccess) } else { (!own_role(id)).then_some(Role::Node) };
    for ng in node_groups {
        for id in &ng.group.security_group_ids {
            if let Some(role) = on_nodes(id) {
                assign(id, role, &|| format!("a security group of node group {}", ng.group.name));
            }
        }
    }
    // What is really attached counts too, even where a launch template says otherwise.
    for i in cluster_instances(info, meta) {
        for id in &i.security_group_ids {
            if let Some(role) = on_nodes(id) {
                assign(id, role, &|| format!("a security group of instance {}", i.id));
            }
        }
    }
    for e in vpc_endpoints(info.vpc_id.as_deref(), meta.vpc_endpoints.as_deref()) {
        for id in &e.security_group_ids {
            assign(id, Role::Endpoint, &|| format!("the security group of VPC endpoint {} ({})", e.id, e.service_name));
        }
    }
    for set in pod_sets(info.vpc_id.as_deref(), meta.network_interfaces.as_deref()) {
        for id in &set {
            assign(id, Role::Pod, &|| "a security group of pods (a branch network interface)".into());
        }
    }
    roles
}

fn cluster_instances<'a>(info: &'a ClusterInfo, meta: &'a ClusterMetadata) -> impl Iterator<Item = &'a InstanceInfo> {
    meta.instances.iter().filter(|i| i.live && i.belongs_to(&info.name))
}

/// A node group being assembled, with the subnets its traffic leaves from and the distinct SG
/// sets of its instances' EFA interfaces.
struct AssembledGroup {
    group: NodeGroup,
    subnets: BTreeSet<String>,
    efa: Vec<Vec<String>>,
}

/// The SG sets of the cluster's nodes, managed node groups first (by name), then the groups of
/// instances no managed node group accounts for (self-managed, Karpenter NodePools).
fn node_groups(info: &ClusterInfo, meta: &ClusterMetadata, warnings: &mut Vec<String>) -> Vec<AssembledGroup> {
    let cluster_sg: Vec<String> = info.cluster_security_group_id.iter().cloned().collect();
    let live: Vec<&InstanceInfo> = cluster_instances(info, meta).collect();
    let mut managed: Vec<&NodegroupInfo> = meta.nodegroups.iter().collect();
    managed.sort_by(|a, b| a.name.cmp(&b.name));
    let of_managed = |i: &InstanceInfo, ng: &NodegroupInfo| {
        i.tags.get("eks:nodegroup-name") == Some(&ng.name)
            || i.tags.get("aws:autoscaling:groupName").is_some_and(|a| ng.auto_scaling_groups.contains(a))
    };

    let mut out = Vec::new();
    for ng in &managed {
        let members: Vec<&InstanceInfo> = live.iter().copied().filter(|i| of_managed(i, ng)).collect();
        let ids = managed_group_ids(ng, &cluster_sg, meta, &members, warnings);
        let mut group = assembled(ng.name.clone(), NodeGroupKind::Managed, ids, &members);
        group.subnets.extend(ng.subnets.iter().cloned());
        out.push(group);
    }
    out.extend(fargate_profiles(meta, &cluster_sg));

    let mut others: BTreeMap<(String, NodeGroupKind), Vec<&InstanceInfo>> = BTreeMap::new();
    for i in &live {
        let key = i.node_group();
        if managed.iter().any(|ng| (key.1 == NodeGroupKind::Managed && ng.name == key.0) || of_managed(i, ng)) {
            continue;
        }
        others.entry(key).or_default().push(i);
    }
    for ((name, kind), members) in others {
        if kind == NodeGroupKind::Managed {
            warnings.push(format!(
                "instances name managed node group {name}, which the node groups read do not list (DescribeNodegroup, describe-nodegroup-{name}.json): its security groups are read from its instances"
            ));
        }
        out.extend(exact_sets(name, kind, &members));
    }
    out.extend(custom_networking(&live));
    out
}

/// Fargate profiles that are not on their way out: their pods carry the cluster SG.
fn fargate_profiles(meta: &ClusterMetadata, cluster_sg: &[String]) -> Vec<AssembledGroup> {
    let mut profiles: Vec<&FargateProfileInfo> =
        meta.fargate_profiles.iter().filter(|p| !matches!(p.status.as_deref(), Some("DELETING"))).collect();
    profiles.sort_by(|a, b| a.name.cmp(&b.name));
    profiles
        .into_iter()
        .map(|p| {
            let mut group = assembled(p.name.clone(), NodeGroupKind::Fargate, cluster_sg.to_vec(), &[]);
            group.subnets = p.subnets.iter().cloned().collect();
            group
        })
        .collect()
}

/// One endpoint per distinct SG set of the nodes' secondary pod ENIs that differs from their
/// primary ENI's (custom networking: ENIConfig `securityGroups`), leaving from those ENIs'
/// subnets (ENIConfig `subnet`).
fn custom_networking(live: &[&InstanceInfo]) -> Vec<AssembledGroup> {
    let mut by_set: BTreeMap<Vec<String>, BTreeSet<String>> = BTreeMap::new();
    for i in live {
        for (set, subnet) in i.custom_network_sets() {
            by_set.entry(set).or_default().extend(subnet);
        }
    }
    by_set
        .into_iter()
        .map(|(set, subnets)| {
            let mut group =
                assembled(format!("ENIConfig {}", set.join("+")), NodeGroupKind::CustomNetworking, set, &[]);
            group.subnets = subnets;
            group
        })
        .collect()
}

/// One endpoint per distinct SG set among a group's instances (design.md §1): instances of one
/// Auto Scaling group or NodePool that carry different sets reach different things, and a union
/// of their sets would be a set no instance has. A group with one set keeps its plain name;
/// several sets are told apart by their groups.
fn exact_sets(name: String, kind: NodeGroupKind, members: &[&InstanceInfo]) -> Vec<AssembledGroup> {
    let mut by_set: BTreeMap<Vec<String>, Vec<&InstanceInfo>> = BTreeMap::new();
    for i in members {
        by_set.entry(i.primary_set()).or_default().push(i);
    }
    let split = by_set.len() > 1;
    by_set
        .into_iter()
        .map(|(set, members)| {
            let label = if split { format!("{name} [{}]", set.join("+")) } else { name.clone() };
            assembled(label, kind, set, &members)
        })
        .collect()
}

fn assembled(name: String, kind: NodeGroupKind, ids: Vec<String>, members: &[&InstanceInfo]) -> AssembledGroup {
    let efa: BTreeSet<Vec<String>> = members.iter().filter_map(|i| i.efa_set()).collect();
    AssembledGroup {
        group: NodeGroup {
            name,
            kind,
            security_group_ids: sorted(ids),
            route_out_v4: RouteOut::NoData,
            route_out_v6: RouteOut::NoData,
        },
        subnets: members.iter().filter_map(|i| i.subnet_id.clone()).collect(),
        efa: efa.into_iter().collect(),
    }
}

/// A managed group without a launch template gets the cluster SG plus its remote-access SG;
/// with one, the template's groups (the cluster SG only if the template lists none —
/// reference §1.6); with a template nobody could read, what its instances carry.
fn managed_group_ids(
    ng: &NodegroupInfo,
    cluster_sg: &[String],
    meta: &ClusterMetadata,
    members: &[&InstanceInfo],
    warnings: &mut Vec<String>,
) -> Vec<String> {
    let Some(lt) = &ng.launch_template else {
        return cluster_sg.iter().chain(ng.remote_access_security_group.iter()).cloned().collect();
    };
    match find_version(&meta.launch_templates, lt) {
        Some(v) if !v.security_group_ids.is_empty() => v.security_group_ids.clone(),
        Some(_) => cluster_sg.to_vec(),
        None => {
            let from_instances: Vec<String> =
                members.iter().flat_map(|i| i.security_group_ids.iter().cloned()).collect();
            let template = format!(
                "launch template {} version {} of node group {} is not known (DescribeLaunchTemplateVersions, describe-launch-template-versions.json)",
                lt.id.as_deref().or(lt.name.as_deref()).unwrap_or("(unnamed)"),
                lt.version.as_deref().unwrap_or("$Default"),
                ng.name
            );
            if from_instances.is_empty() {
                warnings.push(format!(
                    "{template} and none of its instances is known: assuming EKS's default, the cluster security group"
                ));
                cluster_sg.to_vec()
            } else {
                warnings.push(format!("{template}: its security groups are read from its instances"));
                from_instances
            }
        }
    }
}

/// The version of `lt` among those read: by number, `$Latest` (the highest) or `$Default`.
pub fn find_version<'a>(
    versions: &'a [LaunchTemplateVersionInfo],
    lt: &LaunchTemplateRef,
) -> Option<&'a LaunchTemplateVersionInfo> {
    let same_template = |v: &&LaunchTemplateVersionInfo| match (&lt.id, &lt.name) {
        (Some(id), _) => v.template_id.as_deref() == Some(id.as_str()),
        (None, Some(name)) => v.template_name.as_deref() == Some(name.as_str()),
        (None, None) => false,
    };
    let mut candidates = versions.iter().filter(same_template);
    match lt.version.as_deref() {
        Some("$Latest") => candidates.max_by_key(|v| v.version_number),
        None | Some("$Default") => candidates.find(|v| v.default_version),
        Some(n) => {
            let n: i64 = n.parse().ok()?;
            candidates.find(|v| v.version_number == n)
        }
    }
}

/// Where traffic to `0.0.0.0/0` (or `::/0`) goes from `subnets`: the worst subnet decides; a
/// subnet without an explicit association uses the VPC's main table.
fn route_out(vpc_id: &str, tables: Option<&[RouteTableInfo]>, subnets: &BTreeSet<String>, v6: bool) -> RouteOut {
    let Some(tables) = tables else { return RouteOut::NoData };
    let in_vpc = |t: &&RouteTableInfo| t.vpc_id.as_deref().is_none_or(|v| v == vpc_id);
    let main = tables.iter().filter(in_vpc).find(|t| t.main);
    subnets.iter().fold(RouteOut::NoData, |acc, subnet| {
        let table = tables.iter().filter(in_vpc).find(|t| t.subnet_ids.contains(subnet)).or(main);
        acc.worst(table.map_or(RouteOut::NoData, |t| default_route(t, v6)))
    })
}

fn default_route(table: &RouteTableInfo, v6: bool) -> RouteOut {
    let default = if v6 { IpNet::V6(Default::default()) } else { IpNet::V4(Default::default()) };
    let blackhole = |r: &RouteInfo| r.state.as_deref().is_some_and(|s| s.eq_ignore_ascii_case("blackhole"));
    let route = table.routes.iter().find(|r| r.destination == Some(default) && !blackhole(r));
    match route.map(|r| r.target.as_deref().unwrap_or_default()) {
        None => RouteOut::None,
        // NAT gateway, internet gateway, egress-only internet gateway (IPv6).
        Some(t) if t.starts_with("nat-") || t.starts_with("igw-") || t.starts_with("eigw-") => RouteOut::Internet,
        // Transit gateway, peering, virtual private gateway, an appliance's ENI, …: maybe.
        Some(_) => RouteOut::Indirect,
    }
}

/// The VPC's CIDRs (`vpc-cidr` in baselines), in API order, without blocks that no longer (or
/// not yet) admit traffic.
fn vpc_cidrs(vpc_id: &str, vpcs: Option<&[VpcInfo]>, warnings: &mut Vec<String>) -> Vec<IpNet> {
    let Some(vpcs) = vpcs else { return Vec::new() };
    let Some(vpc) = vpcs.iter().find(|v| v.id == vpc_id) else {
        warnings.push(format!("VPC {vpc_id} of the cluster does not exist: `vpc-cidr` peers cannot be resolved"));
        return Vec::new();
    };
    let live = |b: &&CidrBlock| !cidr_gone(b.state.as_deref());
    let primary = if vpc.ipv4.is_empty() { vpc.primary } else { None };
    let blocks = vpc.ipv4.iter().filter(live).chain(vpc.ipv6.iter().filter(live)).map(|b| b.cidr);
    let mut out: Vec<IpNet> = Vec::new();
    for net in primary.into_iter().chain(blocks) {
        if !out.contains(&net) {
            out.push(net);
        }
    }
    out
}

/// A CIDR that is leaving or never joined the VPC admits no traffic.
fn cidr_gone(state: Option<&str>) -> bool {
    matches!(state, Some("disassociated" | "disassociating" | "failed" | "failing"))
}

/// The interface and gateway endpoints of the VPC that exist; other kinds (load balancer,
/// resource) and endpoints on their way out are of no use to nodes.
fn vpc_endpoints(vpc_id: Option<&str>, endpoints: Option<&[VpcEndpointInfo]>) -> Vec<VpcEndpoint> {
    let gone = |e: &&VpcEndpointInfo| {
        let state = e.state.as_deref().map(str::to_ascii_lowercase);
        matches!(state.as_deref(), Some("deleting" | "deleted" | "failed" | "rejected" | "expired"))
    };
    let mut out: Vec<VpcEndpoint> = endpoints
        .unwrap_or_default()
        .iter()
        .filter(|e| e.vpc_id.is_none() || e.vpc_id.as_deref() == vpc_id)
        .filter(|e| !gone(e))
        .filter_map(|e| {
            let kind = match e.endpoint_type.as_str() {
                "Interface" => VpcEndpointKind::Interface,
                "Gateway" => VpcEndpointKind::Gateway,
                _ => return None,
            };
            Some(VpcEndpoint {
                id: e.id.clone(),
                service_name: e.service_name.clone(),
                kind,
                security_group_ids: sorted(e.security_group_ids.clone()),
                private_dns_enabled: kind == VpcEndpointKind::Interface && e.private_dns_enabled,
            })
        })
        .collect();
    out.sort_by(|a, b| a.service_name.cmp(&b.service_name).then_with(|| a.id.cmp(&b.id)));
    out
}

/// The description the VPC resource controller gives the branch ENIs it makes for pods (EKS
/// user guide, "Security groups for Pods").
pub const BRANCH_ENI_DESCRIPTION: &str = "aws-k8s-branch-eni";

/// The distinct SG sets of the VPC's branch ENIs (security groups for pods), each sorted. A
/// branch ENI says so in its type, and the controller's ones in their description too.
fn pod_sets(vpc_id: Option<&str>, interfaces: Option<&[NetworkInterfaceInfo]>) -> Vec<Vec<String>> {
    let sets: BTreeSet<Vec<String>> = interfaces
        .unwrap_or_default()
        .iter()
        .filter(|n| {
            n.interface_type.as_deref() == Some("branch") || n.description.as_deref() == Some(BRANCH_ENI_DESCRIPTION)
        })
        .filter(|n| n.vpc_id.is_none() || n.vpc_id.as_deref() == vpc_id)
        .map(|n| sorted(n.security_group_ids.clone()))
        .filter(|s| !s.is_empty())
        .collect();
    sets.into_iter().collect()
}

/// The VPC CNI's variable that picks the pod-SG enforcing mode (amazon-vpc-cni-k8s README,
/// "POD_SECURITY_GROUP_ENFORCING_MODE"; default `strict`).
const ENFORCING_MODE_VAR: &str = "POD_SECURITY_GROUP_ENFORCING_MODE";

/// The managed add-on's mode: what its `configurationValues` set in `env`, else the CNI's
/// default, `strict`. A self-managed CNI keeps its settings where sgdrift does not look.
fn enforcing_mode(addon: Option<&VpcCniAddon>, warnings: &mut Vec<String>) -> PodSgEnforcingMode {
    let Some(VpcCniAddon::Managed { configuration_values }) = addon else { return PodSgEnforcingMode::Unknown };
    let Some(text) = configuration_values.as_deref().filter(|t| !t.trim().is_empty()) else {
        return PodSgEnforcingMode::Strict;
    };
    match env_value(text, ENFORCING_MODE_VAR).as_deref() {
        None => PodSgEnforcingMode::Strict,
        Some("strict") => PodSgEnforcingMode::Strict,
        Some("standard") => PodSgEnforcingMode::Standard,
        Some(other) => {
            warnings.push(format!(
                "the vpc-cni add-on's configurationValues set {ENFORCING_MODE_VAR} to `{other}`, which is neither strict nor standard: the pod-SG enforcing mode is unknown"
            ));
            PodSgEnforcingMode::Unknown
        }
    }
}

/// `env.<name>` of add-on configuration values, given as JSON or as YAML (EKS takes both). The
/// YAML read is the block form the add-on schema uses (`env:` then indented `KEY: value`).
fn env_value(text: &str, name: &str) -> Option<String> {
    if let Ok(json) = serde_json::from_str::<serde_json::Value>(text) {
        return json.get("env")?.get(name).map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string));
    }
    let mut in_env = false;
    for line in text.lines() {
        let content = line.split(" #").next().unwrap_or_default().trim_end();
        if content.trim().is_empty() || content.trim_start().starts_with('#') {
            continue;
        }
        let indented = content.starts_with([' ', '\t']);
        if !indented {
            in_env = content.trim() == "env:";
            continue;
        }
        if let Some((key, value)) = content.trim().split_once(':') {
            if in_env && key.trim().trim_matches(['"', '\'']) == name {
                return Some(value.trim().trim_matches(['"', '\'']).to_string());
            }
        }
    }
    None
}

fn sorted(mut ids: Vec<String>) -> Vec<String> {
    ids.sort();
    ids.dedup();
    ids
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    fn tags(t: &[(&str, &str)]) -> BTreeMap<String, String> {
        t.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
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
            security_group_ids: s(&["sg-cp"]),
            tags: BTreeMap::new(),
            ip_family: IpFamily::Ipv4,
            auto_mode: false,
            remote_network: None,
        }
    }

    fn ng(name: &str, lt: Option<&str>, ra: Option<&str>, subnets: &[&str]) -> NodegroupInfo {
        NodegroupInfo {
            name: name.into(),
            launch_template: lt.map(|id| LaunchTemplateRef {
                id: Some(id.into()),
                name: None,
                version: Some("1".into()),
            }),
            remote_access_security_group: ra.map(str::to_string),
            auto_scaling_groups: vec![format!("eks-{name}")],
            subnets: s(subnets),
        }
    }

    fn version(id: &str, groups: &[&str]) -> LaunchTemplateVersionInfo {
        LaunchTemplateVersionInfo {
            template_id: Some(id.into()),
            template_name: None,
            version_number: 1,
            default_version: true,
            security_group_ids: s(groups),
        }
    }

    fn instance(id: &str, subnet: &str, groups: &[&str], t: &[(&str, &str)]) -> InstanceInfo {
        let mut t = tags(t);
        t.insert("kubernetes.io/cluster/prod".into(), "owned".into());
        InstanceInfo {
            id: id.into(),
            live: true,
            subnet_id: Some(subnet.into()),
            security_group_ids: s(groups),
            tags: t,
            interfaces: Vec::new(),
        }
    }

    fn record(id: &str, name: &str, t: &[(&str, &str)], rules: &[(&str, &str)]) -> GroupRecord {
        let rules = rules
            .iter()
            .map(|(dir, peer)| {
                Rule::new(Direction::parse(dir).unwrap(), crate::model::Traffic::All, Peer::parse(peer).unwrap())
            })
            .collect();
        GroupRecord {
            id: id.into(),
            name: name.into(),
            description: String::new(),
            owner_id: None,
            vpc_id: Some("vpc-1".into()),
            tags: tags(t),
            rules,
        }
    }

    fn batch(records: Vec<GroupRecord>) -> GroupBatch {
        GroupBatch { found: records.into_iter().map(|g| (g.id.clone(), g)).collect(), failed: HashMap::new() }
    }

    fn snapshot(info: &ClusterInfo, meta: &ClusterMetadata, groups: &GroupBatch) -> ClusterSnapshot {
        let id = ClusterId { account_id: "111122223333".into(), region: "eu-west-1".into(), name: info.name.clone() };
        let raw = RawCluster { id, info, metadata: meta, groups, prefix_lists: &BTreeMap::new(), warnings: Vec::new() };
        assemble(raw).expect("assembles")
    }

    fn roles(snap: &ClusterSnapshot, id: &str) -> Vec<Role> {
        snap.groups.get(id).map(|g| g.roles.iter().copied().collect()).unwrap_or_default()
    }

    fn all_groups(ids: &[&str]) -> GroupBatch {
        batch(ids.iter().map(|id| record(id, id, &[], &[])).collect())
    }

    #[test]
    fn node_group_sets_follow_the_launch_template_rules_and_roles_are_sets() {
        let meta = ClusterMetadata {
            nodegroups: vec![
                ng("plain", None, Some("sg-ra"), &[]),
                ng("lt", Some("lt-1"), None, &[]),
                ng("lt-empty", Some("lt-2"), None, &[]),
                ng("lt-gone", Some("lt-3"), None, &[]),
                ng("lt-gone-no-nodes", Some("lt-4"), None, &[]),
            ],
            launch_templates: vec![version("lt-1", &["sg-node", "sg-cp", "sg-ssh"]), version("lt-2", &[])],
            instances: vec![
                instance("i-1", "subnet-a", &["sg-self"], &[("alpha.eksctl.io/nodegroup-name", "ng-self")]),
                instance("i-2", "subnet-a", &["sg-node", "sg-extra"], &[("eks:nodegroup-name", "lt")]),
                instance("i-3", "subnet-a", &["sg-old"], &[("eks:nodegroup-name", "lt-gone")]),
                instance("i-4", "subnet-a", &["sg-asg"], &[("aws:autoscaling:groupName", "eks-plain")]),
                instance("i-5", "subnet-a", &["sg-bare"], &[]),
                instance("i-6", "subnet-a", &["sg-karpenter"], &[("karpenter.sh/nodepool", "default")]),
            ],
            ..ClusterMetadata::default()
        };
        let ids = [
            "sg-cluster",
            "sg-cp",
            "sg-ra",
            "sg-node",
            "sg-extra",
            "sg-self",
            "sg-old",
            "sg-asg",
            "sg-bare",
            "sg-karpenter",
        ];
        let mut groups = all_groups(&ids);
        groups.found.insert("sg-ssh".into(), record("sg-ssh", "eksctl-prod-nodegroup-ng-remoteAccess", &[], &[]));
        let snap = snapshot(&info(), &meta, &groups);
        let got: Vec<(&str, NodeGroupKind, Vec<String>)> =
            snap.node_groups.iter().map(|g| (g.name.as_str(), g.kind, g.security_group_ids.clone())).collect();
        assert_eq!(
            got,
            vec![
                ("lt", NodeGroupKind::Managed, s(&["sg-cp", "sg-node", "sg-ssh"])),
                ("lt-empty", NodeGroupKind::Managed, s(&["sg-cluster"])),
                ("lt-gone", NodeGroupKind::Managed, s(&["sg-old"])),
                ("lt-gone-no-nodes", NodeGroupKind::Managed, s(&["sg-cluster"])),
                ("plain", NodeGroupKind::Managed, s(&["sg-cluster", "sg-ra"])),
                ("default", NodeGroupKind::Karpenter, s(&["sg-karpenter"])),
                ("ng-self", NodeGroupKind::SelfManaged, s(&["sg-self"])),
                ("self-managed", NodeGroupKind::SelfManaged, s(&["sg-bare"])),
            ]
        );
        assert_eq!(snap.warnings.len(), 2, "{:?}", snap.warnings);
        let table: [(&str, &[Role]); 8] = [
            ("sg-cluster", &[Role::Cluster]),
            // A control-plane group that a launch template also puts on nodes holds both roles.
            ("sg-cp", &[Role::ControlPlane, Role::Node]),
            ("sg-node", &[Role::Node]),
            ("sg-ra", &[Role::RemoteAccess]),
            ("sg-ssh", &[Role::RemoteAccess]),
            ("sg-self", &[Role::Node]),
            ("sg-extra", &[Role::Node]),
            ("sg-karpenter", &[Role::Node]),
        ];
        for (id, want) in table {
            assert_eq!(roles(&snap, id), want, "{id}");
        }
    }

    fn rules_record(id: &str, rules: &[&str]) -> GroupRecord {
        let mut g = record(id, id, &[], &[]);
        g.rules = rules.iter().map(|r| crate::flows::fixtures::rule(r)).collect();
        g
    }

    /// Karpenter puts `karpenter.sh/nodepool` on every node it launches, and each NodePool's
    /// EC2NodeClass picks its own security groups (karpenter.sh docs, EC2NodeClass
    /// `securityGroupSelectorTerms`): two pools are two endpoints, never one with the union.
    #[test]
    fn two_nodepools_with_different_sets_are_two_endpoints_and_a_flow_can_be_open_for_one_only() {
        let pool = |id: &str, pool: &str, groups: &[&str]| {
            instance(id, "subnet-a", groups, &[("karpenter.sh/nodepool", pool), ("aws:autoscaling:groupName", "x")])
        };
        let meta = ClusterMetadata {
            instances: vec![
                pool("i-1", "general", &["sg-general"]),
                pool("i-2", "general", &["sg-general"]),
                pool("i-3", "gpu", &["sg-gpu"]),
                // One pool whose nodes carry two different sets: two endpoints of that pool.
                pool("i-4", "mixed", &["sg-general"]),
                pool("i-5", "mixed", &["sg-general", "sg-gpu"]),
            ],
            vpcs: Some(vec![VpcInfo {
                id: "vpc-1".into(),
                primary: "10.0.0.0/16".parse().ok(),
                ipv4: vec![],
                ipv6: vec![],
            }]),
            ..ClusterMetadata::default()
        };
        let cluster = rules_record("sg-cluster", &["ingress all from sg-cluster", "egress all to 0.0.0.0/0"]);
        let cp = rules_record("sg-cp", &[]);
        // The general pool admits the control plane's kubelet calls; the GPU pool does not.
        let general = rules_record("sg-general", &["ingress tcp 10250 from sg-cluster", "egress all to 0.0.0.0/0"]);
        let gpu = rules_record("sg-gpu", &["ingress tcp 443 from sg-cluster", "egress all to 0.0.0.0/0"]);
        let snap = snapshot(&info(), &meta, &batch(vec![cluster, cp, general, gpu]));
        let got: Vec<(&str, NodeGroupKind, Vec<String>)> =
            snap.node_groups.iter().map(|g| (g.name.as_str(), g.kind, g.security_group_ids.clone())).collect();
        assert_eq!(
            got,
            vec![
                ("general", NodeGroupKind::Karpenter, s(&["sg-general"])),
                ("gpu", NodeGroupKind::Karpenter, s(&["sg-gpu"])),
                ("mixed [sg-general]", NodeGroupKind::Karpenter, s(&["sg-general"])),
                ("mixed [sg-general+sg-gpu]", NodeGroupKind::Karpenter, s(&["sg-general", "sg-gpu"])),
            ]
        );
        let flows = crate::flows::check(&snap, &crate::flows::FlowContext::default());
        let kubelet = |ng: &str| {
            flows
                .iter()
                .find(|f| f.name == crate::model::FlowName::Kubelet && f.node_group.as_deref() == Some(ng))
                .unwrap_or_else(|| panic!("no kubelet flow for {ng}"))
        };
        use crate::flows::FlowStatus::{Closed, Open};
        assert_eq!(kubelet("general").status, Open, "{}", kubelet("general").detail);
        assert_eq!(kubelet("gpu").status, Closed);
        assert_eq!(
            kubelet("gpu").detail,
            "sg-gpu (node) of NodePool gpu has no ingress tcp 10250 from the control plane"
        );
        assert_eq!(kubelet("mixed [sg-general]").status, Open);
        assert_eq!(kubelet("mixed [sg-general+sg-gpu]").status, Open, "the set that holds sg-general admits it");
    }

    fn nic(index: i32, kind: &str, subnet: &str, groups: &[&str]) -> InstanceInterfaceInfo {
        InstanceInterfaceInfo {
            device_index: Some(index),
            interface_type: Some(kind.into()),
            subnet_id: Some(subnet.into()),
            security_group_ids: s(groups),
        }
    }

    #[test]
    fn fargate_profiles_efa_interfaces_and_secondary_enis_with_other_sgs_become_endpoints() {
        let mut efa = instance("i-1", "subnet-a", &["sg-node", "sg-efa"], &[("karpenter.sh/nodepool", "training")]);
        efa.interfaces =
            vec![nic(0, "efa", "subnet-a", &["sg-node", "sg-efa"]), nic(1, "efa", "subnet-a", &["sg-node", "sg-efa"])];
        // Custom networking: the primary ENI in the node subnet, pods' ENIs in a pod subnet.
        let mut cn = instance("i-2", "subnet-a", &["sg-node", "sg-pods"], &[("aws:autoscaling:groupName", "workers")]);
        cn.interfaces =
            vec![nic(0, "interface", "subnet-a", &["sg-node"]), nic(1, "interface", "subnet-pods", &["sg-pods"])];
        // The VPC CNI's usual secondary ENIs carry the primary's SGs; a trunk ENI is no pod ENI.
        let mut plain = instance("i-3", "subnet-a", &["sg-node"], &[("aws:autoscaling:groupName", "workers")]);
        plain.interfaces = vec![
            nic(0, "interface", "subnet-a", &["sg-node"]),
            nic(1, "interface", "subnet-a", &["sg-node"]),
            nic(2, "trunk", "subnet-a", &["sg-trunk"]),
        ];
        let fargate = |name: &str, status: &str| FargateProfileInfo {
            name: name.into(),
            status: Some(status.into()),
            subnets: s(&["subnet-f"]),
        };
        let meta = ClusterMetadata {
            instances: vec![efa, cn, plain],
            fargate_profiles: vec![
                fargate("fp-b", "ACTIVE"),
                fargate("fp-a", "CREATING"),
                fargate("fp-gone", "DELETING"),
            ],
            ..ClusterMetadata::default()
        };
        let snap =
            snapshot(&info(), &meta, &all_groups(&["sg-cluster", "sg-cp", "sg-node", "sg-efa", "sg-pods", "sg-trunk"]));
        let got: Vec<(&str, NodeGroupKind, Vec<String>)> =
            snap.node_groups.iter().map(|g| (g.name.as_str(), g.kind, g.security_group_ids.clone())).collect();
        assert_eq!(
            got,
            vec![
                ("fp-a", NodeGroupKind::Fargate, s(&["sg-cluster"])),
                ("fp-b", NodeGroupKind::Fargate, s(&["sg-cluster"])),
                ("training", NodeGroupKind::Karpenter, s(&["sg-efa", "sg-node"])),
                // One set per group: the primary ENIs of i-2 and i-3 carry the same one.
                ("workers", NodeGroupKind::SelfManaged, s(&["sg-node"])),
                ("ENIConfig sg-pods", NodeGroupKind::CustomNetworking, s(&["sg-pods"])),
            ]
        );
        assert_eq!(
            snap.data_plane.efa,
            vec![EfaSet { node_group: "training".into(), security_group_ids: s(&["sg-efa", "sg-node"]) }]
        );
        assert_eq!(snap.data_plane.pod_sg_enforcing_mode, PodSgEnforcingMode::Unknown, "no add-on read");
    }

    #[test]
    fn the_enforcing_mode_is_read_from_json_or_yaml_configuration_values_and_defaults_to_strict() {
        use PodSgEnforcingMode::{Standard, Strict, Unknown};
        let managed = |v: Option<&str>| Some(VpcCniAddon::Managed { configuration_values: v.map(str::to_string) });
        let cases: [(&str, Option<VpcCniAddon>, PodSgEnforcingMode, usize); 9] = [
            ("not read", None, Unknown, 0),
            ("self-managed", Some(VpcCniAddon::SelfManaged), Unknown, 0),
            ("no configuration", managed(None), Strict, 0),
            ("empty configuration", managed(Some("  ")), Strict, 0),
            ("JSON", managed(Some(r#"{"env":{"POD_SECURITY_GROUP_ENFORCING_MODE":"standard"}}"#)), Standard, 0),
            ("JSON without the variable", managed(Some(r#"{"env":{"ENABLE_POD_ENI":"true"}}"#)), Strict, 0),
            (
                "YAML with comments and quotes",
                managed(Some("# from the console\nenableNetworkPolicy: \"true\"\nenv:\n  ENABLE_POD_ENI: \"true\"\n  POD_SECURITY_GROUP_ENFORCING_MODE: 'standard' # probes\n")),
                Standard,
                0,
            ),
            ("YAML: the name outside env", managed(Some("init:\n  POD_SECURITY_GROUP_ENFORCING_MODE: standard\n")), Strict, 0),
            ("a value the CNI does not know", managed(Some(r#"{"env":{"POD_SECURITY_GROUP_ENFORCING_MODE":"loose"}}"#)), Unknown, 1),
        ];
        for (case, addon, want, warned) in cases {
            let mut warnings = Vec::new();
            assert_eq!(enforcing_mode(addon.as_ref(), &mut warnings), want, "{case}");
            assert_eq!(warnings.len(), warned, "{case}: {warnings:?}");
        }
    }

    /// eksctl's cluster stack (pkg/cfn/builder/cluster.go): the shared node SG and its rules with
    /// the cluster SG, whatever carries it.
    fn eksctl_shared(name: &str, logical: &str) -> GroupRecord {
        let stack = "eksctl-prod-cluster";
        record(
            "sg-shared",
            name,
            &[
                ("aws:cloudformation:logical-id", logical),
                ("aws:cloudformation:stack-name", stack),
                ("alpha.eksctl.io/cluster-name", "prod"),
            ],
            &[("ingress", "sg-shared"), ("ingress", "sg-cluster")],
        )
    }

    #[test]
    fn eksctls_shared_node_group_is_a_node_group_on_nodes_or_not_and_also_an_endpoint_group() {
        let cluster_sg =
            record("sg-cluster", "eks-cluster-sg-prod-1", &[], &[("ingress", "sg-cluster"), ("ingress", "sg-shared")]);
        let endpoint = |sg: &str| VpcEndpointInfo {
            id: "vpce-1".into(),
            vpc_id: Some("vpc-1".into()),
            service_name: "com.amazonaws.eu-west-1.ec2".into(),
            endpoint_type: "Interface".into(),
            state: Some("available".into()),
            security_group_ids: s(&[sg]),
            private_dns_enabled: true,
        };
        let unmanaged = instance("i-1", "subnet-a", &["sg-shared"], &[("alpha.eksctl.io/nodegroup-name", "ng-1")]);
        let shared =
            eksctl_shared("eksctl-prod-cluster-ClusterSharedNodeSecurityGroup-1", "ClusterSharedNodeSecurityGroup");
        let impostor = eksctl_shared("eksctl-prod-cluster-Other-1", "SomethingElse");
        let table: [(&str, ClusterMetadata, GroupRecord, &[Role], bool); 4] = [
            (
                "managed-only: a peer of the cluster SG",
                ClusterMetadata::default(),
                shared.clone(),
                &[Role::Node],
                false,
            ),
            (
                "unmanaged nodes carry it",
                ClusterMetadata { instances: vec![unmanaged], ..ClusterMetadata::default() },
                shared.clone(),
                &[Role::Node],
                false,
            ),
            (
                "fully private: on every interface endpoint",
                ClusterMetadata { vpc_endpoints: Some(vec![endpoint("sg-shared")]), ..ClusterMetadata::default() },
                shared,
                &[Role::Node, Role::Endpoint],
                false,
            ),
            ("another group of the stack stays a peer", ClusterMetadata::default(), impostor, &[], true),
        ];
        for (case, meta, group, want, peer) in table {
            let snap =
                snapshot(&info(), &meta, &batch(vec![cluster_sg.clone(), group, record("sg-cp", "cp", &[], &[])]));
            assert_eq!(roles(&snap, "sg-shared"), want, "{case}");
            assert_eq!(snap.peer_groups.contains_key("sg-shared"), peer, "{case}");
        }
    }

    #[test]
    fn peers_that_hold_no_role_are_kept_as_evidence_and_other_accounts_are_not() {
        let cluster_sg = record(
            "sg-cluster",
            "eks-cluster-sg-prod-1",
            &[],
            &[("ingress", "sg-lb"), ("ingress", "444455556666/sg-other"), ("ingress", "sg-cluster")],
        );
        let lb = record("sg-lb", "k8s-traffic-prod", &[("elbv2.k8s.aws/cluster", "prod")], &[]);
        let found = batch(vec![cluster_sg, lb, record("sg-cp", "cp", &[], &[])]);
        assert_eq!(peer_ids(&info(), &ClusterMetadata::default(), &found.found), BTreeSet::from(["sg-lb".to_string()]));
        let snap = snapshot(&info(), &ClusterMetadata::default(), &found);
        let lb = &snap.peer_groups["sg-lb"];
        assert_eq!(
            (lb.name.as_str(), lb.tags.get("elbv2.k8s.aws/cluster").map(String::as_str)),
            ("k8s-traffic-prod", Some("prod"))
        );
        assert_eq!(snap.peer_groups.len(), 1);
        assert!(!snap.groups.contains_key("sg-lb"));
    }

    fn table_of(id: &str, main: bool, subnets: &[&str], routes: &[(&str, &str)]) -> RouteTableInfo {
        RouteTableInfo {
            id: id.into(),
            vpc_id: Some("vpc-1".into()),
            main,
            subnet_ids: s(subnets),
            routes: routes
                .iter()
                .map(|(dest, target)| RouteInfo {
                    destination: dest.parse().ok(),
                    target: Some(target.to_string()),
                    state: None,
                })
                .collect(),
        }
    }

    #[test]
    fn a_node_groups_way_out_is_the_worst_of_its_subnets_route_tables() {
        let local = ("10.0.0.0/16", "local");
        let nat = table_of("rtb-nat", false, &["subnet-nat"], &[local, ("0.0.0.0/0", "nat-1"), ("::/0", "eigw-1")]);
        let tgw = table_of("rtb-tgw", false, &["subnet-tgw"], &[local, ("0.0.0.0/0", "tgw-1")]);
        let main = table_of("rtb-main", true, &[], &[local]);
        let tables = Some(vec![nat, tgw, main]);
        let cases: [(&str, Option<Vec<RouteTableInfo>>, &[&str], RouteOut, RouteOut); 6] = [
            ("NAT subnets", tables.clone(), &["subnet-nat"], RouteOut::Internet, RouteOut::Internet),
            ("a transit gateway only", tables.clone(), &["subnet-tgw"], RouteOut::Indirect, RouteOut::None),
            (
                "no explicit association: the main table",
                tables.clone(),
                &["subnet-other"],
                RouteOut::None,
                RouteOut::None,
            ),
            (
                "the worst subnet decides",
                tables.clone(),
                &["subnet-nat", "subnet-tgw"],
                RouteOut::Indirect,
                RouteOut::None,
            ),
            ("no route tables read", None, &["subnet-nat"], RouteOut::NoData, RouteOut::NoData),
            ("no subnet known", tables, &[], RouteOut::NoData, RouteOut::NoData),
        ];
        for (case, route_tables, subnets, v4, v6) in cases {
            let meta = ClusterMetadata {
                nodegroups: vec![ng("ng", None, None, subnets)],
                route_tables,
                ..ClusterMetadata::default()
            };
            let snap = snapshot(&info(), &meta, &all_groups(&["sg-cluster", "sg-cp"]));
            let g = &snap.node_groups[0];
            assert_eq!((g.route_out_v4, g.route_out_v6), (v4, v6), "{case}");
        }
        let blackhole = RouteTableInfo {
            routes: vec![RouteInfo {
                destination: "0.0.0.0/0".parse().ok(),
                target: Some("nat-1".into()),
                state: Some("blackhole".into()),
            }],
            ..table_of("rtb-b", true, &[], &[])
        };
        assert_eq!(default_route(&blackhole, false), RouteOut::None, "a blackholed NAT route leads nowhere");
    }

    #[test]
    fn branch_interfaces_give_pod_groups_and_their_distinct_sets() {
        let eni = |id: &str, kind: &str, vpc: &str, groups: &[&str]| NetworkInterfaceInfo {
            id: id.into(),
            interface_type: Some(kind.into()),
            description: (id == "eni-6").then(|| BRANCH_ENI_DESCRIPTION.to_string()),
            vpc_id: Some(vpc.into()),
            security_group_ids: s(groups),
        };
        let meta = ClusterMetadata {
            network_interfaces: Some(vec![
                eni("eni-1", "branch", "vpc-1", &["sg-pod", "sg-cluster"]),
                eni("eni-2", "branch", "vpc-1", &["sg-cluster", "sg-pod"]),
                eni("eni-3", "branch", "vpc-1", &["sg-pod-b"]),
                eni("eni-4", "interface", "vpc-1", &["sg-trunk"]),
                eni("eni-5", "branch", "vpc-2", &["sg-elsewhere"]),
                // Typed `interface` by an answer that knows no other type, named by the controller.
                eni("eni-6", "interface", "vpc-1", &["sg-pod-b"]),
            ]),
            ..ClusterMetadata::default()
        };
        let snap = snapshot(&info(), &meta, &all_groups(&["sg-cluster", "sg-cp", "sg-pod", "sg-pod-b", "sg-trunk"]));
        assert_eq!(snap.pod_security_group_sets, vec![s(&["sg-cluster", "sg-pod"]), s(&["sg-pod-b"])]);
        assert_eq!(roles(&snap, "sg-pod"), [Role::Pod]);
        assert_eq!(roles(&snap, "sg-cluster"), [Role::Cluster, Role::Pod]);
        assert!(!snap.groups.contains_key("sg-trunk") && !snap.groups.contains_key("sg-elsewhere"));
    }

    #[test]
    fn the_cluster_config_gives_style_ip_family_and_remote_networks() {
        let remote = RemoteNetwork {
            node_cidrs: vec!["10.80.0.0/16".parse().unwrap()],
            pod_cidrs: vec!["10.85.0.0/16".parse().unwrap()],
        };
        let auto =
            ClusterInfo { auto_mode: true, ip_family: IpFamily::Ipv6, remote_network: Some(remote.clone()), ..info() };
        let snap = snapshot(&auto, &ClusterMetadata::default(), &all_groups(&["sg-cluster", "sg-cp"]));
        assert_eq!((snap.style, snap.ip_family, snap.remote_network), (Style::AutoMode, IpFamily::Ipv6, Some(remote)));
        let plain = snapshot(&info(), &ClusterMetadata::default(), &all_groups(&["sg-cluster", "sg-cp"]));
        assert_eq!((plain.ip_family, plain.remote_network), (IpFamily::Ipv4, None));
    }

    #[test]
    fn vpc_cidrs_skip_blocks_that_left_and_a_missing_vpc_is_a_warning() {
        let block =
            |c: &str, state: Option<&str>| CidrBlock { cidr: c.parse().unwrap(), state: state.map(str::to_string) };
        let vpc = VpcInfo {
            id: "vpc-1".into(),
            primary: "10.0.0.0/16".parse().ok(),
            ipv4: vec![block("10.0.0.0/16", Some("associated")), block("10.1.0.0/16", Some("disassociated"))],
            ipv6: vec![block("2600:1f18::/56", None)],
        };
        let mut warnings = Vec::new();
        let got: Vec<String> = vpc_cidrs("vpc-1", Some(&[vpc]), &mut warnings).iter().map(|n| n.to_string()).collect();
        assert_eq!(got, s(&["10.0.0.0/16", "2600:1f18::/56"]));
        assert!(vpc_cidrs("vpc-1", Some(&[]), &mut warnings).is_empty());
        assert!(vpc_cidrs("vpc-1", None, &mut warnings).is_empty());
        assert_eq!(warnings.len(), 1, "only a VPC that was looked up and not found is reported: {warnings:?}");
    }

    #[test]
    fn only_live_interface_and_gateway_endpoints_of_the_vpc_count() {
        let e = |id: &str, kind: &str, state: &str, vpc: &str| VpcEndpointInfo {
            id: id.into(),
            vpc_id: Some(vpc.into()),
            service_name: format!("com.amazonaws.eu-west-1.{id}"),
            endpoint_type: kind.into(),
            state: Some(state.into()),
            security_group_ids: s(&["sg-9"]),
            private_dns_enabled: true,
        };
        let all = [
            e("ec2", "Interface", "available", "vpc-1"),
            e("s3", "Gateway", "Available", "vpc-1"),
            e("gwlb", "GatewayLoadBalancer", "available", "vpc-1"),
            e("sts", "Interface", "deleted", "vpc-1"),
            e("logs", "Interface", "available", "vpc-2"),
        ];
        let got: Vec<(String, VpcEndpointKind, bool)> = vpc_endpoints(Some("vpc-1"), Some(&all))
            .into_iter()
            .map(|v| (v.id, v.kind, v.private_dns_enabled))
            .collect();
        assert_eq!(
            got,
            vec![
                ("ec2".to_string(), VpcEndpointKind::Interface, true),
                ("s3".to_string(), VpcEndpointKind::Gateway, false)
            ]
        );
    }
}
