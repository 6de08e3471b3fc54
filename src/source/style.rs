//! Which tool laid out a cluster's groups (reference §2–§4), from names, descriptions and tags.
//! Shared by the `aws` and `files` sources.

use std::collections::BTreeMap;

use crate::model::{Role, SecurityGroup, Style};

/// Tag keys eksctl puts on every resource of its CloudFormation stacks (reference §4.2).
const EKSCTL_CLUSTER_TAGS: [&str; 2] = ["alpha.eksctl.io/cluster-name", "eksctl.cluster.k8s.io/v1alpha1/cluster-name"];

/// The description EKS gives the cluster security group (reference §2.1).
const EKS_CLUSTER_SG_DESCRIPTION: &str =
    "EKS created security group applied to ENI that is attached to EKS Control Plane master nodes, as well as any managed workloads.";

/// Detects the management style from the cluster's groups (and the cluster's own tags).
///
/// The evidence is checked from the most specific to the least: eksctl stamps every resource
/// with its stack tags, terraform-aws-eks names groups after the cluster, and a console cluster
/// is recognised by AWS's CloudFormation templates or by carrying nothing but what EKS created.
/// Endpoint groups are ignored for the "only EKS-created" test: whoever made the cluster, VPC
/// endpoints are often someone else's.
pub fn detect<'a>(
    cluster_name: &str,
    cluster_tags: &BTreeMap<String, String>,
    groups: impl IntoIterator<Item = &'a SecurityGroup>,
) -> Style {
    let groups: Vec<&SecurityGroup> = groups.into_iter().collect();
    if is_eksctl(cluster_name, cluster_tags, &groups) {
        Style::Eksctl
    } else if is_terraform(cluster_name, cluster_tags, &groups) {
        Style::Terraform
    } else if is_console(&groups) {
        Style::Console
    } else {
        Style::Unknown
    }
}

fn is_eksctl(cluster: &str, cluster_tags: &BTreeMap<String, String>, groups: &[&SecurityGroup]) -> bool {
    let stack_prefix = format!("eksctl-{cluster}-");
    let tagged = |tags: &BTreeMap<String, String>| {
        EKSCTL_CLUSTER_TAGS.iter().any(|k| tags.get(*k).is_some_and(|v| v == cluster))
            || tags.get("aws:cloudformation:stack-name").is_some_and(|s| s.starts_with("eksctl-"))
    };
    tagged(cluster_tags)
        || groups.iter().any(|g| {
            tagged(&g.tags)
                || g.tag("Name").is_some_and(|n| n.starts_with(&stack_prefix) && n.contains('/'))
                || g.name.starts_with(&stack_prefix)
        })
}

fn is_terraform(cluster: &str, cluster_tags: &BTreeMap<String, String>, groups: &[&SecurityGroup]) -> bool {
    // Only ever set by terraform-aws-modules; `eks` on the cluster since v20.
    let module_tag = |tags: &BTreeMap<String, String>| tags.contains_key("terraform-aws-modules");
    if module_tag(cluster_tags) {
        return true;
    }
    let cluster_group = format!("{cluster}-cluster");
    let node_group = format!("{cluster}-node");
    let named = |g: &SecurityGroup, base: &str| {
        g.name == base
            || g.name.strip_prefix(base).is_some_and(|rest| rest.starts_with('-'))
            || g.tag("Name") == Some(base)
    };
    groups.iter().any(|g| {
        module_tag(&g.tags)
            // v18 and later.
            || (g.description == "EKS cluster security group" && named(g, &cluster_group))
            || (g.description == "EKS node shared security group" && named(g, &node_group))
            // v17 and earlier.
            || g.tag("Name") == Some(&format!("{cluster}-eks_cluster_sg"))
            || g.tag("Name") == Some(&format!("{cluster}-eks_worker_sg"))
    })
}

fn is_console(groups: &[&SecurityGroup]) -> bool {
    // AWS's getting-started VPC template and its self-managed node template (reference §2.2).
    let aws_template = groups.iter().any(|g| {
        g.description == "Cluster communication with worker nodes"
            || g.description == "Security group for all nodes in the cluster"
    });
    if aws_template {
        return true;
    }
    let mut tool_groups = groups.iter().filter(|g| g.primary_role() != Role::Endpoint).peekable();
    tool_groups.peek().is_some() && tool_groups.all(|g| is_eks_created(g))
}

