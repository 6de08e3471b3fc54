//! The names of the required flows of design.md §2, shared by the flow checker and findings.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The required flows of design.md §2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FlowName {
    Kubelet,
    Api,
    Dns,
    Webhooks,
    AwsApis,
    /// Pods with their own SGs (branch ENIs) → CoreDNS on the nodes.
    PodDns,
    /// Kubelets on the nodes → pods with their own SGs (liveness and readiness probes).
    PodProbes,
    /// All traffic within the EFA SG set of a node group with EFA interfaces.
    Efa,
}

impl FlowName {
    pub const ALL: [FlowName; 8] = [
        FlowName::Kubelet,
        FlowName::Api,
        FlowName::Dns,
        FlowName::Webhooks,
        FlowName::AwsApis,
        FlowName::PodDns,
        FlowName::PodProbes,
        FlowName::Efa,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FlowName::Kubelet => "kubelet",
            FlowName::Api => "api",
            FlowName::Dns => "dns",
            FlowName::Webhooks => "webhooks",
            FlowName::AwsApis => "aws-apis",
            FlowName::PodDns => "pod-dns",
            FlowName::PodProbes => "pod-probes",
            FlowName::Efa => "efa",
        }
    }

    pub fn parse(s: &str) -> Result<Self, super::ParseError> {
        FlowName::ALL.into_iter().find(|n| n.as_str() == s).ok_or_else(|| {
            let names: Vec<&str> = FlowName::ALL.iter().map(|n| n.as_str()).collect();
            super::ParseError(format!("unknown flow `{s}`: expected one of {}", names.join(", ")))
        })
    }
}

impl fmt::Display for FlowName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_flow_name_parses_back_from_its_text_and_its_json() {
        for name in FlowName::ALL {
            assert_eq!(FlowName::parse(name.as_str()), Ok(name));
            let json = serde_json::to_string(&name).expect("serializes");
            assert_eq!(json, format!("\"{name}\""));
        }
        assert!(FlowName::parse("ssh").expect_err("refused").0.contains("expected one of kubelet, api"));
    }
}
