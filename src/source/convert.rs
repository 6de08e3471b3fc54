//! The one place SDK types meet `model`: `TryFrom` conversions at the edge, and the
//! classification of SDK errors into `SourceError`. Everything `aws.rs` keeps is plain data.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_ec2::types as ec2;
use aws_sdk_eks::types as eks;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use ipnet::IpNet;

use super::SourceError;
use crate::model::{
    normalize, Direction, ParseError, RawPeer, RawPermission, Role, SecurityGroup, VpcEndpoint, VpcEndpointKind,
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
}

impl From<&eks::Cluster> for ClusterInfo {
    fn from(c: &eks::Cluster) -> Self {
        let vpc = c.resources_vpc_config();
        ClusterInfo {
            name: c.name().unwrap_or_default().to_string(),
            arn: c.arn().map(str::to_string),
            endpoint_public_access: vpc.is_some_and(|v| v.endpoint_public_access()),
            endpoint_private_access: vpc.is_some_and(|v| v.endpoint_private_access()),
            public_access_cidrs: vpc.map(|v| v.public_access_cidrs().to_vec()).unwrap_or_default(),
            vpc_id: vpc.and_then(|v| v.vpc_id()).filter(|s| !s.is_empty()).map(str::to_string),
            cluster_security_group_id: vpc
                .and_then(|v| v.cluster_security_group_id())
                .filter(|s| !s.is_empty())
                .map(str::to_string),
            security_group_ids: vpc.map(|v| v.security_group_ids().to_vec()).unwrap_or_default(),
            tags: c.tags().map(|t| t.iter().map(|(k, v)| (k.clone(), v.clone())).collect()).unwrap_or_default(),
        }
    }
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
}

impl From<&eks::Nodegroup> for NodegroupInfo {
    fn from(ng: &eks::Nodegroup) -> Self {
        NodegroupInfo {
            name: ng.nodegroup_name().unwrap_or_default().to_string(),
            launch_template: ng.launch_template().map(|lt| LaunchTemplateRef {
                id: lt.id().map(str::to_string),
                name: lt.name().map(str::to_string),
                version: lt.version().map(str::to_string),
            }),
            remote_access_security_group: ng
                .resources()
                .and_then(|r| r.remote_access_security_group())
                .filter(|s| !s.is_empty())
                .map(str::to_string),
            auto_scaling_groups: ng
                .resources()
                .map(|r| r.auto_scaling_groups().iter().filter_map(|a| a.name()).map(str::to_string).collect())
                .unwrap_or_default(),
        }
    }
}

/// The SG ids a launch-template version puts on its instances: `SecurityGroupIds`, or the
/// groups of its network interfaces (a template has one or the other, never both).
pub fn launch_template_security_groups(version: &ec2::LaunchTemplateVersion) -> Vec<String> {
    let Some(data) = version.launch_template_data() else {
        return Vec::new();
    };
    let mut ids: Vec<String> = data.security_group_ids().to_vec();
    for nic in data.network_interfaces() {
        ids.extend(nic.groups().iter().cloned());
    }
    sorted_unique(ids)
}

/// One EC2 instance that may be a self-managed node: its tags and every SG on its ENIs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceInfo {
    pub id: String,
    pub security_group_ids: Vec<String>,
    pub tags: BTreeMap<String, String>,
}

impl From<&ec2::Instance> for InstanceInfo {
    fn from(i: &ec2::Instance) -> Self {
        let mut ids: Vec<String> =
            i.security_groups().iter().filter_map(|g| g.group_id()).map(str::to_string).collect();
        for nic in i.network_interfaces() {
            ids.extend(nic.groups().iter().filter_map(|g| g.group_id()).map(str::to_string));
        }
        InstanceInfo {
            id: i.instance_id().unwrap_or_default().to_string(),
            security_group_ids: sorted_unique(ids),
            tags: tags(i.tags()),
        }
    }
}

/// Is the instance one that still carries traffic (not terminated or shutting down)?
pub fn instance_is_live(i: &ec2::Instance) -> bool {
    !matches!(
        i.state().and_then(|s| s.name()),
        Some(ec2::InstanceStateName::Terminated | ec2::InstanceStateName::ShuttingDown)
    )
}

