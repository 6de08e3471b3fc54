//! The `files` source: a directory per cluster of JSON exactly as the AWS CLI prints it.
//!
//! Layout of `dir/<any name>/`: `describe-cluster.json` and `describe-security-groups.json`
//! (required); `describe-nodegroup-<name>.json`, `describe-launch-template-versions.json`,
//! `describe-vpc-endpoints.json`, `describe-instances.json`, `describe-vpcs.json`,
//! `describe-prefix-lists.json`, `describe-managed-prefix-lists.json` (optional). Each file is
//! the unedited `--output json` of the command named in [`KNOWN_FILES`].

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use serde::de::DeserializeOwned;

use super::{style, ClusterPoll, SourceError, TargetPoll, TargetSpec};
use crate::model::{
    canonicalize, normalize, ClusterId, ClusterSnapshot, Direction, EndpointMode, IpFamily, NodeGroup, NodeGroupKind,
    RawPeer, RawPermission, Role, RouteOut, SecurityGroup, VpcEndpoint, VpcEndpointKind,
};

const CLUSTER_FILE: &str = "describe-cluster.json";
const GROUPS_FILE: &str = "describe-security-groups.json";
const NODEGROUP_PREFIX: &str = "describe-nodegroup-";
const LAUNCH_TEMPLATES_FILE: &str = "describe-launch-template-versions.json";
const ENDPOINTS_FILE: &str = "describe-vpc-endpoints.json";
const INSTANCES_FILE: &str = "describe-instances.json";
const VPCS_FILE: &str = "describe-vpcs.json";
const PREFIX_LISTS_FILE: &str = "describe-prefix-lists.json";
const MANAGED_PREFIX_LISTS_FILE: &str = "describe-managed-prefix-lists.json";

/// Each file and the command whose output it holds (`<c>`: cluster, `<vpc>`: its VPC).
pub const KNOWN_FILES: [(&str, &str); 9] = [
    (CLUSTER_FILE, "aws eks describe-cluster --name <c> --output json"),
    (GROUPS_FILE, "aws ec2 describe-security-groups --filters Name=vpc-id,Values=<vpc> --output json"),
    (
        "describe-nodegroup-<ng>.json",
        "aws eks describe-nodegroup --cluster-name <c> --nodegroup-name <ng> --output json",
    ),
    (
        LAUNCH_TEMPLATES_FILE,
        "aws ec2 describe-launch-template-versions --launch-template-id <lt> --versions <v> --output json",
    ),
    (ENDPOINTS_FILE, "aws ec2 describe-vpc-endpoints --filters Name=vpc-id,Values=<vpc> --output json"),
    (INSTANCES_FILE, "aws ec2 describe-instances --filters Name=vpc-id,Values=<vpc> --output json"),
    (VPCS_FILE, "aws ec2 describe-vpcs --vpc-ids <vpc> --output json"),
    (PREFIX_LISTS_FILE, "aws ec2 describe-prefix-lists --output json"),
    (MANAGED_PREFIX_LISTS_FILE, "aws ec2 describe-managed-prefix-lists --output json"),
];

/// The command that writes `file`, with the cluster name and VPC filled in where known.
fn command_for(file: &str, cluster: &str, vpc: Option<&str>) -> String {
    let nodegroup = file.strip_prefix(NODEGROUP_PREFIX).and_then(|f| f.strip_suffix(".json"));
    let key = if nodegroup.is_some() { "describe-nodegroup-<ng>.json" } else { file };
    let template = KNOWN_FILES.iter().find(|(f, _)| *f == key).map_or("the AWS CLI with --output json", |(_, c)| c);
    let mut command = template.replace("<c>", cluster);
    if let Some(ng) = nodegroup {
        command = command.replace("<ng>", ng);
    }
    if let Some(vpc) = vpc {
        command = command.replace("<vpc>", vpc);
    }
    command
}

pub struct FilesSource {
    pub dir: PathBuf,
}

impl FilesSource {
    pub fn new(dir: PathBuf) -> Self {
        FilesSource { dir }
    }

    /// Reads every cluster directory whose cluster `target` wants and whose ARN is in the
    /// target's region. A broken directory fails that cluster only.
    pub fn poll(&self, target: &TargetSpec) -> TargetPoll {
        let dirs = match cluster_dirs(&self.dir) {
            Ok(d) => d,
            Err(e) => return TargetPoll { clusters: Vec::new(), error: Some((target.region.clone(), e)) },
        };
        let clusters = dirs.iter().filter_map(|d| load_cluster(d, target)).collect();
        TargetPoll { clusters, error: None }
    }
}

/// The sub-directories of `dir`, sorted, hidden ones skipped.
fn cluster_dirs(dir: &Path) -> Result<Vec<PathBuf>, SourceError> {
    let entries = std::fs::read_dir(dir).map_err(|e| {
        SourceError::Input(format!(
            "{}: cannot read the files source directory ({e}); it should hold one directory of AWS CLI JSON per cluster",
            dir.display()
        ))
    })?;
    let mut dirs: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()) && !e.file_name().to_string_lossy().starts_with('.'))
        .map(|e| e.path())
        .collect();
    dirs.sort();
    Ok(dirs)
}

