//! The one place SDK types meet sgdrift: conversions at the edge into the plain shapes of
//! `assemble`, and the classification of SDK errors into `SourceError`. Everything `aws.rs`
//! keeps is plain data.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_ec2::types as ec2;
use aws_sdk_eks::types as eks;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use ipnet::IpNet;

use super::assemble::{
    CidrBlock, ClusterInfo, FargateProfileInfo, GroupRecord, InstanceInfo, InstanceInterfaceInfo, LaunchTemplateRef,
    LaunchTemplateVersionInfo, NetworkInterfaceInfo, NodegroupInfo, RouteInfo, RouteTableInfo, VpcCniAddon,
    VpcEndpointInfo, VpcInfo,
};
use super::SourceError;
use crate::model::{IpFamily, ParseError, RawPeer, RawPermission, RemoteNetwork};

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
            ip_family: match c.kubernetes_network_config().and_then(|k| k.ip_family()) {
                Some(eks::IpFamily::Ipv6) => IpFamily::Ipv6,
                _ => IpFamily::Ipv4,
            },
            auto_mode: c.compute_config().and_then(|cc| cc.enabled()).unwrap_or(false),
            remote_network: c.remote_network_config().map(|r| RemoteNetwork {
                node_cidrs: cidrs(r.remote_node_networks().iter().flat_map(|n| n.cidrs())),
                pod_cidrs: cidrs(r.remote_pod_networks().iter().flat_map(|n| n.cidrs())),
            }),
        }
    }
}

/// The CIDRs that parse; EKS validated them when the cluster was made.
pub(crate) fn cidrs<'a>(texts: impl Iterator<Item = &'a String>) -> Vec<IpNet> {
    texts.filter_map(|t| t.parse().ok()).collect()
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
            subnets: ng.subnets().to_vec(),
        }
    }
}

impl From<&ec2::LaunchTemplateVersion> for LaunchTemplateVersionInfo {
    /// The groups a version puts on its instances: `SecurityGroupIds`, or the groups of its
    /// network interfaces (a template has one or the other, never both).
    fn from(v: &ec2::LaunchTemplateVersion) -> Self {
        let mut ids: Vec<String> = Vec::new();
        if let Some(data) = v.launch_template_data() {
            ids.extend(data.security_group_ids().iter().cloned());
            ids.extend(data.network_interfaces().iter().flat_map(|nic| nic.groups().iter().cloned()));
        }
        LaunchTemplateVersionInfo {
            template_id: v.launch_template_id().map(str::to_string),
            template_name: v.launch_template_name().map(str::to_string),
            version_number: v.version_number().unwrap_or_default(),
            default_version: v.default_version().unwrap_or(false),
            security_group_ids: sorted_unique(ids),
        }
    }
}

impl From<&ec2::Instance> for InstanceInfo {
    fn from(i: &ec2::Instance) -> Self {
        let group_ids = |g: &[ec2::GroupIdentifier]| -> Vec<String> {
            g.iter().filter_map(|g| g.group_id()).map(str::to_string).collect()
        };
        let mut ids = group_ids(i.security_groups());
        let interfaces: Vec<InstanceInterfaceInfo> = i
            .network_interfaces()
            .iter()
            .map(|nic| InstanceInterfaceInfo {
                device_index: nic.attachment().and_then(|a| a.device_index()),
                interface_type: nic.interface_type().map(str::to_string),
                subnet_id: nic.subnet_id().map(str::to_string),
                security_group_ids: sorted_unique(group_ids(nic.groups())),
            })
            .collect();
        ids.extend(interfaces.iter().flat_map(|n| n.security_group_ids.iter().cloned()));
        InstanceInfo {
            id: i.instance_id().unwrap_or_default().to_string(),
            live: !matches!(
                i.state().and_then(|s| s.name()),
                Some(ec2::InstanceStateName::Terminated | ec2::InstanceStateName::ShuttingDown)
            ),
            subnet_id: i.subnet_id().map(str::to_string),
            security_group_ids: sorted_unique(ids),
            tags: tags(i.tags()),
            interfaces,
        }
    }
}

