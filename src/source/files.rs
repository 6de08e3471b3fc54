//! The `files` source: a directory per cluster of JSON exactly as the AWS CLI prints it.
//!
//! Layout of `dir/<any name>/`: `describe-cluster.json` and `describe-security-groups.json`
//! (required); `describe-nodegroup-<name>.json`, `describe-launch-template-versions.json`,
//! `describe-vpc-endpoints.json`, `describe-instances.json`, `describe-vpcs.json`,
//! `describe-route-tables.json`, `describe-network-interfaces.json`,
//! `describe-prefix-lists.json`, `describe-managed-prefix-lists.json`,
//! `describe-fargate-profile-<name>.json`, `describe-addon-vpc-cni.json` (optional). Each file is
//! the unedited `--output json` of the command named in [`KNOWN_FILES`]; each shape converts
//! into the raw shapes of `assemble`, which makes the snapshot as for the `aws` source.

use std::borrow::Cow;
use std::cell::OnceCell;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use serde::de::{DeserializeOwned, IgnoredAny};

use super::assemble::{
    self, CidrBlock, ClusterInfo, ClusterMetadata, FargateProfileInfo, GroupBatch, GroupRecord, InstanceInfo,
    InstanceInterfaceInfo, LaunchTemplateRef, LaunchTemplateVersionInfo, NetworkInterfaceInfo, NodegroupInfo,
    RawCluster, RouteInfo, RouteTableInfo, VpcCniAddon, VpcEndpointInfo, VpcInfo,
};
use super::{convert, ClusterPoll, SourceError, TargetPoll, TargetSpec};
use crate::model::{ClusterId, ClusterSnapshot, IpFamily, RawPeer, RawPermission, RemoteNetwork};

const CLUSTER_FILE: &str = "describe-cluster.json";
const GROUPS_FILE: &str = "describe-security-groups.json";
const NODEGROUP_PREFIX: &str = "describe-nodegroup-";
const LAUNCH_TEMPLATES_FILE: &str = "describe-launch-template-versions.json";
const ENDPOINTS_FILE: &str = "describe-vpc-endpoints.json";
const INSTANCES_FILE: &str = "describe-instances.json";
const VPCS_FILE: &str = "describe-vpcs.json";
const PREFIX_LISTS_FILE: &str = "describe-prefix-lists.json";
const MANAGED_PREFIX_LISTS_FILE: &str = "describe-managed-prefix-lists.json";
const ROUTE_TABLES_FILE: &str = "describe-route-tables.json";
const INTERFACES_FILE: &str = "describe-network-interfaces.json";
const FARGATE_PREFIX: &str = "describe-fargate-profile-";
const ADDON_FILE: &str = "describe-addon-vpc-cni.json";

/// Each file and the command whose output it holds (`<c>`: cluster, `<vpc>`: its VPC).
pub const KNOWN_FILES: [(&str, &str); 13] = [
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
    (ROUTE_TABLES_FILE, "aws ec2 describe-route-tables --filters Name=vpc-id,Values=<vpc> --output json"),
    (
        INTERFACES_FILE,
        "aws ec2 describe-network-interfaces --filters Name=vpc-id,Values=<vpc> Name=interface-type,Values=branch --output json",
    ),
    (
        "describe-fargate-profile-<fp>.json",
        "aws eks describe-fargate-profile --cluster-name <c> --fargate-profile-name <fp> --output json",
    ),
    (ADDON_FILE, "aws eks describe-addon --cluster-name <c> --addon-name vpc-cni --output json"),
];