/// One cluster directory → a poll, or `None` when the target does not want it.
fn load_cluster(dir: &Path, target: &TargetSpec) -> Option<ClusterPoll> {
    let dir_name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let path = pick(dir, CLUSTER_FILE, "cluster");
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) => {
            // Without describe-cluster.json the cluster's region is unknown: report it in every
            // region that asks, under the directory's name.
            let message = if e.kind() == std::io::ErrorKind::NotFound {
                format!(
                    "{}: missing; this required file holds the output of `{}`",
                    path.display(),
                    command_for(CLUSTER_FILE, &dir_name, None)
                )
            } else {
                format!("{}: cannot read: {e}", path.display())
            };
            return target
                .wants(&dir_name)
                .then(|| ClusterPoll { id: unknown_id(&dir_name, target), result: Err(SourceError::Input(message)) });
        }
    };
    let described: Result<DescribeCluster, SourceError> =
        parse_json(&path, &text, &command_for(CLUSTER_FILE, &dir_name, None));
    let (id, result) = match described {
        Ok(d) => match ClusterArn::parse(&d.cluster.arn) {
            Ok(arn) => {
                let id = ClusterId { account_id: arn.account, region: arn.region, name: d.cluster.name.clone() };
                if id.region != target.region || !target.wants(&id.name) {
                    return None;
                }
                let result = build(dir, &id, &d.cluster);
                (id, result)
            }
            Err(what) => {
                let (line, column) = locate(&text, &d.cluster.arn).unwrap_or((1, 1));
                let message = format!("{}:{line}:{column}: {what}", path.display());
                if !target.wants(&d.cluster.name) {
                    return None;
                }
                (unknown_id(&d.cluster.name, target), Err(SourceError::Input(message)))
            }
        },
        Err(e) => {
            // The JSON is broken, but the ARN is usually still legible: use it to report the
            // error once, in the cluster's own region.
            let id = sniff_arn(&text)
                .map(|arn| ClusterId { account_id: arn.account, region: arn.region, name: arn.name })
                .unwrap_or_else(|| unknown_id(&dir_name, target));
            if id.region != target.region || !target.wants(&id.name) {
                return None;
            }
            (id, Err(e))
        }
    };
    Some(ClusterPoll { id, result })
}

fn unknown_id(name: &str, target: &TargetSpec) -> ClusterId {
    ClusterId { account_id: "unknown".into(), region: target.region.clone(), name: name.to_string() }
}

/// `arn:<partition>:eks:<region>:<account>:cluster/<name>`.
struct ClusterArn {
    region: String,
    account: String,
    name: String,
}

impl ClusterArn {
    fn parse(arn: &str) -> Result<Self, String> {
        let parts: Vec<&str> = arn.splitn(6, ':').collect();
        match parts.as_slice() {
            ["arn", _, "eks", region, account, resource]
                if !region.is_empty() && account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit()) =>
            {
                match resource.strip_prefix("cluster/") {
                    Some(name) if !name.is_empty() => Ok(ClusterArn {
                        region: region.to_string(),
                        account: account.to_string(),
                        name: name.to_string(),
                    }),
                    _ => Err(format!("cluster arn `{arn}` does not end in cluster/<name>")),
                }
            }
            _ => Err(format!(
                "cluster arn `{arn}` is not of the form arn:aws:eks:<region>:<12-digit account>:cluster/<name>"
            )),
        }
    }
}

/// The first EKS cluster ARN in `text`, for a file too broken to parse.
fn sniff_arn(text: &str) -> Option<ClusterArn> {
    text.match_indices("arn:").find_map(|(start, _)| {
        let rest = &text[start..];
        let end = rest.find(|c: char| c == '"' || c.is_whitespace()).unwrap_or(rest.len());
        ClusterArn::parse(&rest[..end]).ok()
    })
}

/// Parses `text` (the contents of `path`) into the CLI shape `T`; errors name file, line and
/// column and the command whose output the file should hold.
fn parse_json<T: DeserializeOwned>(path: &Path, text: &str, command: &str) -> Result<T, SourceError> {
    serde_json::from_str(text).map_err(|e| {
        let (line, column) = (e.line(), e.column());
        let full = e.to_string();
        let what = full.strip_suffix(&format!(" at line {line} column {column}")).unwrap_or(&full);
        SourceError::Input(format!(
            "{}:{line}:{column}: {what} (the file should hold the output of `{command}`)",
            path.display()
        ))
    })
}

/// Reads and parses an optional file: `Ok(None)` when it does not exist.
fn read_optional<T: DeserializeOwned>(path: &Path, cluster: &str, vpc: &str) -> Result<Option<T>, SourceError> {
    let file = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    match std::fs::read_to_string(path) {
        Ok(text) => parse_json(path, &text, &command_for(&file, cluster, Some(vpc))).map(Some),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(SourceError::Input(format!("{}: cannot read: {e}", path.display()))),
    }
}

