//! Baselines: the expected rules per role, from built-in profiles or files, and their
//! resolution against one cluster's snapshot. Exceptions live here too.

mod exceptions;
mod format;
mod profiles;
mod record;
mod resolve;

use std::fmt;

use crate::model::{Direction, EndpointMode, ParseError, Peer, Role, Style, Traffic};

pub use exceptions::{Exception, ExceptionMatch};
pub use format::{load_file, parse_str, to_toml, BaselineError};
pub use profiles::{builtin, PROFILES};
pub use record::record;
pub use resolve::{resolve, ResolveContext, ResolvedBaseline, ResolvedRule};

/// A baseline rule's peer, named the way baselines name them.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PeerSpec {
    Concrete(Peer),
    /// Every group of this role in the cluster.
    Role(Role),
    /// The group holding the rule.
    SelfRef,
    /// Every CIDR of the cluster's VPC.
    VpcCidr,
    /// A managed prefix list by name (`com.amazonaws.eu-west-1.s3`); the id is looked up.
    PrefixListName(String),
    /// The AWS-managed S3 prefix list of the cluster's region (gateway endpoint).
    S3PrefixList,
}

impl PeerSpec {
    /// `role:<r>`, `self`, `vpc-cidr`, `cidr:<v4|v6>`, `prefix-list:<pl-id|name>`, `sg:<id>`,
    /// `sg:<account>/<id>`; a bare CIDR, `pl-…` or `sg-…` is accepted as well.
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let s = s.trim();
        if s == "self" {
            return Ok(PeerSpec::SelfRef);
        }
        if s == "vpc-cidr" {
            return Ok(PeerSpec::VpcCidr);
        }
        if s == "prefix-list:s3" {
            return Ok(PeerSpec::S3PrefixList);
        }
        if let Some(r) = s.strip_prefix("role:") {
            return Role::parse(r).map(PeerSpec::Role);
        }
        if let Some(c) = s.strip_prefix("cidr:") {
            return match Peer::parse(c)? {
                p @ (Peer::Ipv4(_) | Peer::Ipv6(_)) => Ok(PeerSpec::Concrete(p)),
                _ => Err(ParseError(format!("`{s}` is not a CIDR"))),
            };
        }
        if let Some(p) = s.strip_prefix("prefix-list:") {
            return Ok(if p.starts_with("pl-") {
                PeerSpec::Concrete(Peer::PrefixList(p.to_string()))
            } else {
                PeerSpec::PrefixListName(p.to_string())
            });
        }
        if let Some(g) = s.strip_prefix("sg:") {
            return match Peer::parse(g)? {
                p @ Peer::Group { .. } => Ok(PeerSpec::Concrete(p)),
                _ => Err(ParseError(format!("`{s}` is not a security group id (sg-…)"))),
            };
        }
        Peer::parse(s).map(PeerSpec::Concrete).map_err(|_| {
            ParseError(format!(
                "bad peer `{s}`: expected role:<role>, self, vpc-cidr, cidr:<cidr>, prefix-list:<pl-id|name>, or sg:<id>"
            ))
        })
    }
}

impl fmt::Display for PeerSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PeerSpec::Concrete(p @ (Peer::Ipv4(_) | Peer::Ipv6(_))) => write!(f, "cidr:{p}"),
            PeerSpec::Concrete(p @ Peer::PrefixList(_)) => write!(f, "prefix-list:{p}"),
            PeerSpec::Concrete(p @ Peer::Group { .. }) => write!(f, "sg:{p}"),
            PeerSpec::Role(r) => write!(f, "role:{r}"),
            PeerSpec::SelfRef => f.write_str("self"),
            PeerSpec::VpcCidr => f.write_str("vpc-cidr"),
            PeerSpec::PrefixListName(n) => write!(f, "prefix-list:{n}"),
            PeerSpec::S3PrefixList => f.write_str("prefix-list:s3"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RuleStatus {
    /// Must be present: gone is drift (`missing`).
    Required,
    /// May be present: not drift when present, not drift when absent.
    Allowed,
}

/// One rule of a baseline, before resolution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaselineRule {
    pub role: Role,
    /// Narrows the rule to one group of the role, by id or name (recorded baselines of clusters
    /// with several groups of one role).
    pub group: Option<String>,
    pub direction: Direction,
    pub traffic: Traffic,
    pub peer: PeerSpec,
    pub status: RuleStatus,
    pub why: Option<String>,
    /// The source key the rule rests on (reference §0: `D-2022b`, `TF`, `EKSCTL`, …).
    pub source: Option<String>,
}

/// A whole baseline: built-in or loaded from a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Baseline {
    /// Where it came from, for messages: `builtin:eks-minimal` or a path.
    pub origin: String,
    /// A file may extend a built-in profile: the profile's rules (for the cluster's mode and
    /// style) are added to the file's.
    pub profile: Option<String>,
    pub rules: Vec<BaselineRule>,
}

/// What a target's `baseline` names: a built-in profile (rules depend on each cluster's mode and
/// style) or a loaded file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BaselineRef {
    Profile(String),
    File(Baseline),
}

impl BaselineRef {
    /// The concrete rules for one cluster: a profile's variant for its mode and style, or the
    /// file's rules plus those of the profile it extends.
    pub fn for_cluster(&self, mode: EndpointMode, style: Style) -> Baseline {
        match self {
            BaselineRef::Profile(p) => builtin(p, mode, style).expect("profile names are checked at load"),
            BaselineRef::File(b) => {
                let mut out = b.clone();
                if let Some(p) = &b.profile {
                    if let Some(base) = builtin(p, mode, style) {
                        out.rules.extend(base.rules);
                    }
                }
                out
            }
        }
    }
}