/// The command that writes `file`, with the cluster name and VPC filled in where known.
fn command_for(file: &str, cluster: &str, vpc: Option<&str>) -> String {
    let nodegroup = file.strip_prefix(NODEGROUP_PREFIX).and_then(|f| f.strip_suffix(".json"));
    let profile = file.strip_prefix(FARGATE_PREFIX).and_then(|f| f.strip_suffix(".json"));
    let key = match (nodegroup, profile) {
        (Some(_), _) => "describe-nodegroup-<ng>.json",
        (_, Some(_)) => "describe-fargate-profile-<fp>.json",
        _ => file,
    };
    let template = KNOWN_FILES.iter().find(|(f, _)| *f == key).map_or("the AWS CLI with --output json", |(_, c)| c);
    let mut command = template.replace("<c>", cluster);
    if let Some(ng) = nodegroup {
        command = command.replace("<ng>", ng);
    }
    if let Some(fp) = profile {
        command = command.replace("<fp>", fp);
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
    let dir = &ClusterDir::new(dir);
    let path = dir.pick(CLUSTER_FILE, "cluster");
    let text = match dir.read(&path) {
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
                let result = build(dir, &id, d.cluster);
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
fn read_optional<T: DeserializeOwned>(
    dir: &ClusterDir,
    path: &Path,
    cluster: &str,
    vpc: &str,
) -> Result<Option<T>, SourceError> {
    let file = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    match dir.read(path) {
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

/// One cluster directory. Listing it, and reading the JSON files that hold a command's output
/// under another name (`describe-nodegroup.json`, `sgs.json`, `ng-spot.json`, …), happens at
/// most once, when first needed: those files are recognised by the top-level key the AWS CLI
/// prints (`cluster`, `SecurityGroups`, `nodegroup`, …), and each is parsed from the text read
/// then. Canonical names are read by name; a file that is not JSON is left to them.
struct ClusterDir<'a> {
    path: &'a Path,
    listing: OnceCell<Result<Listing, String>>,
}

struct Listing {
    /// The directory's files, sorted.
    files: Vec<PathBuf>,
    /// The JSON files under names of their own, sorted: text and top-level keys.
    others: Vec<(PathBuf, String, BTreeSet<String>)>,
}

impl<'a> ClusterDir<'a> {
    fn new(path: &'a Path) -> Self {
        ClusterDir { path, listing: OnceCell::new() }
    }

    fn listing(&self) -> Result<&Listing, &str> {
        self.listing.get_or_init(|| list(self.path)).as_ref().map_err(String::as_str)
    }

    /// The text of `path`: as read while listing, or from the disk.
    fn read(&self, path: &Path) -> std::io::Result<Cow<'_, str>> {
        let listed = self.listing.get().and_then(|l| l.as_ref().ok());
        match listed.and_then(|l| l.others.iter().find(|(p, _, _)| p == path)) {
            Some((_, text, _)) => Ok(Cow::Borrowed(text)),
            None => std::fs::read_to_string(path).map(Cow::Owned),
        }
    }

    /// The files holding `key` under another name than the canonical ones, sorted.
    fn by_content(&self, key: &str) -> Vec<PathBuf> {
        let Ok(listing) = self.listing() else { return Vec::new() };
        listing.others.iter().filter(|(_, _, keys)| keys.contains(key)).map(|(p, _, _)| p.clone()).collect()
    }

    /// `dir/canonical` when it exists, else the first file holding `key` under another name.
    fn pick(&self, canonical: &str, key: &str) -> PathBuf {
        let path = self.path.join(canonical);
        if path.exists() {
            return path;
        }
        self.by_content(key).into_iter().next().unwrap_or(path)
    }

    /// The files named `<prefix><name>.json`, and those holding `key` under another name, sorted.
    fn per_name_files(&self, prefix: &str, key: &str) -> Result<Vec<PathBuf>, SourceError> {
        let listing = self.listing().map_err(|e| {
            SourceError::Input(format!("{}: cannot list the cluster directory: {e}", self.path.display()))
        })?;
        let named = |p: &&PathBuf| p.file_name().and_then(|n| n.to_str()).and_then(prefixed) == Some(prefix);
        let mut files: Vec<PathBuf> = listing.files.iter().filter(named).cloned().collect();
        files.extend(self.by_content(key));
        files.sort();
        Ok(files)
    }
}

/// Lists `dir` and reads its JSON files under names of their own, keeping their top-level keys.
fn list(dir: &Path) -> Result<Listing, String> {
    let canonical = |name: &str| KNOWN_FILES.iter().any(|(f, _)| *f == name) || prefixed(name).is_some();
    let mut files: Vec<PathBuf> =
        std::fs::read_dir(dir).map_err(|e| e.to_string())?.filter_map(Result::ok).map(|e| e.path()).collect();
    files.sort();
    let others = files
        .iter()
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.ends_with(".json") && !canonical(n)))
        .filter_map(|p| {
            let text = std::fs::read_to_string(p).ok()?;
            // Only the keys are wanted here: the values are skipped, not built.
            let keys = serde_json::from_str::<BTreeMap<String, IgnoredAny>>(&text).ok()?.into_keys().collect();
            Some((p.clone(), text, keys))
        })
        .collect();
    Ok(Listing { files, others })
}

/// The prefix of a file named after one node group or Fargate profile, if it is one.
fn prefixed(name: &str) -> Option<&'static str> {
    [NODEGROUP_PREFIX, FARGATE_PREFIX].into_iter().find(|p| name.starts_with(p) && name.ends_with(".json"))
}