/// 1-based line and column of the first occurrence of `needle` in `text`.
fn locate(text: &str, needle: &str) -> Option<(usize, usize)> {
    let offset = text.find(needle)?;
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    Some((line, column))
}

/// Files of a cluster directory that hold the output of a command under another name
/// (`describe-nodegroup.json`, `sgs.json`, `ng-spot.json`, …), recognised by the top-level key
/// the AWS CLI prints (`cluster`, `SecurityGroups`, `nodegroup`, …). Canonical names are read by
/// name; a file that is not JSON is left to them.
fn by_content(dir: &Path, key: &str) -> Vec<PathBuf> {
    let canonical = |name: &str| {
        KNOWN_FILES.iter().any(|(f, _)| *f == name) || (name.starts_with(NODEGROUP_PREFIX) && name.ends_with(".json"))
    };
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut found: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.ends_with(".json") && !canonical(n))
        })
        .filter(|p| {
            std::fs::read_to_string(p)
                .ok()
                .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
                .is_some_and(|v| v.get(key).is_some())
        })
        .collect();
    found.sort();
    found
}

/// `dir/canonical` when it exists, else the first file holding `key` under another name.
fn pick(dir: &Path, canonical: &str, key: &str) -> PathBuf {
    let path = dir.join(canonical);
    if path.exists() {
        return path;
    }
    by_content(dir, key).into_iter().next().unwrap_or(path)
}

/// Everything the optional files say, as plain data.
#[derive(Default)]
struct Extras {
    nodegroups: Vec<Nodegroup>,
    launch_templates: Vec<LaunchTemplateVersion>,
    endpoints: Option<Vec<VpcEndpointJson>>,
    instances: Vec<Instance>,
    vpcs: Vec<Vpc>,
    prefix_lists: BTreeMap<String, String>,
}

fn read_extras(dir: &Path, cluster: &str, vpc: &str) -> Result<Extras, SourceError> {
    let mut extras = Extras::default();
    let mut nodegroup_files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| SourceError::Input(format!("{}: cannot list the cluster directory: {e}", dir.display())))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(NODEGROUP_PREFIX) && n.ends_with(".json"))
        })
        .collect();
    nodegroup_files.extend(by_content(dir, "nodegroup"));
    nodegroup_files.sort();
    for path in nodegroup_files {
        if let Some(d) = read_optional::<DescribeNodegroup>(&path, cluster, vpc)? {
            extras.nodegroups.push(d.nodegroup);
        }
    }
    extras.nodegroups.sort_by(|a, b| a.nodegroup_name.cmp(&b.nodegroup_name));
    if let Some(d) = read_optional::<DescribeLaunchTemplateVersions>(&pick(dir, LAUNCH_TEMPLATES_FILE, "LaunchTemplateVersions"), cluster, vpc)? {
        extras.launch_templates = d.launch_template_versions;
    }
    extras.endpoints =
        read_optional::<DescribeVpcEndpoints>(&pick(dir, ENDPOINTS_FILE, "VpcEndpoints"), cluster, vpc)?.map(|d| d.vpc_endpoints);
    if let Some(d) = read_optional::<DescribeInstances>(&pick(dir, INSTANCES_FILE, "Reservations"), cluster, vpc)? {
        extras.instances = d.reservations.into_iter().flat_map(|r| r.instances).collect();
    }
    if let Some(d) = read_optional::<DescribeVpcs>(&pick(dir, VPCS_FILE, "Vpcs"), cluster, vpc)? {
        extras.vpcs = d.vpcs;
    }
    let other_prefix_lists = by_content(dir, "PrefixLists");
    let prefix_list_files = [PREFIX_LISTS_FILE, MANAGED_PREFIX_LISTS_FILE].map(|f| dir.join(f));
    for path in prefix_list_files.iter().chain(other_prefix_lists.iter()) {
        if let Some(d) = read_optional::<DescribePrefixLists>(path, cluster, vpc)? {
            for pl in d.prefix_lists {
                if let (Some(id), Some(name)) = (pl.prefix_list_id, pl.prefix_list_name) {
                    extras.prefix_lists.insert(id, name);
                }
            }
        }
    }
    Ok(extras)
}

/// Collects group ids per role; the first role a group gets is the one it keeps, and the calls
/// are made in the precedence order cluster, control-plane, remote-access, node, endpoint.
#[derive(Default)]
struct Roles {
    role: BTreeMap<String, Role>,
    /// Where each group was first referenced, for warnings.
    origin: BTreeMap<String, String>,
}

impl Roles {
    fn assign(&mut self, id: &str, role: Role, origin: impl FnOnce() -> String) {
        if !self.role.contains_key(id) {
            self.role.insert(id.to_string(), role);
            self.origin.insert(id.to_string(), origin());
        }
    }
}