fn is_eks_created(g: &SecurityGroup) -> bool {
    g.name.starts_with("eks-cluster-sg-")
        || g.name.starts_with("eks-remoteAccess-")
        || g.description == EKS_CLUSTER_SG_DESCRIPTION
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(name: &str, description: &str, role: Role, tags: &[(&str, &str)]) -> SecurityGroup {
        SecurityGroup {
            id: format!("sg-{:017x}", name.len()),
            name: name.to_string(),
            description: description.to_string(),
            owner_id: Some("111122223333".into()),
            vpc_id: Some("vpc-0f2a6c1e9b8d74a31".into()),
            tags: tags.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            roles: [role].into(),
            rules: Vec::new(),
        }
    }

    fn cluster_sg(cluster: &str) -> SecurityGroup {
        let name = format!("eks-cluster-sg-{cluster}-1386219012");
        group(
            &name,
            EKS_CLUSTER_SG_DESCRIPTION,
            Role::Cluster,
            &[
                ("Name", &name),
                ("aws:eks:cluster-name", cluster),
                (&format!("kubernetes.io/cluster/{cluster}"), "owned"),
            ],
        )
    }

    fn tags(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn each_tool_is_recognised_from_the_groups_it_creates() {
        let c = "prod";
        let cases: Vec<(&str, BTreeMap<String, String>, Vec<SecurityGroup>, Style)> = vec![
            (
                "eksctl stack tag on the shared node group",
                tags(&[]),
                vec![
                    cluster_sg(c),
                    group(
                        "eksctl-prod-cluster-ClusterSharedNodeSecurityGroup-1V8NQXK5ZK3L0",
                        "Communication between all nodes in the cluster",
                        Role::Node,
                        &[
                            ("alpha.eksctl.io/cluster-name", "prod"),
                            ("aws:cloudformation:stack-name", "eksctl-prod-cluster"),
                        ],
                    ),
                ],
                Style::Eksctl,
            ),
            (
                "eksctl v1alpha1 tag alone",
                tags(&[]),
                vec![group("cp", "x", Role::ControlPlane, &[("eksctl.cluster.k8s.io/v1alpha1/cluster-name", "prod")])],
                Style::Eksctl,
            ),
            (
                "eksctl Name tag alone",
                tags(&[]),
                vec![group(
                    "cp",
                    "x",
                    Role::ControlPlane,
                    &[("Name", "eksctl-prod-cluster/ControlPlaneSecurityGroup")],
                )],
                Style::Eksctl,
            ),
            (
                "eksctl stack name alone",
                tags(&[]),
                vec![group(
                    "ssh",
                    "Allow SSH access",
                    Role::RemoteAccess,
                    &[("aws:cloudformation:stack-name", "eksctl-prod-nodegroup-ng-1")],
                )],
                Style::Eksctl,
            ),
            (
                "eksctl tags on the cluster only",
                tags(&[("alpha.eksctl.io/cluster-name", "prod")]),
                vec![cluster_sg(c)],
                Style::Eksctl,
            ),
            (
                "terraform-aws-eks v19+ prefixed names and descriptions",
                tags(&[]),
                vec![
                    cluster_sg(c),
                    group(
                        "prod-cluster-20240611091517380300000002",
                        "EKS cluster security group",
                        Role::ControlPlane,
                        &[("Name", "prod-cluster")],
                    ),
                    group(
                        "prod-node-20240611091517380300000003",
                        "EKS node shared security group",
                        Role::Node,
                        &[("Name", "prod-node")],
                    ),
                ],
                Style::Terraform,
            ),
            (
                "terraform-aws-eks without name prefixes",
                tags(&[]),
                vec![group("prod-node", "EKS node shared security group", Role::Node, &[])],
                Style::Terraform,
            ),
            (
                "terraform-aws-eks v17 Name tag",
                tags(&[]),
                vec![group(
                    "prod2021110309",
                    "EKS cluster security group.",
                    Role::ControlPlane,
                    &[("Name", "prod-eks_cluster_sg")],
                )],
                Style::Terraform,
            ),
            (
                "terraform-aws-modules tag on the cluster",
                tags(&[("terraform-aws-modules", "eks")]),
                vec![cluster_sg(c)],
                Style::Terraform,
            ),
            (
                "AWS VPC template control-plane group",
                tags(&[]),
                vec![
                    cluster_sg(c),
                    group(
                        "prod-vpc-ControlPlaneSecurityGroup-1OEQ7K2J8Z8LS",
                        "Cluster communication with worker nodes",
                        Role::ControlPlane,
                        &[("aws:cloudformation:stack-name", "prod-vpc")],
                    ),
                ],
                Style::Console,
            ),
            (
                "AWS node template group",
                tags(&[]),
                vec![group(
                    "prod-nodes-NodeSecurityGroup-9ZJ2",
                    "Security group for all nodes in the cluster",
                    Role::Node,
                    &[],
                )],
                Style::Console,
            ),
            (
                "only EKS-created groups, endpoint groups aside",
                tags(&[]),
                vec![
                    cluster_sg(c),
                    group(
                        "eks-remoteAccess-6ac6e2f4-0b4c-7a1e-3f3b-1d2a9c1c7e55",
                        "Security group for all nodes in the nodeGroup to allow SSH access",
                        Role::RemoteAccess,
                        &[],
                    ),
                    group("vpce-https", "HTTPS to the VPC endpoints", Role::Endpoint, &[]),
                ],
                Style::Console,
            ),
            (
                "a hand-made node group next to the cluster group",
                tags(&[]),
                vec![cluster_sg(c), group("platform-workers", "workers", Role::Node, &[])],
                Style::Unknown,
            ),
            ("no groups at all", tags(&[]), vec![], Style::Unknown),
            (
                "another cluster's terraform names do not count",
                tags(&[]),
                vec![group(
                    "staging-node-20240611091517380300000003",
                    "EKS node shared security group",
                    Role::Node,
                    &[],
                )],
                Style::Unknown,
            ),
            (
                "another cluster's eksctl tag does not count",
                tags(&[]),
                vec![group("shared", "x", Role::Node, &[("alpha.eksctl.io/cluster-name", "staging")])],
                Style::Unknown,
            ),
            (
                "eksctl wins over a copied terraform tag",
                tags(&[("terraform-aws-modules", "eks"), ("alpha.eksctl.io/cluster-name", "prod")]),
                vec![cluster_sg(c)],
                Style::Eksctl,
            ),
        ];
        for (case, cluster_tags, groups, want) in cases {
            assert_eq!(detect(c, &cluster_tags, &groups), want, "{case}");
        }
    }
}