/// Everything the optional files say, as the raw shapes of `assemble`.
fn read_metadata(
    dir: &ClusterDir,
    cluster: &str,
    vpc: &str,
) -> Result<(ClusterMetadata, BTreeMap<String, String>), SourceError> {
    let mut meta = ClusterMetadata::default();
    for path in dir.per_name_files(NODEGROUP_PREFIX, "nodegroup")? {
        if let Some(d) = read_optional::<DescribeNodegroup>(dir, &path, cluster, vpc)? {
            meta.nodegroups.push(d.nodegroup.into());
        }
    }
    for path in dir.per_name_files(FARGATE_PREFIX, "fargateProfile")? {
        if let Some(d) = read_optional::<DescribeFargateProfile>(dir, &path, cluster, vpc)? {
            meta.fargate_profiles.push(d.fargate_profile.into());
        }
    }
    let read = |file: &str, key: &str| dir.pick(file, key);
    meta.vpc_cni = read_optional::<DescribeAddon>(dir, &read(ADDON_FILE, "addon"), cluster, vpc)?
        .map(|d| VpcCniAddon::Managed { configuration_values: d.addon.configuration_values });
    if let Some(d) = read_optional::<DescribeLaunchTemplateVersions>(
        dir,
        &read(LAUNCH_TEMPLATES_FILE, "LaunchTemplateVersions"),
        cluster,
        vpc,
    )? {
        meta.launch_templates = d.launch_template_versions.into_iter().map(Into::into).collect();
    }
    if let Some(d) = read_optional::<DescribeInstances>(dir, &read(INSTANCES_FILE, "Reservations"), cluster, vpc)? {
        meta.instances = d.reservations.into_iter().flat_map(|r| r.instances).map(Into::into).collect();
    }
    let vpcs_path = read(VPCS_FILE, "Vpcs");
    if let Some(d) = read_optional::<DescribeVpcs>(dir, &vpcs_path, cluster, vpc)? {
        let vpcs: Result<Vec<VpcInfo>, String> = d.vpcs.into_iter().map(TryInto::try_into).collect();
        meta.vpcs = Some(vpcs.map_err(|what| SourceError::Input(format!("{}: {what}", vpcs_path.display())))?);
    }
    meta.vpc_endpoints =
        read_optional::<DescribeVpcEndpoints>(dir, &read(ENDPOINTS_FILE, "VpcEndpoints"), cluster, vpc)?
            .map(|d| d.vpc_endpoints.into_iter().map(Into::into).collect());
    meta.route_tables =
        read_optional::<DescribeRouteTables>(dir, &read(ROUTE_TABLES_FILE, "RouteTables"), cluster, vpc)?
            .map(|d| d.route_tables.into_iter().map(Into::into).collect());
    meta.network_interfaces =
        read_optional::<DescribeNetworkInterfaces>(dir, &read(INTERFACES_FILE, "NetworkInterfaces"), cluster, vpc)?
            .map(|d| d.network_interfaces.into_iter().map(Into::into).collect());
    let mut prefix_lists = BTreeMap::new();
    let other_prefix_lists = dir.by_content("PrefixLists");
    let prefix_list_files = [PREFIX_LISTS_FILE, MANAGED_PREFIX_LISTS_FILE].map(|f| dir.path.join(f));
    for path in prefix_list_files.iter().chain(other_prefix_lists.iter()) {
        if let Some(d) = read_optional::<DescribePrefixLists>(dir, path, cluster, vpc)? {
            for pl in d.prefix_lists {
                if let (Some(id), Some(name)) = (pl.prefix_list_id, pl.prefix_list_name) {
                    prefix_lists.insert(id, name);
                }
            }
        }
    }
    Ok((meta, prefix_lists))
}