/// One cluster's snapshot from its directory, `describe-cluster.json` already parsed.
fn build(dir: &Path, id: &ClusterId, cluster: &Cluster) -> Result<ClusterSnapshot, SourceError> {
    let groups_path = pick(dir, GROUPS_FILE, "SecurityGroups");
    let vpc = &cluster.resources_vpc_config;
    let groups_text = match std::fs::read_to_string(&groups_path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(SourceError::Input(format!(
                "{}: missing; this required file holds the output of `{}`",
                groups_path.display(),
                command_for(GROUPS_FILE, &id.name, Some(&vpc.vpc_id))
            )))
        }
        Err(e) => return Err(SourceError::Input(format!("{}: cannot read: {e}", groups_path.display()))),
    };
    let described: DescribeSecurityGroups =
        parse_json(&groups_path, &groups_text, &command_for(GROUPS_FILE, &id.name, Some(&vpc.vpc_id)))?;
    let extras = read_extras(dir, &id.name, &vpc.vpc_id)?;
    let mut warnings = Vec::new();
    let name = &id.name;

    let mut roles = Roles::default();
    if let Some(sg) = &vpc.cluster_security_group_id {
        roles.assign(sg, Role::Cluster, || "the cluster security group of describe-cluster".into());
    }
    for sg in &vpc.security_group_ids {
        roles.assign(sg, Role::ControlPlane, || "resourcesVpcConfig.securityGroupIds of describe-cluster".into());
    }
    for ng in &extras.nodegroups {
        if let Some(sg) = ng.resources.as_ref().and_then(|r| r.remote_access_security_group.as_deref()) {
            roles.assign(sg, Role::RemoteAccess, || {
                format!("the remote-access group of node group {}", ng.nodegroup_name)
            });
        }
    }

    let node_groups = node_groups(name, cluster, &extras, &mut warnings);
    let by_id: BTreeMap<&str, &SecurityGroupJson> =
        described.security_groups.iter().map(|g| (g.group_id.as_str(), g)).collect();
    for ng in &node_groups {
        for sg in &ng.security_group_ids {
            // eksctl puts its SSH group (`<stack>-remoteAccess`) in the launch template.
            let ssh = by_id.get(sg.as_str()).is_some_and(|g| g.group_name.ends_with("-remoteAccess"));
            let role = if ssh { Role::RemoteAccess } else { Role::Node };
            roles.assign(sg, role, || format!("a security group of node group {}", ng.name));
        }
    }
    // What is really attached counts too, even where a launch template says otherwise.
    for inst in extras.instances.iter().filter(|i| i.is_live() && i.belongs_to(name)) {
        for sg in inst.group_ids() {
            roles.assign(&sg, Role::Node, || format!("a security group of instance {}", inst.instance_id));
        }
    }

    let vpc_endpoints = vpc_endpoints(&vpc.vpc_id, extras.endpoints.as_deref());
    for ep in &vpc_endpoints {
        for sg in &ep.security_group_ids {
            roles.assign(sg, Role::Endpoint, || {
                format!("the security group of VPC endpoint {} ({})", ep.id, ep.service_name)
            });
        }
    }
    let endpoint_mode = EndpointMode::from_access(vpc.endpoint_public_access, vpc.endpoint_private_access);
    if endpoint_mode == EndpointMode::Private && extras.endpoints.is_none() {
        warnings.push(format!(
            "{ENDPOINTS_FILE} is absent: the VPC endpoints of this private cluster (and their security groups) are unknown"
        ));
    }

    let mut groups = BTreeMap::new();
    for (sg, role) in &roles.role {
        let Some(raw) = by_id.get(sg.as_str()) else {
            warnings.push(format!(
                "security group {sg} ({role}, {}) is not in {GROUPS_FILE}: it was deleted or the export missed it, so its rules are unknown",
                roles.origin.get(sg).map_or("", String::as_str)
            ));
            continue;
        };
        let group = convert_group(raw, *role).map_err(|what| {
            let (line, column) = locate(&groups_text, &format!("\"{sg}\"")).unwrap_or((1, 1));
            SourceError::Input(format!("{}:{line}:{column}: security group {sg}: {what}", groups_path.display()))
        })?;
        groups.insert(sg.clone(), group);
    }

    let vpc_cidrs = vpc_cidrs(&vpc.vpc_id, &extras.vpcs)
        .map_err(|what| SourceError::Input(format!("{}: {what}", dir.join(VPCS_FILE).display())))?;
    let style = style::detect(name, &cluster.tags, groups.values());

    Ok(ClusterSnapshot {
        id: id.clone(),
        endpoint_mode,
        public_access_cidrs: vpc.public_access_cidrs.clone(),
        style,
        ip_family: IpFamily::Ipv4,
        remote_network: None,
        vpc_id: vpc.vpc_id.clone(),
        vpc_cidrs,
        cluster_security_group_id: vpc.cluster_security_group_id.clone(),
        control_plane_security_group_ids: vpc.security_group_ids.clone(),
        groups,
        node_groups,
        vpc_endpoints,
        pod_security_group_sets: Vec::new(),
        peer_groups: BTreeMap::new(),
        prefix_lists: extras.prefix_lists,
        warnings,
    })
}