impl From<&eks::FargateProfile> for FargateProfileInfo {
    fn from(p: &eks::FargateProfile) -> Self {
        FargateProfileInfo {
            name: p.fargate_profile_name().unwrap_or_default().to_string(),
            status: p.status().map(|s| s.as_str().to_string()),
            subnets: p.subnets().to_vec(),
        }
    }
}

impl From<&eks::Addon> for VpcCniAddon {
    fn from(a: &eks::Addon) -> Self {
        VpcCniAddon::Managed { configuration_values: a.configuration_values().map(str::to_string) }
    }
}

impl From<&ec2::VpcEndpoint> for VpcEndpointInfo {
    fn from(e: &ec2::VpcEndpoint) -> Self {
        VpcEndpointInfo {
            id: e.vpc_endpoint_id().unwrap_or_default().to_string(),
            vpc_id: e.vpc_id().map(str::to_string),
            service_name: e.service_name().unwrap_or_default().to_string(),
            endpoint_type: e.vpc_endpoint_type().map(|t| t.as_str().to_string()).unwrap_or_default(),
            state: e.state().map(|s| s.as_str().to_string()),
            security_group_ids: sorted_unique(
                e.groups().iter().filter_map(|g| g.group_id()).map(str::to_string).collect(),
            ),
            private_dns_enabled: e.private_dns_enabled().unwrap_or(false),
        }
    }
}

impl From<&ec2::Vpc> for VpcInfo {
    fn from(v: &ec2::Vpc) -> Self {
        let block = |cidr: Option<&str>, state: Option<&str>| {
            Some(CidrBlock { cidr: cidr?.parse().ok()?, state: state.map(str::to_string) })
        };
        VpcInfo {
            id: v.vpc_id().unwrap_or_default().to_string(),
            primary: v.cidr_block().and_then(|c| c.parse().ok()),
            ipv4: v
                .cidr_block_association_set()
                .iter()
                .filter_map(|a| block(a.cidr_block(), a.cidr_block_state().and_then(|s| s.state()).map(|s| s.as_str())))
                .collect(),
            ipv6: v
                .ipv6_cidr_block_association_set()
                .iter()
                .filter_map(|a| {
                    block(a.ipv6_cidr_block(), a.ipv6_cidr_block_state().and_then(|s| s.state()).map(|s| s.as_str()))
                })
                .collect(),
        }
    }
}

impl From<&ec2::RouteTable> for RouteTableInfo {
    fn from(t: &ec2::RouteTable) -> Self {
        RouteTableInfo {
            id: t.route_table_id().unwrap_or_default().to_string(),
            vpc_id: t.vpc_id().map(str::to_string),
            main: t.associations().iter().any(|a| a.main().unwrap_or(false)),
            subnet_ids: t.associations().iter().filter_map(|a| a.subnet_id()).map(str::to_string).collect(),
            routes: t
                .routes()
                .iter()
                .map(|r| RouteInfo {
                    destination: r
                        .destination_cidr_block()
                        .or(r.destination_ipv6_cidr_block())
                        .and_then(|d| d.parse().ok()),
                    target: [
                        r.gateway_id(),
                        r.nat_gateway_id(),
                        r.egress_only_internet_gateway_id(),
                        r.transit_gateway_id(),
                        r.vpc_peering_connection_id(),
                        r.network_interface_id(),
                        r.instance_id(),
                        r.local_gateway_id(),
                        r.carrier_gateway_id(),
                        r.core_network_arn(),
                    ]
                    .into_iter()
                    .flatten()
                    .next()
                    .map(str::to_string),
                    state: r.state().map(|s| s.as_str().to_string()),
                })
                .collect(),
        }
    }
}

impl From<&ec2::NetworkInterface> for NetworkInterfaceInfo {
    fn from(n: &ec2::NetworkInterface) -> Self {
        NetworkInterfaceInfo {
            id: n.network_interface_id().unwrap_or_default().to_string(),
            interface_type: n.interface_type().map(|t| t.as_str().to_string()),
            description: n.description().map(str::to_string),
            vpc_id: n.vpc_id().map(str::to_string),
            security_group_ids: sorted_unique(
                n.groups().iter().filter_map(|g| g.group_id()).map(str::to_string).collect(),
            ),
        }
    }
}