/// An interface or gateway endpoint that exists; other kinds (load balancer, resource) and
/// endpoints on their way out are of no use to nodes.
pub fn vpc_endpoint(e: &ec2::VpcEndpoint) -> Option<VpcEndpoint> {
    let kind = match e.vpc_endpoint_type()? {
        ec2::VpcEndpointType::Interface => VpcEndpointKind::Interface,
        ec2::VpcEndpointType::Gateway => VpcEndpointKind::Gateway,
        _ => return None,
    };
    if matches!(
        e.state(),
        Some(
            ec2::State::Deleted
                | ec2::State::Deleting
                | ec2::State::Failed
                | ec2::State::Rejected
                | ec2::State::Expired
        )
    ) {
        return None;
    }
    Some(VpcEndpoint {
        id: e.vpc_endpoint_id()?.to_string(),
        service_name: e.service_name().unwrap_or_default().to_string(),
        kind,
        security_group_ids: sorted_unique(e.groups().iter().filter_map(|g| g.group_id()).map(str::to_string).collect()),
    })
}

/// The IPv4 and IPv6 CIDRs associated with a VPC (`vpc-cidr` in baselines), in API order.
pub fn vpc_cidrs(v: &ec2::Vpc) -> Vec<IpNet> {
    let mut cidrs: Vec<IpNet> = Vec::new();
    let mut push = |s: Option<&str>| {
        if let Some(net) = s.and_then(|s| s.parse::<IpNet>().ok()) {
            if !cidrs.contains(&net) {
                cidrs.push(net);
            }
        }
    };
    let v4 = v.cidr_block_association_set();
    if v4.is_empty() {
        push(v.cidr_block());
    }
    for a in v4 {
        if !cidr_gone(a.cidr_block_state().and_then(|s| s.state())) {
            push(a.cidr_block());
        }
    }
    for a in v.ipv6_cidr_block_association_set() {
        if !cidr_gone(a.ipv6_cidr_block_state().and_then(|s| s.state())) {
            push(a.ipv6_cidr_block());
        }
    }
    cidrs
}

/// A CIDR that is leaving or never joined the VPC admits no traffic: leave it out.
fn cidr_gone(state: Option<&ec2::VpcCidrBlockStateCode>) -> bool {
    matches!(
        state,
        Some(
            ec2::VpcCidrBlockStateCode::Disassociated
                | ec2::VpcCidrBlockStateCode::Disassociating
                | ec2::VpcCidrBlockStateCode::Failed
                | ec2::VpcCidrBlockStateCode::Failing
        )
    )
}

/// `pl-…` → `com.amazonaws.<region>.s3` (or the customer's name).
pub fn prefix_list(p: &ec2::ManagedPrefixList) -> Option<(String, String)> {
    Some((p.prefix_list_id()?.to_string(), p.prefix_list_name().unwrap_or_default().to_string()))
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
    pub rules: Vec<crate::model::Rule>,
}

impl GroupRecord {
    pub fn with_role(&self, role: Role) -> SecurityGroup {
        SecurityGroup {
            id: self.id.clone(),
            name: self.name.clone(),
            description: self.description.clone(),
            owner_id: self.owner_id.clone(),
            vpc_id: self.vpc_id.clone(),
            tags: self.tags.clone(),
            role,
            rules: self.rules.clone(),
        }
    }
}

impl TryFrom<&ec2::SecurityGroup> for GroupRecord {
    type Error = ParseError;

    fn try_from(sg: &ec2::SecurityGroup) -> Result<Self, ParseError> {
        let id = sg.group_id().ok_or_else(|| ParseError("a security group without GroupId".into()))?.to_string();
        let owner = sg.owner_id();
        let context = |e: ParseError| ParseError(format!("{id}: {}", e.0));
        let mut rules = normalize(Direction::Ingress, &raw_permissions(sg.ip_permissions()), owner).map_err(context)?;
        rules.extend(
            normalize(Direction::Egress, &raw_permissions(sg.ip_permissions_egress()), owner).map_err(context)?,
        );
        Ok(GroupRecord {
            name: sg.group_name().unwrap_or_default().to_string(),
            description: sg.description().unwrap_or_default().to_string(),
            owner_id: owner.map(str::to_string),
            vpc_id: sg.vpc_id().map(str::to_string),
            tags: tags(sg.tags()),
            rules: crate::model::canonicalize(rules),
            id,
        })
    }
}