/// Managed node groups first (by name), then self-managed ones found through their instances.
fn node_groups(cluster: &str, c: &Cluster, extras: &Extras, warnings: &mut Vec<String>) -> Vec<NodeGroup> {
    let cluster_sg: Vec<String> = c.resources_vpc_config.cluster_security_group_id.iter().cloned().collect();
    let live: Vec<&Instance> = extras.instances.iter().filter(|i| i.is_live() && i.belongs_to(cluster)).collect();
    let mut out = Vec::new();
    let mut managed_names = BTreeSet::new();
    let mut managed_asgs = BTreeSet::new();

    for ng in &extras.nodegroups {
        managed_names.insert(ng.nodegroup_name.clone());
        let resources = ng.resources.as_ref();
        managed_asgs
            .extend(resources.into_iter().flat_map(|r| r.auto_scaling_groups.iter().filter_map(|a| a.name.clone())));
        let sgs = match &ng.launch_template {
            None => {
                let mut sgs = cluster_sg.clone();
                sgs.extend(resources.and_then(|r| r.remote_access_security_group.clone()));
                sgs
            }
            Some(lt) => match find_version(&extras.launch_templates, lt) {
                Some(version) => {
                    let listed = version.group_ids();
                    // EKS adds the cluster SG only when the template lists none (reference §1.6).
                    if listed.is_empty() {
                        cluster_sg.clone()
                    } else {
                        listed
                    }
                }
                None => {
                    let from_instances =
                        union_of(live.iter().copied().filter(|i| i.nodegroup_key().0 == ng.nodegroup_name));
                    let template = format!(
                        "launch template {} version {} of node group {} is not in {LAUNCH_TEMPLATES_FILE}",
                        lt.id.as_deref().or(lt.name.as_deref()).unwrap_or("(unnamed)"),
                        lt.version.as_deref().unwrap_or("$Default"),
                        ng.nodegroup_name,
                    );
                    warnings.push(if from_instances.is_empty() {
                        format!("{template} and no instance of the group is in {INSTANCES_FILE}: assuming EKS's default, the cluster security group")
                    } else {
                        format!("{template}: its security groups are read from its instances")
                    });
                    if from_instances.is_empty() {
                        cluster_sg.clone()
                    } else {
                        from_instances
                    }
                }
            },
        };
        out.push(NodeGroup {
            name: ng.nodegroup_name.clone(),
            kind: NodeGroupKind::Managed,
            security_group_ids: dedup(sgs),
            route_out_v4: RouteOut::NoData,
            route_out_v6: RouteOut::NoData,
        });
    }

    let mut others: BTreeMap<(String, NodeGroupKind), Vec<&Instance>> = BTreeMap::new();
    for inst in &live {
        let (key, managed_tag) = inst.nodegroup_key();
        if managed_names.contains(&key)
            || inst.tag("aws:autoscaling:groupName").is_some_and(|a| managed_asgs.contains(a))
        {
            continue;
        }
        let kind = if managed_tag { NodeGroupKind::Managed } else { NodeGroupKind::SelfManaged };
        others.entry((key, kind)).or_default().push(inst);
    }
    for ((name, kind), instances) in others {
        if kind == NodeGroupKind::Managed {
            warnings.push(format!(
                "{NODEGROUP_PREFIX}{name}.json is absent: the security groups of managed node group {name} are read from its instances"
            ));
        }
        out.push(NodeGroup {
            name,
            kind,
            security_group_ids: union_of(instances.into_iter()),
            route_out_v4: RouteOut::NoData,
            route_out_v6: RouteOut::NoData,
        });
    }
    out
}

fn find_version<'a>(
    versions: &'a [LaunchTemplateVersion],
    lt: &LaunchTemplateSpec,
) -> Option<&'a LaunchTemplateVersion> {
    let same_template = |v: &&LaunchTemplateVersion| match (&lt.id, &lt.name) {
        (Some(id), _) => v.launch_template_id.as_deref() == Some(id.as_str()),
        (None, Some(name)) => v.launch_template_name.as_deref() == Some(name.as_str()),
        (None, None) => false,
    };
    let candidates = versions.iter().filter(same_template);
    match lt.version.as_deref() {
        Some("$Latest") => candidates.max_by_key(|v| v.version_number),
        None | Some("$Default") => candidates.into_iter().find(|v| v.default_version),
        Some(n) => {
            let n: i64 = n.parse().ok()?;
            candidates.into_iter().find(|v| v.version_number == n)
        }
    }
}

fn union_of<'a>(instances: impl Iterator<Item = &'a Instance>) -> Vec<String> {
    dedup(instances.flat_map(|i| i.group_ids()).collect())
}

