//! Guardrails (design.md §2): a few internet-facing rules that no baseline approves silently.
//! `check` reports them whatever the baseline lists, unless an `[[exceptions]]` entry covers
//! them; `record` writes them commented out.

use crate::model::{Direction, PortRange, Rule, Traffic};

/// One invariant. The order is the order reasons name them in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Guardrail {
    /// Every protocol and port (`-1`) from the internet.
    AllTraffic,
    Ssh,
    Rdp,
    /// The kubelet API: exec, logs and, unauthenticated, much more.
    Kubelet,
    /// etcd's client and peer ports; nothing on an EKS node should serve them to the world.
    Etcd,
    NodePort,
}

impl Guardrail {
    pub const ALL: [Guardrail; 6] = [
        Guardrail::AllTraffic,
        Guardrail::Ssh,
        Guardrail::Rdp,
        Guardrail::Kubelet,
        Guardrail::Etcd,
        Guardrail::NodePort,
    ];

    /// What the reason calls it.
    pub fn label(self) -> &'static str {
        match self {
            Guardrail::AllTraffic => "all traffic",
            Guardrail::Ssh => "SSH",
            Guardrail::Rdp => "RDP",
            Guardrail::Kubelet => "the kubelet API",
            Guardrail::Etcd => "etcd",
            Guardrail::NodePort => "NodePorts",
        }
    }

    /// The (tcp, udp) ports the guardrail watches; `None` where the protocol is not watched.
    fn ports(self) -> (Option<PortRange>, Option<PortRange>) {
        let range = |a, b| PortRange::new(a, b).ok();
        match self {
            Guardrail::AllTraffic => (None, None),
            Guardrail::Ssh => (range(22, 22), None),
            // RDP 8.0+ also carries its transport over UDP 3389.
            Guardrail::Rdp => (range(3389, 3389), range(3389, 3389)),
            Guardrail::Kubelet => (range(10250, 10250), None),
            Guardrail::Etcd => (range(2379, 2380), None),
            // Kubernetes' default service-node-port-range; NodePort services may be UDP.
            Guardrail::NodePort => (range(30000, 32767), range(30000, 32767)),
        }
    }

    fn crossed_by(self, traffic: &Traffic) -> bool {
        let overlaps = |watched: Option<PortRange>, r: &PortRange| {
            watched.is_some_and(|w| w.from() <= r.to() && r.from() <= w.to())
        };
        let (tcp, udp) = self.ports();
        match traffic {
            Traffic::All => self == Guardrail::AllTraffic,
            Traffic::Tcp(r) => overlaps(tcp, r),
            Traffic::Udp(r) => overlaps(udp, r),
            Traffic::Icmp(_) | Traffic::Icmpv6(_) | Traffic::Other(_) => false,
        }
    }
}

/// The guardrails `rule` crosses: ingress from `0.0.0.0/0` or `::/0` on a watched port (or on
/// everything). Empty for any other rule.
pub fn crossed(rule: &Rule) -> Vec<Guardrail> {
    if rule.direction != Direction::Ingress || !rule.peer.is_internet() {
        return Vec::new();
    }
    Guardrail::ALL.into_iter().filter(|g| g.crossed_by(&rule.traffic)).collect()
}

/// The finding reason for a rule that crosses guardrails: `guardrail: SSH open to the internet`.
pub fn reason(rule: &Rule) -> Option<String> {
    let crossed = crossed(rule);
    let labels: Vec<&str> = crossed.iter().map(|g| g.label()).collect();
    let list = match labels.as_slice() {
        [] => return None,
        [one] => (*one).to_string(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    };
    Some(format!("guardrail: {list} open to the internet"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Peer;

    fn rule(direction: Direction, protocol: &str, ports: Option<&str>, peer: &str) -> Rule {
        Rule::new(direction, Traffic::parse(protocol, ports).unwrap(), Peer::parse(peer).unwrap())
    }

    #[test]
    fn internet_ingress_on_a_watched_port_crosses_its_guardrail_and_nothing_else_does() {
        use Direction::{Egress, Ingress};
        let cases: [(Direction, &str, Option<&str>, &str, Option<&str>); 20] = [
            (Ingress, "tcp", Some("22"), "0.0.0.0/0", Some("guardrail: SSH open to the internet")),
            (Ingress, "tcp", Some("22"), "::/0", Some("guardrail: SSH open to the internet")),
            (Ingress, "tcp", Some("3389"), "0.0.0.0/0", Some("guardrail: RDP open to the internet")),
            (Ingress, "udp", Some("3389"), "::/0", Some("guardrail: RDP open to the internet")),
            (Ingress, "tcp", Some("10250"), "0.0.0.0/0", Some("guardrail: the kubelet API open to the internet")),
            (Ingress, "tcp", Some("2380"), "0.0.0.0/0", Some("guardrail: etcd open to the internet")),
            (Ingress, "tcp", Some("30080"), "0.0.0.0/0", Some("guardrail: NodePorts open to the internet")),
            (Ingress, "udp", Some("32000-40000"), "0.0.0.0/0", Some("guardrail: NodePorts open to the internet")),
            (Ingress, "all", None, "0.0.0.0/0", Some("guardrail: all traffic open to the internet")),
            (Ingress, "all", None, "::/0", Some("guardrail: all traffic open to the internet")),
            (Ingress, "tcp", Some("0-1024"), "0.0.0.0/0", Some("guardrail: SSH open to the internet")),
            (
                Ingress,
                "tcp",
                Some("all"),
                "0.0.0.0/0",
                Some("guardrail: SSH, RDP, the kubelet API, etcd and NodePorts open to the internet"),
            ),
            (Ingress, "tcp", Some("2000-3000"), "::/0", Some("guardrail: etcd open to the internet")),
            // Not watched: other ports, ICMP, narrower peers, egress.
            (Ingress, "tcp", Some("443"), "0.0.0.0/0", None),
            (Ingress, "udp", Some("22"), "0.0.0.0/0", None),
            (Ingress, "udp", Some("10250"), "0.0.0.0/0", None),
            (Ingress, "icmp", Some("all"), "0.0.0.0/0", None),
            (Ingress, "tcp", Some("22"), "0.0.0.0/1", None),
            (Ingress, "all", None, "10.0.0.0/8", None),
            (Egress, "all", None, "0.0.0.0/0", None),
        ];
        for (direction, protocol, ports, peer, want) in cases {
            let r = rule(direction, protocol, ports, peer);
            assert_eq!(reason(&r).as_deref(), want, "{r}");
            assert_eq!(crossed(&r).is_empty(), want.is_none(), "{r}");
        }
    }
}