/// One cluster's snapshot from its directory, `describe-cluster.json` already parsed.
fn build(dir: &ClusterDir, id: &ClusterId, cluster: Cluster) -> Result<ClusterSnapshot, SourceError> {
    let groups_path = dir.pick(GROUPS_FILE, "SecurityGroups");
    let vpc = cluster.resources_vpc_config.vpc_id.clone();
    let command = command_for(GROUPS_FILE, &id.name, Some(&vpc));
    let groups_text = match dir.read(&groups_path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(SourceError::Input(format!(
                "{}: missing; this required file holds the output of `{command}`",
                groups_path.display(),
            )))
        }
        Err(e) => return Err(SourceError::Input(format!("{}: cannot read: {e}", groups_path.display()))),
    };
    let described: DescribeSecurityGroups = parse_json(&groups_path, &groups_text, &command)?;
    let mut batch = GroupBatch::default();
    for g in described.security_groups {
        let gid = g.group_id.clone();
        match g.into_record() {
            Ok(record) => {
                batch.found.insert(gid, record);
            }
            Err(what) => {
                let (line, column) = locate(&groups_text, &format!("\"{gid}\"")).unwrap_or((1, 1));
                let message = format!("{}:{line}:{column}: security group {gid}: {what}", groups_path.display());
                batch.failed.insert(gid, SourceError::Input(message));
            }
        }
    }
    let (metadata, prefix_lists) = read_metadata(dir, &id.name, &vpc)?;
    let mut warnings = Vec::new();
    let private = !cluster.resources_vpc_config.endpoint_public_access;
    if private && metadata.vpc_endpoints.is_none() {
        warnings.push(format!(
            "{ENDPOINTS_FILE} is absent: the VPC endpoints of this private cluster (and their security groups) are unknown"
        ));
    }
    let info = ClusterInfo::from(cluster);
    assemble::assemble(RawCluster {
        id: id.clone(),
        info: &info,
        metadata: &metadata,
        groups: &batch,
        prefix_lists: &prefix_lists,
        warnings,
    })
}

fn tag_map(tags: Vec<Tag>) -> BTreeMap<String, String> {
    tags.into_iter().map(|t| (t.key, t.value)).collect()
}

fn group_ids(groups: Vec<GroupIdentifier>) -> Vec<String> {
    groups.into_iter().map(|g| g.group_id).collect()
}

// ---------------------------------------------------------------------------------------------
// The AWS CLI's JSON, field for field where sgdrift reads it; every other field is ignored.
// EKS speaks camelCase, EC2 PascalCase. Each shape converts into its `assemble` counterpart.

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
    kubernetes_network_config: Option<KubernetesNetworkConfig>,
    compute_config: Option<ComputeConfig>,
    remote_network_config: Option<RemoteNetworkConfig>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct KubernetesNetworkConfig {
    ip_family: Option<String>,
}