fn raw_permissions(perms: &[ec2::IpPermission]) -> Vec<RawPermission> {
    perms
        .iter()
        .map(|p| {
            let mut peers = Vec::new();
            peers.extend(p.ip_ranges().iter().filter_map(|r| {
                Some(RawPeer::Ipv4 { cidr: r.cidr_ip()?.to_string(), description: r.description().map(str::to_string) })
            }));
            peers.extend(p.ipv6_ranges().iter().filter_map(|r| {
                Some(RawPeer::Ipv6 {
                    cidr: r.cidr_ipv6()?.to_string(),
                    description: r.description().map(str::to_string),
                })
            }));
            peers.extend(p.prefix_list_ids().iter().filter_map(|r| {
                Some(RawPeer::PrefixList {
                    id: r.prefix_list_id()?.to_string(),
                    description: r.description().map(str::to_string),
                })
            }));
            peers.extend(p.user_id_group_pairs().iter().filter_map(|g| {
                Some(RawPeer::Group {
                    group_id: g.group_id()?.to_string(),
                    user_id: g.user_id().map(str::to_string),
                    description: g.description().map(str::to_string),
                })
            }));
            RawPermission {
                ip_protocol: p.ip_protocol().unwrap_or("-1").to_string(),
                from_port: p.from_port(),
                to_port: p.to_port(),
                peers,
            }
        })
        .collect()
}

fn tags(tags: &[ec2::Tag]) -> BTreeMap<String, String> {
    tags.iter().filter_map(|t| Some((t.key()?.to_string(), t.value().unwrap_or_default().to_string()))).collect()
}

fn sorted_unique(mut ids: Vec<String>) -> Vec<String> {
    ids.sort();
    ids.dedup();
    ids
}

/// One AWS operation, named as IAM names it: `ec2` + `DescribeSecurityGroups`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Operation {
    pub service: &'static str,
    pub name: &'static str,
}

impl Operation {
    pub const fn new(service: &'static str, name: &'static str) -> Self {
        Operation { service, name }
    }

    /// The IAM action that allows it: `ec2:DescribeSecurityGroups`.
    pub fn action(self) -> String {
        format!("{}:{}", self.service, self.name)
    }
}

/// A failed call: the classified error, plus the raw AWS error code for the callers that act on
/// a specific one (`InvalidGroup.NotFound` in a batch).
#[derive(Debug, Clone)]
pub struct CallFailure {
    pub error: SourceError,
    pub code: Option<String>,
    pub message: String,
}

/// Error codes AWS uses for "slow down" across EC2, EKS and STS.
const THROTTLING_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottled",
    "RequestThrottledException",
    "RequestLimitExceeded",
    "TooManyRequestsException",
    "BandwidthLimitExceeded",
    "SlowDown",
    "PriorRequestNotComplete",
    "EC2ThrottledException",
];

/// Error codes meaning "the caller may not do this" (as opposed to bad credentials).
const ACCESS_DENIED_CODES: &[&str] = &[
    "AccessDenied",
    "AccessDeniedException",
    "UnauthorizedOperation",
    "UnauthorizedException",
    "Client.UnauthorizedOperation",
];

/// What to do when the standard chain found no credentials: one sentence instead of the SDK's
/// nested report of every provider it tried.
pub const NO_CREDENTIALS: &str = "no AWS credentials found (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, \
or AWS_PROFILE, or run with an IAM role: IRSA or EKS Pod Identity on Kubernetes, an instance profile on EC2)";