/// `pl-…` → `com.amazonaws.<region>.s3` (or the customer's name).
pub fn prefix_list(p: &ec2::ManagedPrefixList) -> Option<(String, String)> {
    Some((p.prefix_list_id()?.to_string(), p.prefix_list_name().unwrap_or_default().to_string()))
}

impl TryFrom<&ec2::SecurityGroup> for GroupRecord {
    type Error = ParseError;

    fn try_from(sg: &ec2::SecurityGroup) -> Result<Self, ParseError> {
        let id = sg.group_id().ok_or_else(|| ParseError("a security group without GroupId".into()))?.to_string();
        let record = GroupRecord {
            name: sg.group_name().unwrap_or_default().to_string(),
            description: sg.description().unwrap_or_default().to_string(),
            owner_id: sg.owner_id().map(str::to_string),
            vpc_id: sg.vpc_id().map(str::to_string),
            tags: tags(sg.tags()),
            rules: Vec::new(),
            id: id.clone(),
        };
        record
            .with_permissions(&raw_permissions(sg.ip_permissions()), &raw_permissions(sg.ip_permissions_egress()))
            .map_err(|e| ParseError(format!("{id}: {}", e.0)))
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

/// An account of AWS Organizations: its id, and whether it is active (its role can be
/// assumed). `State` is the current field; `Status`, deprecated, is all older answers carry.
pub fn organization_account(a: &aws_sdk_organizations::types::Account) -> Option<(String, bool)> {
    use aws_sdk_organizations::types::{AccountState, AccountStatus};
    let active = match (a.state(), a.status()) {
        (Some(state), _) => *state == AccountState::Active,
        (None, Some(status)) => *status == AccountStatus::Active,
        (None, None) => false,
    };
    Some((a.id()?.to_string(), active))
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
            // A REST API's 404 whose body names no error (a proxy's or an emulator's page):
            // the resource is not there all the same.
            None if status == Some(404) => {
                SourceError::NotFound(format!("{operation}: HTTP 404 without an error code"))
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
    use crate::model::Direction;
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
        assert_eq!(
            LaunchTemplateVersionInfo::from(&direct).security_group_ids,
            vec!["sg-1".to_string(), "sg-2".to_string()]
        );
        let nics = ec2::LaunchTemplateVersion::builder()
            .launch_template_data(
                ec2::ResponseLaunchTemplateData::builder()
                    .network_interfaces(
                        ec2::LaunchTemplateInstanceNetworkInterfaceSpecification::builder().groups("sg-3").build(),
                    )
                    .build(),
            )
            .build();
        assert_eq!(LaunchTemplateVersionInfo::from(&nics).security_group_ids, vec!["sg-3".to_string()]);
        assert!(LaunchTemplateVersionInfo::from(&ec2::LaunchTemplateVersion::builder().build())
            .security_group_ids
            .is_empty());
    }

    #[test]
    fn route_tables_keep_their_main_flag_subnets_and_the_target_of_each_route() {
        let table = ec2::RouteTable::builder()
            .route_table_id("rtb-1")
            .vpc_id("vpc-1")
            .associations(ec2::RouteTableAssociation::builder().subnet_id("subnet-a").build())
            .associations(ec2::RouteTableAssociation::builder().main(true).build())
            .routes(ec2::Route::builder().destination_cidr_block("10.0.0.0/16").gateway_id("local").build())
            .routes(
                ec2::Route::builder()
                    .destination_cidr_block("0.0.0.0/0")
                    .nat_gateway_id("nat-1")
                    .state(ec2::RouteState::Blackhole)
                    .build(),
            )
            .routes(
                ec2::Route::builder()
                    .destination_ipv6_cidr_block("::/0")
                    .egress_only_internet_gateway_id("eigw-1")
                    .build(),
            )
            .build();
        let t = RouteTableInfo::from(&table);
        assert!(t.main);
        assert_eq!(t.subnet_ids, vec!["subnet-a".to_string()]);
        let got: Vec<(String, Option<&str>, Option<&str>)> = t
            .routes
            .iter()
            .map(|r| {
                (r.destination.map(|d| d.to_string()).unwrap_or_default(), r.target.as_deref(), r.state.as_deref())
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("10.0.0.0/16".to_string(), Some("local"), None),
                ("0.0.0.0/0".to_string(), Some("nat-1"), Some("blackhole")),
                ("::/0".to_string(), Some("eigw-1"), None),
            ]
        );
    }

    #[test]
    fn endpoints_and_vpcs_keep_the_names_and_states_aws_gives_them() {
        let e = ec2::VpcEndpoint::builder()
            .vpc_endpoint_id("vpce-1")
            .service_name("com.amazonaws.eu-west-1.ec2")
            .vpc_endpoint_type(ec2::VpcEndpointType::GatewayLoadBalancer)
            .state(ec2::State::Deleted)
            .private_dns_enabled(true)
            .groups(ec2::SecurityGroupIdentifier::builder().group_id("sg-9").build())
            .build();
        let e = VpcEndpointInfo::from(&e);
        // The SDK spells the state as its enum does ("Deleted"); assemble compares it case-blind.
        assert_eq!((e.endpoint_type.as_str(), e.state.as_deref()), ("GatewayLoadBalancer", Some("Deleted")));
        assert_eq!(e.security_group_ids, vec!["sg-9".to_string()]);
        let vpc = ec2::Vpc::builder()
            .vpc_id("vpc-1")
            .cidr_block("10.0.0.0/16")
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
        let v = VpcInfo::from(&vpc);
        assert_eq!(v.primary, "10.0.0.0/16".parse().ok());
        assert_eq!(
            v.ipv4,
            vec![CidrBlock { cidr: "10.1.0.0/16".parse().unwrap(), state: Some("disassociated".into()) }]
        );
        assert_eq!(v.ipv6, vec![CidrBlock { cidr: "2600:1f18::/56".parse().unwrap(), state: None }]);
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

    /// An EFA instance with a custom-networking secondary ENI, as the SDK hands it over and as
    /// `aws ec2 describe-instances --output json` prints it: the same raw shape either way.
    #[test]
    fn an_instances_interfaces_convert_alike_from_the_sdk_and_from_the_cli() {
        let group = |id: &str| ec2::GroupIdentifier::builder().group_id(id).group_name(id).build();
        let nic = |index: i32, kind: &str, subnet: &str, groups: &[&str]| {
            let mut b = ec2::InstanceNetworkInterface::builder()
                .attachment(ec2::InstanceNetworkInterfaceAttachment::builder().device_index(index).build())
                .interface_type(kind)
                .subnet_id(subnet);
            for g in groups {
                b = b.groups(group(g));
            }
            b.build()
        };
        let sdk = ec2::Instance::builder()
            .instance_id("i-efa")
            .subnet_id("subnet-node")
            .security_groups(group("sg-node"))
            .security_groups(group("sg-efa"))
            .network_interfaces(nic(0, "efa", "subnet-node", &["sg-node", "sg-efa"]))
            .network_interfaces(nic(1, "interface", "subnet-pods", &["sg-pods"]))
            .tags(ec2::Tag::builder().key("karpenter.sh/nodepool").value("training").build())
            .build();
        let cli = r#"{"Reservations": [{"Instances": [{"InstanceId": "i-efa", "SubnetId": "subnet-node",
            "SecurityGroups": [{"GroupId": "sg-node", "GroupName": "sg-node"}, {"GroupId": "sg-efa", "GroupName": "sg-efa"}],
            "NetworkInterfaces": [
              {"Attachment": {"DeviceIndex": 0}, "InterfaceType": "efa", "SubnetId": "subnet-node",
               "Groups": [{"GroupId": "sg-node", "GroupName": "sg-node"}, {"GroupId": "sg-efa", "GroupName": "sg-efa"}]},
              {"Attachment": {"DeviceIndex": 1}, "InterfaceType": "interface", "SubnetId": "subnet-pods",
               "Groups": [{"GroupId": "sg-pods", "GroupName": "sg-pods"}]}],
            "Tags": [{"Key": "karpenter.sh/nodepool", "Value": "training"}]}]}]}"#;
        let from_sdk = InstanceInfo::from(&sdk);
        assert_eq!(vec![from_sdk.clone()], crate::source::files::instances_from_cli(cli));
        assert_eq!(from_sdk.interfaces[0].interface_type.as_deref(), Some("efa"));
        assert_eq!(from_sdk.interfaces[1].device_index, Some(1));
        assert_eq!(from_sdk.security_group_ids, ["sg-efa", "sg-node", "sg-pods"]);
    }
}