#[derive(serde::Deserialize)]
struct ComputeConfig {
    enabled: Option<bool>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct RemoteNetworkConfig {
    #[serde(default)]
    remote_node_networks: Vec<RemoteCidrs>,
    #[serde(default)]
    remote_pod_networks: Vec<RemoteCidrs>,
}

#[derive(serde::Deserialize)]
struct RemoteCidrs {
    #[serde(default)]
    cidrs: Vec<String>,
}

impl From<Cluster> for ClusterInfo {
    fn from(c: Cluster) -> Self {
        let vpc = c.resources_vpc_config;
        let remote = |n: &[RemoteCidrs]| convert::cidrs(n.iter().flat_map(|r| r.cidrs.iter()));
        ClusterInfo {
            name: c.name,
            arn: Some(c.arn),
            endpoint_public_access: vpc.endpoint_public_access,
            endpoint_private_access: vpc.endpoint_private_access,
            public_access_cidrs: vpc.public_access_cidrs,
            vpc_id: Some(vpc.vpc_id).filter(|v| !v.is_empty()),
            cluster_security_group_id: vpc.cluster_security_group_id.filter(|s| !s.is_empty()),
            security_group_ids: vpc.security_group_ids,
            tags: c.tags,
            ip_family: match c.kubernetes_network_config.and_then(|k| k.ip_family).as_deref() {
                Some("ipv6") => IpFamily::Ipv6,
                _ => IpFamily::Ipv4,
            },
            auto_mode: c.compute_config.and_then(|cc| cc.enabled).unwrap_or(false),
            remote_network: c.remote_network_config.map(|r| RemoteNetwork {
                node_cidrs: remote(&r.remote_node_networks),
                pod_cidrs: remote(&r.remote_pod_networks),
            }),
        }
    }
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
    #[serde(default)]
    subnets: Vec<String>,
}

impl From<Nodegroup> for NodegroupInfo {
    fn from(ng: Nodegroup) -> Self {
        let resources = ng.resources.unwrap_or_default();
        NodegroupInfo {
            name: ng.nodegroup_name,
            launch_template: ng.launch_template.map(|lt| LaunchTemplateRef {
                id: lt.id,
                name: lt.name,
                version: lt.version,
            }),
            remote_access_security_group: resources.remote_access_security_group.filter(|s| !s.is_empty()),
            auto_scaling_groups: resources.auto_scaling_groups.into_iter().filter_map(|a| a.name).collect(),
            subnets: ng.subnets,
        }
    }
}

#[derive(serde::Deserialize)]
struct LaunchTemplateSpec {
    name: Option<String>,
    version: Option<String>,
    id: Option<String>,
}

#[derive(serde::Deserialize, Default)]
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

impl SecurityGroupJson {
    fn into_record(self) -> Result<GroupRecord, String> {
        let raw = |perms: &[IpPermission]| perms.iter().map(IpPermission::to_raw).collect::<Vec<_>>();
        let (ingress, egress) = (raw(&self.ip_permissions), raw(&self.ip_permissions_egress));
        GroupRecord {
            id: self.group_id,
            name: self.group_name,
            description: self.description,
            owner_id: self.owner_id,
            vpc_id: self.vpc_id,
            tags: tag_map(self.tags),
            rules: Vec::new(),
        }
        .with_permissions(&ingress, &egress)
        .map_err(|e| e.0)
    }
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

impl From<LaunchTemplateVersion> for LaunchTemplateVersionInfo {
    /// `SecurityGroupIds` or the groups of the network interfaces (a template has one or the other).
    fn from(v: LaunchTemplateVersion) -> Self {
        let data = v.launch_template_data;
        let mut ids = data.security_group_ids;
        ids.extend(data.network_interfaces.into_iter().flat_map(|n| n.groups));
        ids.sort();
        ids.dedup();
        LaunchTemplateVersionInfo {
            template_id: v.launch_template_id,
            template_name: v.launch_template_name,
            version_number: v.version_number,
            default_version: v.default_version,
            security_group_ids: ids,
        }
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
    #[serde(default)]
    groups: Vec<GroupIdentifier>,
    private_dns_enabled: Option<bool>,
}

impl From<VpcEndpointJson> for VpcEndpointInfo {
    fn from(e: VpcEndpointJson) -> Self {
        VpcEndpointInfo {
            id: e.vpc_endpoint_id,
            vpc_id: e.vpc_id,
            service_name: e.service_name,
            endpoint_type: e.vpc_endpoint_type.unwrap_or_default(),
            state: e.state,
            security_group_ids: group_ids(e.groups),
            private_dns_enabled: e.private_dns_enabled.unwrap_or(false),
        }
    }
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
    subnet_id: Option<String>,
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
    attachment: Option<InterfaceAttachment>,
    interface_type: Option<String>,
    subnet_id: Option<String>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct InterfaceAttachment {
    device_index: Option<i32>,
}

impl From<Instance> for InstanceInfo {
    /// The groups of the primary interface and of every other attached interface.
    fn from(i: Instance) -> Self {
        let mut ids = group_ids(i.security_groups);
        let interfaces: Vec<InstanceInterfaceInfo> = i
            .network_interfaces
            .into_iter()
            .map(|n| {
                let mut groups = group_ids(n.groups);
                groups.sort();
                groups.dedup();
                InstanceInterfaceInfo {
                    device_index: n.attachment.and_then(|a| a.device_index),
                    interface_type: n.interface_type,
                    subnet_id: n.subnet_id,
                    security_group_ids: groups,
                }
            })
            .collect();
        ids.extend(interfaces.iter().flat_map(|n| n.security_group_ids.iter().cloned()));
        ids.sort();
        ids.dedup();
        InstanceInfo {
            id: i.instance_id,
            live: !matches!(i.state.and_then(|s| s.name).as_deref(), Some("terminated" | "shutting-down")),
            subnet_id: i.subnet_id,
            security_group_ids: ids,
            tags: tag_map(i.tags),
            interfaces,
        }
    }
}

/// The instances of an `aws ec2 describe-instances` answer, for tests comparing the sources.
#[cfg(test)]
pub(crate) fn instances_from_cli(text: &str) -> Vec<InstanceInfo> {
    let d: DescribeInstances = serde_json::from_str(text).expect("describe-instances JSON");
    d.reservations.into_iter().flat_map(|r| r.instances).map(Into::into).collect()
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct DescribeFargateProfile {
    fargate_profile: FargateProfileJson,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct FargateProfileJson {
    fargate_profile_name: String,
    status: Option<String>,
    #[serde(default)]
    subnets: Vec<String>,
}

impl From<FargateProfileJson> for FargateProfileInfo {
    fn from(p: FargateProfileJson) -> Self {
        FargateProfileInfo { name: p.fargate_profile_name, status: p.status, subnets: p.subnets }
    }
}

#[derive(serde::Deserialize)]
struct DescribeAddon {
    addon: AddonJson,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct AddonJson {
    configuration_values: Option<String>,
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

impl TryFrom<Vpc> for VpcInfo {
    type Error = String;

    fn try_from(v: Vpc) -> Result<Self, String> {
        let id = v.vpc_id;
        let parse = |t: &str| t.parse::<IpNet>().map_err(|_| format!("VPC {id} has CIDR `{t}`, which is not a CIDR"));
        let block = |cidr: Option<String>, state: Option<CidrState>| -> Result<Option<CidrBlock>, String> {
            cidr.map(|c| Ok(CidrBlock { cidr: parse(&c)?, state: state.and_then(|s| s.state) })).transpose()
        };
        let mut ipv4 = Vec::new();
        for a in v.cidr_block_association_set {
            ipv4.extend(block(a.cidr_block, a.cidr_block_state)?);
        }
        let mut ipv6 = Vec::new();
        for a in v.ipv6_cidr_block_association_set {
            ipv6.extend(block(a.ipv6_cidr_block, a.ipv6_cidr_block_state)?);
        }
        let primary = v.cidr_block.as_deref().map(parse).transpose()?;
        Ok(VpcInfo { id, primary, ipv4, ipv6 })
    }
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
struct DescribeRouteTables {
    #[serde(default)]
    route_tables: Vec<RouteTableJson>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RouteTableJson {
    route_table_id: String,
    vpc_id: Option<String>,
    #[serde(default)]
    associations: Vec<RouteTableAssociation>,
    #[serde(default)]
    routes: Vec<RouteJson>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RouteTableAssociation {
    #[serde(default)]
    main: bool,
    subnet_id: Option<String>,
}

/// A route names its target in one of these fields.
#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RouteJson {
    destination_cidr_block: Option<String>,
    destination_ipv6_cidr_block: Option<String>,
    state: Option<String>,
    gateway_id: Option<String>,
    nat_gateway_id: Option<String>,
    egress_only_internet_gateway_id: Option<String>,
    transit_gateway_id: Option<String>,
    vpc_peering_connection_id: Option<String>,
    network_interface_id: Option<String>,
    instance_id: Option<String>,
    local_gateway_id: Option<String>,
    carrier_gateway_id: Option<String>,
    core_network_arn: Option<String>,
}

impl From<RouteTableJson> for RouteTableInfo {
    fn from(t: RouteTableJson) -> Self {
        RouteTableInfo {
            id: t.route_table_id,
            vpc_id: t.vpc_id,
            main: t.associations.iter().any(|a| a.main),
            subnet_ids: t.associations.into_iter().filter_map(|a| a.subnet_id).collect(),
            routes: t
                .routes
                .into_iter()
                .map(|r| RouteInfo {
                    destination: r
                        .destination_cidr_block
                        .or(r.destination_ipv6_cidr_block)
                        .and_then(|d| d.parse().ok()),
                    target: [
                        r.gateway_id,
                        r.nat_gateway_id,
                        r.egress_only_internet_gateway_id,
                        r.transit_gateway_id,
                        r.vpc_peering_connection_id,
                        r.network_interface_id,
                        r.instance_id,
                        r.local_gateway_id,
                        r.carrier_gateway_id,
                        r.core_network_arn,
                    ]
                    .into_iter()
                    .flatten()
                    .next(),
                    state: r.state,
                })
                .collect(),
        }
    }
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DescribeNetworkInterfaces {
    #[serde(default)]
    network_interfaces: Vec<NetworkInterfaceJson>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct NetworkInterfaceJson {
    network_interface_id: String,
    interface_type: Option<String>,
    description: Option<String>,
    vpc_id: Option<String>,
    #[serde(default)]
    groups: Vec<GroupIdentifier>,
}

impl From<NetworkInterfaceJson> for NetworkInterfaceInfo {
    fn from(n: NetworkInterfaceJson) -> Self {
        let mut ids = group_ids(n.groups);
        ids.sort();
        ids.dedup();
        NetworkInterfaceInfo {
            id: n.network_interface_id,
            interface_type: n.interface_type,
            description: n.description,
            vpc_id: n.vpc_id,
            security_group_ids: ids,
        }
    }
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