/// A failure to load credentials anywhere in `err`'s chain, said plainly; `None` for any other
/// failure. The SDK reports it as a dispatch failure whose text nests every provider's error.
fn credentials_message(err: &(dyn std::error::Error + 'static)) -> Option<String> {
    use aws_credential_types::provider::error::CredentialsError;
    let mut next = Some(err);
    while let Some(e) = next {
        if let Some(credentials) = e.downcast_ref::<CredentialsError>() {
            return Some(match credentials {
                CredentialsError::CredentialsNotLoaded(_) => NO_CREDENTIALS.to_string(),
                CredentialsError::ProviderTimedOut(_) => {
                    "timed out loading AWS credentials (the instance metadata service or the EKS Pod Identity agent did not answer)"
                        .to_string()
                }
                other => format!("cannot load AWS credentials: {}", DisplayErrorContext(other)),
            });
        }
        next = e.source();
    }
    None
}

/// Sorts any SDK failure into the bounded kinds of `SourceError`.
pub fn classify<E>(op: Operation, err: SdkError<E, HttpResponse>, timeout: Duration) -> CallFailure
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let operation = op.action();
    let code = err.code().map(str::to_string);
    let status = err.raw_response().map(|r| r.status().as_u16());
    let message = match (err.code(), err.message()) {
        (Some(c), Some(m)) => format!("{c}: {m}"),
        (Some(c), None) => c.to_string(),
        _ => credentials_message(&err).unwrap_or_else(|| DisplayErrorContext(&err).to_string()),
    };
    let error = match &err {
        SdkError::TimeoutError(_) => SourceError::Timeout { operation, seconds: timeout.as_secs() },
        SdkError::DispatchFailure(d) if d.is_timeout() => {
            SourceError::Timeout { operation, seconds: timeout.as_secs() }
        }
        // Nothing answered (connection refused, DNS, TLS): the service is unavailable to us.
        SdkError::DispatchFailure(_) => SourceError::Server { operation, message: message.clone() },
        SdkError::ConstructionFailure(_) => SourceError::Client { operation, message: message.clone() },
        _ => match code.as_deref() {
            Some(c) if THROTTLING_CODES.contains(&c) => SourceError::Throttled { operation, message: message.clone() },
            _ if status == Some(429) => SourceError::Throttled { operation, message: message.clone() },
            Some(c) if ACCESS_DENIED_CODES.contains(&c) => {
                SourceError::AccessDenied { action: operation.clone(), operation, message: message.clone() }
            }
            Some(c) if c.ends_with("NotFound") || c.ends_with("NotFoundException") => {
                SourceError::NotFound(format!("{operation}: {message}"))
            }
            _ if status.is_some_and(|s| s >= 500) => SourceError::Server { operation, message: message.clone() },
            // An unreadable body on a 2xx: AWS (or what stands in for it) sent garbage.
            _ if matches!(err, SdkError::ResponseError(_)) => {
                SourceError::Server { operation, message: message.clone() }
            }
            _ => SourceError::Client { operation, message: message.clone() },
        },
    };
    CallFailure { error, code, message }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_ec2::types::{IpPermission, IpRange, Tag, UserIdGroupPair};

    #[test]
    fn a_group_converts_to_canonical_rules_in_both_directions() {
        let sg = ec2::SecurityGroup::builder()
            .group_id("sg-0123456789abcdef0")
            .group_name("demo-node")
            .description("EKS node shared security group")
            .owner_id("111122223333")
            .vpc_id("vpc-0123456789abcdef0")
            .tags(Tag::builder().key("Name").value("demo-node").build())
            .ip_permissions(
                IpPermission::builder()
                    .ip_protocol("tcp")
                    .from_port(10250)
                    .to_port(10250)
                    .user_id_group_pairs(
                        UserIdGroupPair::builder().group_id("sg-0aaaaaaaaaaaaaaaa").user_id("111122223333").build(),
                    )
                    .ip_ranges(IpRange::builder().cidr_ip("10.0.0.0/16").build())
                    .build(),
            )
            .ip_permissions_egress(
                IpPermission::builder()
                    .ip_protocol("-1")
                    .ip_ranges(IpRange::builder().cidr_ip("0.0.0.0/0").build())
                    .build(),
            )
            .build();
        let g = GroupRecord::try_from(&sg).expect("converts");
        assert_eq!(g.id, "sg-0123456789abcdef0");
        assert_eq!(g.tags.get("Name").map(String::as_str), Some("demo-node"));
        let shown: Vec<String> = g.rules.iter().map(|r| r.to_string()).collect();
        assert_eq!(g.rules.len(), 3, "{shown:?}");
        assert_eq!(g.rules.iter().filter(|r| r.direction == Direction::Egress).count(), 1);
        // Same account: the group peer carries no owner.
        assert!(g
            .rules
            .iter()
            .any(|r| r.peer == crate::model::Peer::Group { id: "sg-0aaaaaaaaaaaaaaaa".into(), owner: None }));
    }

    #[test]
    fn a_launch_template_yields_its_groups_or_those_of_its_interfaces() {
        let direct = ec2::LaunchTemplateVersion::builder()
            .launch_template_data(
                ec2::ResponseLaunchTemplateData::builder()
                    .security_group_ids("sg-2")
                    .security_group_ids("sg-1")
                    .build(),
            )
            .build();
        assert_eq!(launch_template_security_groups(&direct), vec!["sg-1".to_string(), "sg-2".to_string()]);
        let nics = ec2::LaunchTemplateVersion::builder()
            .launch_template_data(
                ec2::ResponseLaunchTemplateData::builder()
                    .network_interfaces(
                        ec2::LaunchTemplateInstanceNetworkInterfaceSpecification::builder().groups("sg-3").build(),
                    )
                    .build(),
            )
            .build();
        assert_eq!(launch_template_security_groups(&nics), vec!["sg-3".to_string()]);
        assert!(launch_template_security_groups(&ec2::LaunchTemplateVersion::builder().build()).is_empty());
    }

    #[test]
    fn load_balancer_and_deleted_endpoints_are_not_endpoints_of_the_cluster() {
        let endpoint = |t: ec2::VpcEndpointType, s: ec2::State| {
            ec2::VpcEndpoint::builder()
                .vpc_endpoint_id("vpce-1")
                .service_name("com.amazonaws.eu-west-1.ec2")
                .vpc_endpoint_type(t)
                .state(s)
                .groups(ec2::SecurityGroupIdentifier::builder().group_id("sg-9").build())
                .build()
        };
        let live = vpc_endpoint(&endpoint(ec2::VpcEndpointType::Interface, ec2::State::Available)).expect("kept");
        assert_eq!(live.kind, VpcEndpointKind::Interface);
        assert_eq!(live.security_group_ids, vec!["sg-9".to_string()]);
        assert!(vpc_endpoint(&endpoint(ec2::VpcEndpointType::GatewayLoadBalancer, ec2::State::Available)).is_none());
        assert!(vpc_endpoint(&endpoint(ec2::VpcEndpointType::Interface, ec2::State::Deleted)).is_none());
    }

    #[test]
    fn vpc_cidrs_skip_disassociated_blocks() {
        let vpc = ec2::Vpc::builder()
            .cidr_block("10.0.0.0/16")
            .cidr_block_association_set(
                ec2::VpcCidrBlockAssociation::builder()
                    .cidr_block("10.0.0.0/16")
                    .cidr_block_state(
                        ec2::VpcCidrBlockState::builder().state(ec2::VpcCidrBlockStateCode::Associated).build(),
                    )
                    .build(),
            )
            .cidr_block_association_set(
                ec2::VpcCidrBlockAssociation::builder()
                    .cidr_block("10.1.0.0/16")
                    .cidr_block_state(
                        ec2::VpcCidrBlockState::builder().state(ec2::VpcCidrBlockStateCode::Disassociated).build(),
                    )
                    .build(),
            )
            .ipv6_cidr_block_association_set(
                ec2::VpcIpv6CidrBlockAssociation::builder().ipv6_cidr_block("2600:1f18::/56").build(),
            )
            .build();
        let got: Vec<String> = vpc_cidrs(&vpc).iter().map(|n| n.to_string()).collect();
        assert_eq!(got, vec!["10.0.0.0/16".to_string(), "2600:1f18::/56".to_string()]);
    }

    #[test]
    fn missing_credentials_read_as_one_sentence_saying_what_to_set() {
        use aws_credential_types::provider::error::CredentialsError;
        use aws_smithy_runtime_api::client::result::ConnectorError;
        let op = Operation::new("eks", "ListClusters");
        let cases: [(CredentialsError, &str); 3] = [
            (CredentialsError::not_loaded("no providers in chain provided credentials"), NO_CREDENTIALS),
            (CredentialsError::provider_timed_out(Duration::from_secs(5)), "timed out loading AWS credentials"),
            (CredentialsError::invalid_configuration("profile `x` does not exist"), "cannot load AWS credentials: "),
        ];
        for (credentials, want) in cases {
            let err: SdkError<aws_sdk_eks::operation::list_clusters::ListClustersError, HttpResponse> =
                SdkError::dispatch_failure(ConnectorError::other(Box::new(credentials), None));
            let failure = classify(op, err, Duration::from_secs(60));
            assert!(failure.message.starts_with(want), "{}", failure.message);
            assert!(!failure.message.contains("dispatch failure"), "{}", failure.message);
        }
    }
}