/// Removes repeats, keeping the first occurrence's position.
fn dedup(ids: Vec<String>) -> Vec<String> {
    let mut seen = BTreeSet::new();
    ids.into_iter().filter(|id| seen.insert(id.clone())).collect()
}

fn vpc_endpoints(vpc_id: &str, endpoints: Option<&[VpcEndpointJson]>) -> Vec<VpcEndpoint> {
    let mut out: Vec<VpcEndpoint> = endpoints
        .unwrap_or_default()
        .iter()
        .filter(|e| e.vpc_id.as_deref() == Some(vpc_id))
        .filter(|e| !matches!(e.state.as_deref(), Some("deleting" | "deleted" | "failed" | "rejected" | "expired")))
        .filter_map(|e| {
            let kind = match e.vpc_endpoint_type.as_deref() {
                Some("Interface") => VpcEndpointKind::Interface,
                Some("Gateway") => VpcEndpointKind::Gateway,
                _ => return None,
            };
            Some(VpcEndpoint {
                id: e.vpc_endpoint_id.clone(),
                service_name: e.service_name.clone(),
                kind,
                security_group_ids: dedup(e.groups.iter().map(|g| g.group_id.clone()).collect()),
                private_dns_enabled: e.private_dns_enabled.unwrap_or(false),
            })
        })
        .collect();
    out.sort_by(|a, b| a.service_name.cmp(&b.service_name).then_with(|| a.id.cmp(&b.id)));
    out
}

fn vpc_cidrs(vpc_id: &str, vpcs: &[Vpc]) -> Result<Vec<IpNet>, String> {
    let Some(vpc) = vpcs.iter().find(|v| v.vpc_id == vpc_id) else {
        return Ok(Vec::new());
    };
    let associated =
        |state: &Option<CidrState>| state.as_ref().is_none_or(|s| s.state.as_deref() == Some("associated"));
    let mut texts: Vec<&str> = vpc
        .cidr_block_association_set
        .iter()
        .filter(|a| associated(&a.cidr_block_state))
        .filter_map(|a| a.cidr_block.as_deref())
        .collect();
    if texts.is_empty() {
        texts.extend(vpc.cidr_block.as_deref());
    }
    texts.extend(
        vpc.ipv6_cidr_block_association_set
            .iter()
            .filter(|a| associated(&a.ipv6_cidr_block_state))
            .filter_map(|a| a.ipv6_cidr_block.as_deref()),
    );
    let mut out = Vec::new();
    for t in texts {
        let net: IpNet = t.parse().map_err(|_| format!("VPC {vpc_id} has CIDR `{t}`, which is not a CIDR"))?;
        if !out.contains(&net) {
            out.push(net);
        }
    }
    Ok(out)
}

fn convert_group(g: &SecurityGroupJson, role: Role) -> Result<SecurityGroup, String> {
    let owner = g.owner_id.as_deref();
    let raw = |perms: &[IpPermission]| perms.iter().map(IpPermission::to_raw).collect::<Vec<_>>();
    let mut rules =
        normalize(Direction::Ingress, &raw(&g.ip_permissions), owner).map_err(|e| format!("IpPermissions: {e}"))?;
    rules.extend(
        normalize(Direction::Egress, &raw(&g.ip_permissions_egress), owner)
            .map_err(|e| format!("IpPermissionsEgress: {e}"))?,
    );
    let rules = canonicalize(rules);
    Ok(SecurityGroup {
        id: g.group_id.clone(),
        name: g.group_name.clone(),
        description: g.description.clone(),
        owner_id: g.owner_id.clone(),
        vpc_id: g.vpc_id.clone(),
        tags: tag_map(&g.tags),
        roles: [role].into(),
        rules,
    })
}

fn tag_map(tags: &[Tag]) -> BTreeMap<String, String> {
    tags.iter().map(|t| (t.key.clone(), t.value.clone())).collect()
}

// ---------------------------------------------------------------------------------------------
// The AWS CLI's JSON, field for field where sgdrift reads it; every other field is ignored.
// EKS speaks camelCase, EC2 PascalCase.

