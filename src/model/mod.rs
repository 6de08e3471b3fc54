//! Plain data the rest of sgdrift speaks: rules, peers, security groups, cluster snapshots
//! and findings. Nothing here does I/O.

mod coverage;
mod finding;
mod normalize;
mod peer;
mod rule;
mod snapshot;

pub use coverage::{peer_covers, traffic_union_covers, union_covers};
pub use finding::{finding_id, Finding, FindingKind, Severity};
pub use normalize::{canonicalize, normalize, RawPeer, RawPermission};
pub use peer::Peer;
pub use rule::{Direction, IcmpMatch, ParseError, PortRange, Rule, Traffic};
pub use snapshot::{
    ClusterId, ClusterSnapshot, EndpointMode, IpFamily, NodeGroup, NodeGroupKind, PeerGroup, RemoteNetwork, Role,
    RouteOut, SecurityGroup, Style, VpcEndpoint, VpcEndpointKind,
};
