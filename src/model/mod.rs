//! Plain data the rest of sgdrift speaks: rules, peers, security groups, cluster snapshots
//! and findings. Nothing here does I/O.

mod coverage;
mod finding;
mod flow;
mod normalize;
mod peer;
mod rule;
mod snapshot;

pub(crate) use coverage::IdKey;
pub use coverage::{peer_covers, traffic_union_covers, union_covers};
pub use finding::{
    finding_id, ChangedBy, EndpointService, Finding, FindingKind, FindingPeer, Remediation, RemediationAction, Severity,
};
pub use flow::FlowName;
pub use normalize::{canonicalize, normalize, traffic_from_ec2, RawPeer, RawPermission};
pub use peer::Peer;
pub use rule::{Direction, IcmpMatch, ParseError, PortRange, Rule, RuleText, Traffic};
pub use snapshot::{
    ClusterId, ClusterSnapshot, DataPlane, EfaSet, EndpointMode, IpFamily, NodeGroup, NodeGroupKind, PeerGroup,
    PodSgEnforcingMode, RemoteNetwork, Role, RouteOut, SecurityGroup, Style, VpcEndpoint, VpcEndpointKind,
};