#[derive(serde::Deserialize)]
struct DescribeCluster {
    cluster: Cluster,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Cluster {
    name: String,
    arn: String,
    resources_vpc_config: VpcConfig,
    #[serde(default)]
    tags: BTreeMap<String, String>,
}

fn yes() -> bool {
    true
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct VpcConfig {
    vpc_id: String,
    cluster_security_group_id: Option<String>,
    #[serde(default)]
    security_group_ids: Vec<String>,
    /// EKS's defaults when absent: public on, private off.
    #[serde(default = "yes")]
    endpoint_public_access: bool,
    #[serde(default)]
    endpoint_private_access: bool,
    #[serde(default)]
    public_access_cidrs: Vec<String>,
}

#[derive(serde::Deserialize)]
struct DescribeNodegroup {
    nodegroup: Nodegroup,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Nodegroup {
    nodegroup_name: String,
    launch_template: Option<LaunchTemplateSpec>,
    resources: Option<NodegroupResources>,
}

#[derive(serde::Deserialize)]
struct LaunchTemplateSpec {
    name: Option<String>,
    version: Option<String>,
    id: Option<String>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct NodegroupResources {
    #[serde(default)]
    auto_scaling_groups: Vec<AutoScalingGroup>,
    remote_access_security_group: Option<String>,
}

#[derive(serde::Deserialize)]
struct AutoScalingGroup {
    name: Option<String>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DescribeSecurityGroups {
    security_groups: Vec<SecurityGroupJson>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SecurityGroupJson {
    group_id: String,
    #[serde(default)]
    group_name: String,
    #[serde(default)]
    description: String,
    owner_id: Option<String>,
    vpc_id: Option<String>,
    #[serde(default)]
    ip_permissions: Vec<IpPermission>,
    #[serde(default)]
    ip_permissions_egress: Vec<IpPermission>,
    #[serde(default)]
    tags: Vec<Tag>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct IpPermission {
    ip_protocol: String,
    from_port: Option<i32>,
    to_port: Option<i32>,
    #[serde(default)]
    ip_ranges: Vec<IpRange>,
    #[serde(default)]
    ipv6_ranges: Vec<Ipv6Range>,
    #[serde(default)]
    prefix_list_ids: Vec<PrefixListId>,
    #[serde(default)]
    user_id_group_pairs: Vec<UserIdGroupPair>,
}

impl IpPermission {
    fn to_raw(&self) -> RawPermission {
        let mut peers = Vec::new();
        peers.extend(
            self.ip_ranges
                .iter()
                .map(|r| RawPeer::Ipv4 { cidr: r.cidr_ip.clone(), description: r.description.clone() }),
        );
        peers.extend(
            self.ipv6_ranges
                .iter()
                .map(|r| RawPeer::Ipv6 { cidr: r.cidr_ipv6.clone(), description: r.description.clone() }),
        );
        peers.extend(
            self.prefix_list_ids
                .iter()
                .map(|p| RawPeer::PrefixList { id: p.prefix_list_id.clone(), description: p.description.clone() }),
        );
        peers.extend(self.user_id_group_pairs.iter().map(|p| RawPeer::Group {
            group_id: p.group_id.clone(),
            user_id: p.user_id.clone(),
            description: p.description.clone(),
        }));
        RawPermission { ip_protocol: self.ip_protocol.clone(), from_port: self.from_port, to_port: self.to_port, peers }
    }
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct IpRange {
    cidr_ip: String,
    description: Option<String>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Ipv6Range {
    cidr_ipv6: String,
    description: Option<String>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PrefixListId {
    prefix_list_id: String,
    description: Option<String>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct UserIdGroupPair {
    group_id: String,
    user_id: Option<String>,
    description: Option<String>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Tag {
    key: String,
    #[serde(default)]
    value: String,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DescribeLaunchTemplateVersions {
    launch_template_versions: Vec<LaunchTemplateVersion>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct LaunchTemplateVersion {
    launch_template_id: Option<String>,
    launch_template_name: Option<String>,
    version_number: i64,
    #[serde(default)]
    default_version: bool,
    #[serde(default)]
    launch_template_data: LaunchTemplateData,
}

impl LaunchTemplateVersion {
    /// `SecurityGroupIds` or the groups of the network interfaces (a template has one or the other).
    fn group_ids(&self) -> Vec<String> {
        let data = &self.launch_template_data;
        let mut ids = data.security_group_ids.clone();
        ids.extend(data.network_interfaces.iter().flat_map(|n| n.groups.iter().cloned()));
        dedup(ids)
    }
}

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct LaunchTemplateData {
    #[serde(default)]
    security_group_ids: Vec<String>,
    #[serde(default)]
    network_interfaces: Vec<LaunchTemplateInterface>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct LaunchTemplateInterface {
    #[serde(default)]
    groups: Vec<String>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DescribeVpcEndpoints {
    vpc_endpoints: Vec<VpcEndpointJson>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct VpcEndpointJson {
    vpc_endpoint_id: String,
    vpc_endpoint_type: Option<String>,
    vpc_id: Option<String>,
    service_name: String,
    state: Option<String>,
    private_dns_enabled: Option<bool>,
    #[serde(default)]
    groups: Vec<GroupIdentifier>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct GroupIdentifier {
    group_id: String,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DescribeInstances {
    #[serde(default)]
    reservations: Vec<Reservation>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Reservation {
    #[serde(default)]
    instances: Vec<Instance>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Instance {
    instance_id: String,
    state: Option<InstanceState>,
    #[serde(default)]
    security_groups: Vec<GroupIdentifier>,
    #[serde(default)]
    network_interfaces: Vec<InstanceInterface>,
    #[serde(default)]
    tags: Vec<Tag>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct InstanceState {
    name: Option<String>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct InstanceInterface {
    #[serde(default)]
    groups: Vec<GroupIdentifier>,
}

impl Instance {
    fn tag(&self, key: &str) -> Option<&str> {
        self.tags.iter().find(|t| t.key == key).map(|t| t.value.as_str())
    }

    fn is_live(&self) -> bool {
        !matches!(self.state.as_ref().and_then(|s| s.name.as_deref()), Some("terminated" | "shutting-down"))
    }

    /// Tagged as a node of `cluster` by EKS, eksctl, the AWS node template or terraform-aws-eks.
    fn belongs_to(&self, cluster: &str) -> bool {
        let owner_key = format!("kubernetes.io/cluster/{cluster}");
        self.tags.iter().any(|t| t.key == owner_key)
            || self.tag("eks:cluster-name") == Some(cluster)
            || self.tag("alpha.eksctl.io/cluster-name") == Some(cluster)
    }

    /// The node group the instance belongs to, and whether EKS manages it (`eks:nodegroup-name`
    /// is set by EKS on managed nodes only).
    fn nodegroup_key(&self) -> (String, bool) {
        if let Some(ng) = self.tag("eks:nodegroup-name") {
            return (ng.to_string(), true);
        }
        let name = self
            .tag("alpha.eksctl.io/nodegroup-name")
            .or_else(|| self.tag("aws:autoscaling:groupName"))
            .unwrap_or("self-managed");
        (name.to_string(), false)
    }

    /// The groups of the primary interface and of every other attached interface.
    fn group_ids(&self) -> Vec<String> {
        let primary = self.security_groups.iter().map(|g| g.group_id.clone());
        let others = self.network_interfaces.iter().flat_map(|n| n.groups.iter().map(|g| g.group_id.clone()));
        dedup(primary.chain(others).collect())
    }
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DescribeVpcs {
    #[serde(default)]
    vpcs: Vec<Vpc>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Vpc {
    vpc_id: String,
    cidr_block: Option<String>,
    #[serde(default)]
    cidr_block_association_set: Vec<CidrAssociation>,
    #[serde(default)]
    ipv6_cidr_block_association_set: Vec<Ipv6CidrAssociation>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CidrAssociation {
    cidr_block: Option<String>,
    cidr_block_state: Option<CidrState>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Ipv6CidrAssociation {
    ipv6_cidr_block: Option<String>,
    ipv6_cidr_block_state: Option<CidrState>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CidrState {
    state: Option<String>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DescribePrefixLists {
    #[serde(default)]
    prefix_lists: Vec<PrefixListJson>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PrefixListJson {
    prefix_list_id: Option<String>,
    prefix_list_name: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_arns_give_region_account_and_name() {
        let cases = [
            ("arn:aws:eks:eu-west-1:111122223333:cluster/prod", Some(("eu-west-1", "111122223333", "prod"))),
            ("arn:aws-cn:eks:cn-north-1:111122223333:cluster/a-b", Some(("cn-north-1", "111122223333", "a-b"))),
            ("arn:aws:eks:eu-west-1:111122223333:nodegroup/prod/ng/6ec3", None),
            ("arn:aws:iam::111122223333:role/prod", None),
            ("arn:aws:eks:eu-west-1:1111:cluster/prod", None),
            ("arn:aws:eks:eu-west-1:111122223333:cluster/", None),
            ("prod", None),
        ];
        for (arn, want) in cases {
            let got = ClusterArn::parse(arn).ok();
            let got = got.as_ref().map(|a| (a.region.as_str(), a.account.as_str(), a.name.as_str()));
            assert_eq!(got, want, "{arn}");
        }
    }

    #[test]
    fn a_truncated_describe_cluster_still_yields_its_arn() {
        let text = r#"{"cluster": {"name": "prod", "roleArn": "arn:aws:iam::111122223333:role/x",
            "arn": "arn:aws:eks:us-east-1:111122223333:cluster/prod", "resourcesVpc"#;
        let arn = sniff_arn(text).expect("an arn");
        assert_eq!((arn.region.as_str(), arn.name.as_str()), ("us-east-1", "prod"));
        assert!(sniff_arn(r#"{"cluster": {"name": "prod", "#).is_none());
    }

    #[test]
    fn commands_name_the_cluster_vpc_and_node_group() {
        let cases = [
            (CLUSTER_FILE, None, "aws eks describe-cluster --name prod --output json"),
            (
                GROUPS_FILE,
                Some("vpc-0c4e2a9b7d5f3e1a8"),
                "aws ec2 describe-security-groups --filters Name=vpc-id,Values=vpc-0c4e2a9b7d5f3e1a8 --output json",
            ),
            (
                "describe-nodegroup-ng-1.json",
                Some("vpc-0c4e2a9b7d5f3e1a8"),
                "aws eks describe-nodegroup --cluster-name prod --nodegroup-name ng-1 --output json",
            ),
        ];
        for (file, vpc, want) in cases {
            assert_eq!(command_for(file, "prod", vpc), want);
        }
    }
}
