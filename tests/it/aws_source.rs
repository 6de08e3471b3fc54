//! The `aws` source against a real local AWS (moto server) and against canned AWS answers for
//! what moto cannot do (EC2 pagination, throttling, access denied, timeouts).
//!
//! One moto server serves the whole binary; each test keeps to its own region (or account), so
//! tests run side by side without resetting it.

use crate::support::moto;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use sgdrift::model::{
    ClusterSnapshot, Direction, EndpointMode, IpFamily, NodeGroupKind, Peer, PortRange, Role, RouteOut, Rule, Traffic,
    VpcEndpointKind,
};
use sgdrift::source::aws::{AwsOptions, AwsSource};
use sgdrift::source::files::FilesSource;
use sgdrift::source::{ClusterPoll, TargetPoll, TargetSpec};

const HOUR: Duration = Duration::from_secs(3600);

fn options(metadata_interval: Duration) -> AwsOptions {
    AwsOptions { metadata_interval, eks_concurrency: 4, max_attempts: Some(1), ..AwsOptions::default() }
}

fn target(region: &str, role_arn: Option<&str>) -> TargetSpec {
    TargetSpec { region: region.to_string(), role_arn: role_arn.map(str::to_string), clusters: vec!["*".to_string()] }
}

fn snapshots(poll: TargetPoll) -> BTreeMap<String, ClusterSnapshot> {
    assert!(poll.error.is_none(), "the target failed: {:?}", poll.error);
    poll.clusters
        .into_iter()
        .map(|c| {
            let name = c.id.name.clone();
            let snap = c.result.unwrap_or_else(|e| panic!("cluster {name} failed: {e}"));
            (name, snap)
        })
        .collect()
}

fn count(source: &AwsSource, action: &str) -> u64 {
    source.call_counts().get(action).copied().unwrap_or(0)
}

/// The `sg-…` ids a list of warnings mentions.
fn ids_in_warnings(warnings: &[String]) -> BTreeSet<String> {
    warnings
        .iter()
        .flat_map(|w| w.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-')))
        .filter(|t| t.starts_with("sg-"))
        .map(str::to_string)
        .collect()
}

// --- the styles fixture: one cluster per style × endpoint mode, exported as AWS CLI JSON -------

struct Styles {
    manifest: serde_json::Value,
    dir: PathBuf,
}

const STYLES_REGION: &str = "eu-west-1";

/// Builds one scenario of build.py in `region`, with its AWS CLI export in a directory of its own.
fn build_scenario(scenario: &str, region: &str) -> Styles {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("aws-source-{scenario}"));
    let _ = std::fs::remove_dir_all(&dir);
    let manifest = moto::server_for(module_path!()).build_fixture(&[
        "--region",
        region,
        "--scenario",
        scenario,
        "--out",
        &moto::path_of(&dir),
    ]);
    Styles { manifest, dir }
}

/// Built once per binary; tests only read it.
fn styles() -> &'static Styles {
    static STYLES: OnceLock<Styles> = OnceLock::new();
    STYLES.get_or_init(|| build_scenario("styles", STYLES_REGION))
}

#[tokio::test]
async fn every_style_and_endpoint_mode_is_read_with_its_roles_node_groups_and_endpoints() {
    let fx = styles();
    let source = AwsSource::from_sdk_config(moto::server_for(module_path!()).sdk_config(STYLES_REGION), options(HOUR));
    let snaps = snapshots(source.poll(&target(STYLES_REGION, None)).await);
    let names = moto::manifest_clusters(&fx.manifest);
    assert_eq!(snaps.keys().cloned().collect::<Vec<_>>(), names, "every cluster of the region, no other");
    assert_eq!(names.len(), 9);

    for name in &names {
        let s = &snaps[name];
        let want = &fx.manifest["clusters"][name];
        assert_eq!(s.id.account_id, fx.manifest["account"].as_str().unwrap_or_default(), "{name}");
        assert_eq!(s.id.region, STYLES_REGION);
        assert_eq!(s.endpoint_mode.as_str(), want["mode"].as_str().unwrap_or_default(), "{name}: endpoint mode");
        assert_eq!(s.style.as_str(), want["style"].as_str().unwrap_or_default(), "{name}: style");
        assert_eq!(s.vpc_id, want["vpc"].as_str().unwrap_or_default(), "{name}: VPC");
        assert!(!s.vpc_cidrs.is_empty(), "{name}: the VPC's CIDRs are read");
        for role in Role::ALL {
            for id in moto::manifest_groups(&fx.manifest, name, role.as_str()) {
                let g = s.groups.get(&id).unwrap_or_else(|| panic!("{name}: {role} group {id} missing"));
                assert_eq!(g.primary_role(), role, "{name}: role of {id} ({})", g.name);
                assert!(!g.rules.is_empty() || role == Role::ControlPlane, "{name}: {id} has its rules");
            }
        }
        assert_eq!(
            s.cluster_security_group_id.as_deref(),
            moto::manifest_groups(&fx.manifest, name, "cluster").first().map(String::as_str)
        );
        assert_eq!(s.control_plane_security_group_ids, moto::manifest_groups(&fx.manifest, name, "control-plane"));
        // moto gives every managed node group a remote-access SG id that does not exist: it is
        // reported, not fatal.
        assert!(!s.warnings.is_empty(), "{name}: the fake remote-access SG is reported");
        let private = s.endpoint_mode == EndpointMode::Private;
        let interface = s.vpc_endpoints.iter().filter(|e| e.kind == VpcEndpointKind::Interface).count();
        let gateway = s.vpc_endpoints.iter().filter(|e| e.kind == VpcEndpointKind::Gateway).count();
        assert_eq!((interface, gateway), if private { (5, 1) } else { (0, 0) }, "{name}: VPC endpoints");
        assert!(
            s.prefix_lists.values().any(|n| n == &format!("com.amazonaws.{STYLES_REGION}.s3")),
            "{name}: the S3 prefix list is named"
        );
    }

    // Node-group sets, one per layout (reference §2-§4).
    let set = |name: &str, ng: &str| -> (NodeGroupKind, Vec<String>) {
        let g = snaps[name]
            .node_groups
            .iter()
            .find(|g| g.name == ng)
            .unwrap_or_else(|| panic!("{name}: no node group {ng}"));
        (g.kind, g.security_group_ids.clone())
    };
    let ids = |name: &str, role: &str| moto::manifest_groups(&fx.manifest, name, role);
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    // Terraform: the managed group's launch template lists the module's node SG only.
    assert_eq!(set("terraform-public", "default"), (NodeGroupKind::Managed, ids("terraform-public", "node")));
    // eksctl: managed group through its launch template's interfaces (cluster SG + SSH SG when
    // public); unmanaged group through its instances (shared + own SG).
    let mut eksctl_lt = ids("eksctl-public", "cluster");
    eksctl_lt.extend(ids("eksctl-public", "remote-access"));
    assert_eq!(eksctl_lt.len(), 2);
    assert_eq!(set("eksctl-public", "ng-managed"), (NodeGroupKind::Managed, sorted(eksctl_lt)));
    let shared_and_own = ids("eksctl-public", "node");
    assert_eq!(set("eksctl-public", "ng-self"), (NodeGroupKind::SelfManaged, sorted(shared_and_own)));
    // Console: a managed group without a launch template gets the cluster SG + its
    // remote-access SG; the CloudFormation nodes carry the template's node SG.
    let (kind, managed) = set("console-public", "managed");
    assert_eq!(kind, NodeGroupKind::Managed);
    assert!(managed.contains(&ids("console-public", "cluster")[0]) && managed.len() == 2, "{managed:?}");
    let self_managed: Vec<_> =
        snaps["console-public"].node_groups.iter().filter(|g| g.kind == NodeGroupKind::SelfManaged).collect();
    assert_eq!(self_managed.len(), 1);
    assert_eq!(self_managed[0].security_group_ids, ids("console-public", "node"));
}

// --- the layouts fixture: issue 9's clusters, each rebuilt from its tool's code or docs ---------

const LAYOUTS_REGION: &str = "eu-west-3";

/// eksctl managed-only, terraform-aws-eks behind a NAT without endpoints, Karpenter on IPv6, pods
/// with their own security groups and hybrid nodes: see `LAYOUTS` in build.py for the sources.
fn layouts() -> &'static Styles {
    static LAYOUTS: OnceLock<Styles> = OnceLock::new();
    LAYOUTS.get_or_init(|| build_scenario("layouts", LAYOUTS_REGION))
}

const ENDPOINTS_REGION: &str = "eu-north-1";

/// Issue 16's endpoints: a Fargate-only cluster, hybrid nodes, two Karpenter NodePools with
/// different SGs, VPC CNI custom networking; see `ENDPOINTS` in build.py for the sources.
fn endpoints() -> &'static Styles {
    static ENDPOINTS: OnceLock<Styles> = OnceLock::new();
    ENDPOINTS.get_or_init(|| build_scenario("endpoints", ENDPOINTS_REGION))
}

#[tokio::test]
async fn the_aws_and_files_sources_give_identical_snapshots_for_every_fixture() {
    for (fx, region) in [(styles(), STYLES_REGION), (layouts(), LAYOUTS_REGION), (endpoints(), ENDPOINTS_REGION)] {
        let spec = target(region, None);
        let aws = AwsSource::from_sdk_config(moto::server_for(module_path!()).sdk_config(region), options(HOUR));
        let from_aws = snapshots(aws.poll(&spec).await);
        let from_files = snapshots(FilesSource::new(fx.dir.clone()).poll(&spec));
        assert_eq!(
            from_aws.keys().collect::<Vec<_>>(),
            moto::manifest_clusters(&fx.manifest).iter().collect::<Vec<_>>()
        );
        assert_eq!(from_aws.keys().collect::<Vec<_>>(), from_files.keys().collect::<Vec<_>>());
        for (name, a) in &from_aws {
            assert_eq!(a, &from_files[name], "{name}: the AWS snapshot (left) differs from the files one (right)");
        }
    }
}

#[tokio::test]
async fn route_tables_branch_enis_and_eksctls_shared_group_are_read_through_the_aws_source() {
    let fx = layouts();
    let aws = AwsSource::from_sdk_config(moto::server_for(module_path!()).sdk_config(LAYOUTS_REGION), options(HOUR));
    let snaps = snapshots(aws.poll(&target(LAYOUTS_REGION, None)).await);
    let ids = |name: &str, role: &str| moto::manifest_groups(&fx.manifest, name, role);

    // eksctl's default: managed node groups only; the shared node SG is on no node, named by the
    // cluster SG's rules, and a node SG all the same. Its nodes leave through a NAT gateway.
    let eksctl = &snaps["eksctl-managed"];
    let shared = &ids("eksctl-managed", "node")[0];
    assert_eq!(eksctl.groups[shared].roles.iter().copied().collect::<Vec<_>>(), [Role::Node]);
    assert!(eksctl.peer_groups.is_empty(), "{:?}", eksctl.peer_groups);
    assert_eq!(eksctl.node_groups[0].route_out_v4, RouteOut::Internet);

    // terraform-aws-eks's default: private endpoint, no interface endpoint, a NAT route.
    let tf = &snaps["terraform-nat"];
    assert_eq!(tf.endpoint_mode, EndpointMode::Private);
    assert!(tf.vpc_endpoints.is_empty());
    assert_eq!((tf.node_groups[0].route_out_v4, tf.node_groups[0].route_out_v6), (RouteOut::Internet, RouteOut::None));

    // Security groups for pods: the branch ENI's set, the pod role; hybrid nodes' networks.
    let pods = &snaps["pods"];
    let pod = ids("pods", "pod")[0].clone();
    let mut set = vec![pod.clone(), ids("pods", "cluster")[0].clone()];
    set.sort();
    assert_eq!(pods.pod_security_group_sets, vec![set]);
    assert_eq!(pods.groups[&pod].roles.iter().copied().collect::<Vec<_>>(), [Role::Pod]);
    let remote = pods.remote_network.as_ref().expect("remoteNetworkConfig is read");
    let remote = (remote.node_cidrs[0].to_string(), remote.pod_cidrs[0].to_string());
    assert_eq!(remote, (String::from("10.80.0.0/16"), String::from("10.85.0.0/16")));

    // Karpenter's nodes are their NodePool; the cluster is IPv6.
    let karpenter = &snaps["karpenter"];
    assert_eq!(karpenter.ip_family, IpFamily::Ipv6);
    let pool = karpenter.node_groups.iter().find(|g| g.kind == NodeGroupKind::Karpenter).expect("a NodePool");
    assert_eq!((pool.name.as_str(), pool.security_group_ids.clone()), ("default", ids("karpenter", "node")));
    assert_eq!(pool.route_out_v4, RouteOut::Internet);

    // A fully private eksctl cluster puts the shared node SG on its endpoints: node and endpoint.
    let private = snapshots(
        AwsSource::from_sdk_config(moto::server_for(module_path!()).sdk_config(STYLES_REGION), options(HOUR))
            .poll(&target(STYLES_REGION, None))
            .await,
    );
    let shared = moto::manifest_groups(&styles().manifest, "eksctl-private", "node")
        .into_iter()
        .find(|id| private["eksctl-private"].vpc_endpoints.iter().any(|e| e.security_group_ids.contains(id)))
        .expect("the shared node SG is on the endpoints");
    let roles: Vec<Role> = private["eksctl-private"].groups[&shared].roles.iter().copied().collect();
    assert_eq!(roles, [Role::Node, Role::Endpoint]);
    assert!(private["eksctl-private"]
        .vpc_endpoints
        .iter()
        .all(|e| e.kind == VpcEndpointKind::Gateway || e.private_dns_enabled));
}

#[tokio::test]
async fn fargate_profiles_hybrid_networks_nodepools_and_custom_networking_are_endpoints_read_from_aws() {
    let fx = endpoints();
    let aws = AwsSource::from_sdk_config(moto::server_for(module_path!()).sdk_config(ENDPOINTS_REGION), options(HOUR));
    let snaps = snapshots(aws.poll(&target(ENDPOINTS_REGION, None)).await);
    let ids = |name: &str, role: &str| moto::manifest_groups(&fx.manifest, name, role);
    let endpoints = |name: &str| -> Vec<(String, NodeGroupKind, Vec<String>)> {
        snaps[name].node_groups.iter().map(|g| (g.name.clone(), g.kind, g.security_group_ids.clone())).collect()
    };
    let cluster = |name: &str| ids(name, "cluster");
    assert_eq!(
        endpoints("fargate"),
        [
            ("fp-default".to_string(), NodeGroupKind::Fargate, cluster("fargate")),
            ("fp-kube-system".to_string(), NodeGroupKind::Fargate, cluster("fargate")),
        ]
    );
    assert_eq!(snaps["fargate"].node_groups[0].route_out_v4, RouteOut::Internet, "the profile's subnets route out");
    let nodes = ids("nodepools", "node");
    let pools: Vec<(String, NodeGroupKind, Vec<String>)> =
        endpoints("nodepools").into_iter().filter(|g| g.1 == NodeGroupKind::Karpenter).collect();
    assert_eq!(
        pools,
        [
            ("general".to_string(), NodeGroupKind::Karpenter, vec![nodes[0].clone()]),
            ("gpu".to_string(), NodeGroupKind::Karpenter, vec![nodes[1].clone()]),
        ]
    );
    let cn = ids("custom-networking", "node");
    let custom: Vec<_> = snaps["custom-networking"]
        .node_groups
        .iter()
        .map(|g| (g.name.clone(), g.kind, g.security_group_ids.clone(), g.route_out_v4))
        .collect();
    assert!(
        custom.contains(&(
            "custom-networking-workers".to_string(),
            NodeGroupKind::SelfManaged,
            vec![cn[0].clone()],
            RouteOut::Internet
        )),
        "{custom:?}"
    );
    assert!(
        custom.contains(&(
            format!("ENIConfig {}", cn[1]),
            NodeGroupKind::CustomNetworking,
            vec![cn[1].clone()],
            RouteOut::Internet
        )),
        "{custom:?}"
    );

    // Stock: every flow of every endpoint open (the terraform clusters' managed group too).
    let ctx = sgdrift::flows::FlowContext { webhook_ports: vec![9443] };
    for (name, snap) in &snaps {
        let flows = sgdrift::flows::check(snap, &ctx);
        for f in &flows {
            assert_eq!(
                f.status,
                sgdrift::flows::FlowStatus::Open,
                "{name} {} {:?}: {}",
                f.name,
                f.node_group,
                f.detail
            );
        }
        let endpoints: BTreeSet<&str> = flows.iter().filter_map(|f| f.node_group.as_deref()).collect();
        if name == "hybrid" {
            assert!(
                endpoints.contains("hybrid nodes 10.80.0.0/16") && endpoints.contains("hybrid pods 10.85.0.0/16"),
                "{endpoints:?}"
            );
        }
    }
}

#[tokio::test]
async fn metadata_is_read_once_per_interval_and_security_groups_every_poll_in_batches() {
    let fx = styles();
    let source = AwsSource::from_sdk_config(moto::server_for(module_path!()).sdk_config(STYLES_REGION), options(HOUR));
    let spec = target(STYLES_REGION, None);
    let first = snapshots(source.poll(&spec).await);
    let after_one = source.call_counts();
    let second = snapshots(source.poll(&spec).await);
    let after_two = source.call_counts();
    assert_eq!(first, second, "nothing changed between the polls");

    let delta =
        |action: &str| after_two.get(action).copied().unwrap_or(0) - after_one.get(action).copied().unwrap_or(0);
    let clusters = moto::manifest_clusters(&fx.manifest).len() as u64;
    assert_eq!(delta("eks:ListClusters"), 1);
    assert!(clusters > 1);
    // The node groups pin version 1 of their templates, the latest: the region-wide walk has it.
    assert_eq!(after_one["ec2:DescribeLaunchTemplateVersions"], 1);
    for metadata in [
        "eks:DescribeCluster",
        "eks:ListNodegroups",
        "eks:DescribeNodegroup",
        "eks:ListFargateProfiles",
        "ec2:DescribeLaunchTemplateVersions",
        "ec2:DescribeInstances",
        "ec2:DescribeVpcs",
        "ec2:DescribeVpcEndpoints",
        "ec2:DescribeManagedPrefixLists",
        "ec2:DescribeRouteTables",
        "ec2:DescribeNetworkInterfaces",
        "sts:GetCallerIdentity",
    ] {
        assert!(after_one.get(metadata).copied().unwrap_or(0) > 0, "{metadata} was called in the first poll");
        assert_eq!(delta(metadata), 0, "{metadata} is not called again within metadata_interval");
    }
    // Every group of the nine clusters in one batch by `group-id` filter, in which moto's fake
    // remote-access SGs are simply absent: one call, never one per group nor a retry.
    let groups: usize = second.values().map(|s| s.groups.len()).sum();
    let want: usize = second.keys().map(|name| moto::manifest_all_groups(&fx.manifest, name).len()).sum();
    assert_eq!(groups, want, "every group the fixture made for the clusters, no other");
    assert_eq!(delta("ec2:DescribeSecurityGroups"), 1, "{groups} groups");
    assert_eq!(after_two.values().sum::<u64>() - after_one.values().sum::<u64>(), 2, "a steady poll: {after_two:?}");
    let fake: BTreeSet<String> = second.values().flat_map(|s| ids_in_warnings(&s.warnings)).collect();
    assert!(fake.iter().all(|id| !second.values().any(|s| s.groups.contains_key(id))));
}

// --- drift through the API ------------------------------------------------------------------------

fn ssh_from_anywhere() -> Rule {
    Rule::new(Direction::Ingress, Traffic::Tcp(PortRange::single(22)), Peer::parse("0.0.0.0/0").expect("a CIDR"))
}

#[tokio::test]
async fn drift_injected_through_the_api_appears_in_one_poll_and_is_gone_in_the_next() {
    let region = "eu-west-2";
    let m = moto::server_for(module_path!());
    let manifest = m.build_fixture(&["--region", region, "--scenario", "styles", "--only", "terraform-public"]);
    let node = moto::manifest_groups(&manifest, "terraform-public", "node")[0].clone();
    let source = AwsSource::from_sdk_config(m.sdk_config(region), options(HOUR));
    let spec = target(region, None);
    let rules_of = |snaps: &BTreeMap<String, ClusterSnapshot>| snaps["terraform-public"].groups[&node].rules.clone();

    let before = rules_of(&snapshots(source.poll(&spec).await));
    assert!(!before.iter().any(|r| r.key() == ssh_from_anywhere().key()));

    let ec2 = aws_sdk_ec2::Client::new(&m.sdk_config(region));
    let ssh = aws_sdk_ec2::types::IpPermission::builder()
        .ip_protocol("tcp")
        .from_port(22)
        .to_port(22)
        .ip_ranges(aws_sdk_ec2::types::IpRange::builder().cidr_ip("0.0.0.0/0").description("debug").build())
        .build();
    ec2.authorize_security_group_ingress().group_id(&node).ip_permissions(ssh.clone()).send().await.expect("authorize");
    let during = rules_of(&snapshots(source.poll(&spec).await));
    let added: Vec<&Rule> = during.iter().filter(|r| !before.iter().any(|b| b.key() == r.key())).collect();
    assert_eq!(added.iter().map(|r| r.key()).collect::<Vec<_>>(), vec![ssh_from_anywhere().key()]);
    assert_eq!(during.len(), before.len() + 1, "nothing else changed");

    ec2.revoke_security_group_ingress().group_id(&node).ip_permissions(ssh).send().await.expect("revoke");
    let after = rules_of(&snapshots(source.poll(&spec).await));
    assert_eq!(after, before);
    // Rules were read fresh every poll while the node-group metadata stayed cached.
    assert_eq!(count(&source, "eks:ListNodegroups"), 1);

    // With no metadata interval, every poll reads the metadata again.
    let eager = AwsSource::from_sdk_config(m.sdk_config(region), options(Duration::ZERO));
    snapshots(eager.poll(&spec).await);
    snapshots(eager.poll(&spec).await);
    assert_eq!(count(&eager, "eks:ListNodegroups"), 2);
    assert_eq!(count(&eager, "ec2:DescribeLaunchTemplateVersions"), 2);
}

// --- regions and accounts -------------------------------------------------------------------------

#[tokio::test]
async fn two_regions_and_a_second_account_through_role_arn_are_read_apart() {
    let m = moto::server_for(module_path!());
    let other_role = "arn:aws:iam::111111111111:role/sgdrift-read";
    m.build_fixture(&["--region", "us-west-1", "--scenario", "scale", "--count", "1", "--prefix", "west1"]);
    m.build_fixture(&["--region", "us-west-2", "--scenario", "scale", "--count", "1", "--prefix", "west2"]);
    m.build_fixture(&[
        "--region",
        "us-west-1",
        "--scenario",
        "scale",
        "--count",
        "1",
        "--prefix",
        "other",
        "--role-arn",
        other_role,
    ]);

    // The base credentials' region is irrelevant: each target names its own.
    let source = AwsSource::from_sdk_config(m.sdk_config("us-east-1"), options(HOUR));
    let targets = [target("us-west-1", None), target("us-west-2", None), target("us-west-1", Some(other_role))];
    let want = [
        ("west1-000", "123456789012", "us-west-1"),
        ("west2-000", "123456789012", "us-west-2"),
        ("other-000", "111111111111", "us-west-1"),
    ];
    for _ in 0..2 {
        for (t, (name, account, region)) in targets.iter().zip(want) {
            let snaps = snapshots(source.poll(t).await);
            assert_eq!(snaps.keys().cloned().collect::<Vec<_>>(), vec![name.to_string()], "{t:?}");
            let s = &snaps[name];
            assert_eq!((s.id.account_id.as_str(), s.id.region.as_str()), (account, region));
            assert_eq!(s.groups.len(), 5, "{name}: cluster, control-plane and three node groups");
            assert!(
                s.groups.values().all(|g| g.owner_id.as_deref() == Some(account)),
                "{name}: groups of its own account"
            );
        }
    }
    assert_eq!(count(&source, "sts:GetCallerIdentity"), 3, "once per (role, region), then cached");
}

// --- many clusters in one account and region ------------------------------------------------------

#[tokio::test]
async fn many_clusters_cost_three_eks_calls_each_and_a_few_ec2_calls_per_region_then_a_handful_per_poll() {
    let region = "ap-southeast-1";
    let clusters: u64 = 41;
    let m = moto::server_for(module_path!());
    m.build_fixture(&[
        "--region",
        region,
        "--scenario",
        "scale",
        "--count",
        &clusters.to_string(),
        "--prefix",
        "fleet",
    ]);
    let source = AwsSource::from_sdk_config(m.sdk_config(region), options(HOUR));
    let spec = target(region, None);

    let snaps = snapshots(source.poll(&spec).await);
    assert_eq!(snaps.len() as u64, clusters);
    let groups: usize = snaps.values().map(|s| s.groups.len()).sum();
    assert_eq!(groups as u64, clusters * 5);
    assert!(snaps.values().all(|s| s.warnings.is_empty()), "no group is missing");
    // The region's one VPC listed in pages of 1,000: ⌈SGs/1000⌉, whatever the number of ids.
    let pages = 1;
    let first = source.call_counts();
    let want_first: BTreeMap<String, u64> = [
        ("sts:GetCallerIdentity", 1),
        ("eks:ListClusters", 1),
        // EKS answers per cluster only: these three are the floor of a cluster without managed
        // node groups or Fargate profiles.
        ("eks:DescribeCluster", clusters),
        ("eks:ListNodegroups", clusters),
        ("eks:ListFargateProfiles", clusters),
        // One walk each for the whole region: 44 tag keys, one VPC.
        ("ec2:DescribeInstances", 1),
        ("ec2:DescribeVpcs", 1),
        ("ec2:DescribeVpcEndpoints", 1),
        ("ec2:DescribeRouteTables", 1),
        ("ec2:DescribeNetworkInterfaces", 1),
        ("ec2:DescribeManagedPrefixLists", 1),
        ("ec2:DescribeSecurityGroups", pages),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    assert_eq!(first, want_first);
    let cold: u64 = first.values().sum();
    assert!(cold * 2 <= 7 * clusters, "{cold} calls for {clusters} clusters: more than 3.5 each");

    snapshots(source.poll(&spec).await);
    let mut want_second = want_first.clone();
    *want_second.entry("eks:ListClusters".into()).or_default() += 1;
    *want_second.entry("ec2:DescribeSecurityGroups".into()).or_default() += pages;
    assert_eq!(source.call_counts(), want_second, "a steady poll: ListClusters and ⌈SGs/1000⌉, nothing per cluster");

    let stats = source.stats();
    assert!(stats.error_counts().is_empty());
    assert_eq!(stats.timed_calls(), want_second, "every call is timed once");

    // A change event for one cluster: its metadata (and only its) is read again, with the
    // region's EC2 walks narrowed to it: its instances by one filter per node tag, naming it.
    let one = "fleet-007";
    source.invalidate(&spec, one);
    let before = source.call_counts();
    let again = snapshots(source.poll(&spec).await);
    assert_eq!(again[one], snaps[one]);
    let delta: BTreeMap<String, u64> = source
        .call_counts()
        .into_iter()
        .map(|(k, v)| (k.clone(), v - before.get(&k).copied().unwrap_or(0)))
        .filter(|(_, v)| *v > 0)
        .collect();
    let want: BTreeMap<String, u64> = [
        ("eks:ListClusters", 1),
        ("eks:DescribeCluster", 1),
        ("eks:ListNodegroups", 1),
        ("eks:ListFargateProfiles", 1),
        ("ec2:DescribeInstances", 4),
        ("ec2:DescribeVpcs", 1),
        ("ec2:DescribeVpcEndpoints", 1),
        ("ec2:DescribeRouteTables", 1),
        ("ec2:DescribeNetworkInterfaces", 1),
        // Its 5 groups by id: the VPC's listing held the fleet's 205, more than 5 per group wanted.
        ("ec2:DescribeSecurityGroups", 1),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    assert_eq!(delta, want);
}

// --- canned AWS: what moto cannot show --------------------------------------------------------------

mod canned {
    //! A tiny stand-in for EC2, EKS and STS on loopback, answering from a function of the
    //! request, with the wire formats the SDK parses (EC2/STS query XML, EKS REST JSON).

    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use axum::body::Bytes;
    use axum::http::{HeaderName, HeaderValue, Method, StatusCode, Uri};
    use axum::response::{IntoResponse, Response};

    #[derive(Debug, Clone)]
    pub struct Req {
        pub method: String,
        pub path: String,
        pub params: BTreeMap<String, String>,
    }

    impl Req {
        pub fn action(&self) -> &str {
            self.params.get("Action").map(String::as_str).unwrap_or("")
        }

        pub fn param(&self, k: &str) -> Option<&str> {
            self.params.get(k).map(String::as_str)
        }

        /// `GroupId.1`, `GroupId.2`, … in order.
        pub fn list(&self, prefix: &str) -> Vec<String> {
            (1..).map_while(|i| self.params.get(&format!("{prefix}.{i}")).cloned()).collect()
        }

        /// The values of the `Filter.N` named `name`.
        pub fn filter(&self, name: &str) -> Option<Vec<String>> {
            (1..)
                .map_while(|i| self.params.get(&format!("Filter.{i}.Name")).map(|n| (i, n)))
                .find(|(_, n)| *n == name)
                .map(|(i, _)| self.list(&format!("Filter.{i}.Value")))
        }
    }

    #[derive(Debug, Clone)]
    pub struct Resp {
        pub status: u16,
        pub headers: Vec<(&'static str, String)>,
        pub body: String,
        pub delay: Option<Duration>,
    }

    pub fn xml(body: String) -> Resp {
        Resp { status: 200, headers: vec![("content-type", "text/xml".into())], body, delay: None }
    }

    pub fn json(body: serde_json::Value) -> Resp {
        Resp {
            status: 200,
            headers: vec![("content-type", "application/json".into())],
            body: body.to_string(),
            delay: None,
        }
    }

    pub fn ec2_error(status: u16, code: &str, message: &str) -> Resp {
        Resp {
            status,
            headers: vec![("content-type", "text/xml".into())],
            body: format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Errors><Error><Code>{code}</Code><Message>{message}</Message></Error></Errors><RequestID>r-1</RequestID></Response>"
            ),
            delay: None,
        }
    }

    pub fn sts_error(status: u16, code: &str, message: &str) -> Resp {
        Resp {
            status,
            headers: vec![("content-type", "text/xml".into())],
            body: format!(
                "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error><RequestId>r-1</RequestId></ErrorResponse>"
            ),
            delay: None,
        }
    }

    pub fn eks_error(status: u16, kind: &str, message: &str) -> Resp {
        Resp {
            status,
            headers: vec![("content-type", "application/json".into()), ("x-amzn-errortype", kind.into())],
            body: serde_json::json!({ "message": message }).to_string(),
            delay: None,
        }
    }

    pub type Handler = Arc<dyn Fn(&Req) -> Resp + Send + Sync>;

    pub struct Server {
        pub url: String,
        pub log: Arc<Mutex<Vec<Req>>>,
    }

    impl Server {
        pub fn requests(&self, pred: impl Fn(&Req) -> bool) -> Vec<Req> {
            self.log.lock().map(|l| l.iter().filter(|r| pred(r)).cloned().collect()).unwrap_or_default()
        }
    }

    pub async fn serve(handler: Handler) -> Server {
        let log: Arc<Mutex<Vec<Req>>> = Arc::default();
        let state = (handler, Arc::clone(&log));
        let app = axum::Router::new().fallback(move |method: Method, uri: Uri, body: Bytes| {
            let (handler, log) = state.clone();
            async move {
                let mut params = BTreeMap::new();
                for raw in [uri.query().unwrap_or(""), std::str::from_utf8(&body).unwrap_or("")] {
                    for pair in raw.split('&').filter(|p| !p.is_empty()) {
                        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                        params.insert(decode(k), decode(v));
                    }
                }
                let req = Req { method: method.to_string(), path: decode(uri.path()), params };
                if let Ok(mut l) = log.lock() {
                    l.push(req.clone());
                }
                let resp = handler(&req);
                if let Some(d) = resp.delay {
                    tokio::time::sleep(d).await;
                }
                let mut out: Response =
                    (StatusCode::from_u16(resp.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR), resp.body)
                        .into_response();
                for (k, v) in resp.headers {
                    if let Ok(v) = HeaderValue::from_str(&v) {
                        out.headers_mut().insert(HeaderName::from_static(k), v);
                    }
                }
                out
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind loopback");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Server { url, log }
    }

    fn decode(s: &str) -> String {
        let bytes = s.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'+' => out.push(b' '),
                b'%' if i + 2 < bytes.len() => match u8::from_str_radix(&s[i + 1..i + 3], 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                },
                b => out.push(b),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }
}

use canned::{ec2_error, eks_error, json, sts_error, xml, Handler, Req, Resp};

const ACCOUNT: &str = "111122223333";
const CANNED_CLUSTERS: [&str; 3] = ["alpha", "bravo", "charlie"];

fn group_xml(id: &str, ingress: &str, egress: &str) -> String {
    format!(
        "<item><ownerId>{ACCOUNT}</ownerId><groupId>{id}</groupId><groupName>name-{id}</groupName>\
         <groupDescription>canned {id}</groupDescription><vpcId>vpc-canned</vpcId>\
         <ipPermissions>{ingress}</ipPermissions><ipPermissionsEgress>{egress}</ipPermissionsEgress>\
         <tagSet><item><key>Name</key><value>{id}</value></item></tagSet></item>"
    )
}

fn perm_from_group(proto: &str, from: i32, to: i32, group: &str) -> String {
    format!(
        "<item><ipProtocol>{proto}</ipProtocol><fromPort>{from}</fromPort><toPort>{to}</toPort>\
         <groups><item><userId>{ACCOUNT}</userId><groupId>{group}</groupId></item></groups>\
         <ipRanges/><ipv6Ranges/><prefixListIds/></item>"
    )
}

fn all_to_internet() -> String {
    "<item><ipProtocol>-1</ipProtocol><groups/><ipRanges><item><cidrIp>0.0.0.0/0</cidrIp></item></ipRanges><ipv6Ranges/><prefixListIds/></item>".into()
}

/// Every group the canned world has: per cluster `sg-<c>0` cluster, `sg-<c>1` control plane,
/// `sg-<c>2` launch-template node SG, `sg-<c>3` self-managed node SG, `sg-<c>r` remote access.
fn canned_group(id: &str) -> Option<String> {
    let c = CANNED_CLUSTERS.iter().find(|c| id.starts_with(&format!("sg-{}", &c[..1])))?;
    let p = &c[..1];
    let g = |n: &str| format!("sg-{p}{n}");
    Some(match &id[4..] {
        "0" => group_xml(id, &perm_from_group("-1", -1, -1, id), &all_to_internet()),
        "1" => group_xml(id, &perm_from_group("tcp", 443, 443, &g("2")), ""),
        "2" => group_xml(id, &perm_from_group("tcp", 10250, 10250, &g("1")), &all_to_internet()),
        "3" => group_xml(id, &perm_from_group("udp", 53, 53, &g("2")), &all_to_internet()),
        "r" => group_xml(id, "<item><ipProtocol>tcp</ipProtocol><fromPort>22</fromPort><toPort>22</toPort><groups/><ipRanges><item><cidrIp>10.0.0.0/8</cidrIp></item></ipRanges><ipv6Ranges/><prefixListIds/></item>", &all_to_internet()),
        _ => return None,
    })
}

/// The canned AWS: three public clusters, each with a launch-template node group, a node group
/// with remote access, and one self-managed instance. Every list answers in two pages.
fn world(req: &Req) -> Resp {
    let ec2 = |name: &str, inner: String| {
        xml(format!("<{name}Response xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\"><requestId>r-1</requestId>{inner}</{name}Response>"))
    };
    let second_page = req.param("NextToken").is_some();
    let next = |more: bool| if more { "<nextToken>page-2</nextToken>".to_string() } else { String::new() };
    match (req.method.as_str(), req.path.as_str(), req.action()) {
        ("POST", "/", "GetCallerIdentity") => xml(format!(
            "<GetCallerIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><GetCallerIdentityResult>\
             <Arn>arn:aws:iam::{ACCOUNT}:user/tests</Arn><UserId>AIDATESTS</UserId><Account>{ACCOUNT}</Account>\
             </GetCallerIdentityResult><ResponseMetadata><RequestId>r-1</RequestId></ResponseMetadata></GetCallerIdentityResponse>"
        )),
        ("POST", "/", "DescribeSecurityGroups") => {
            let ids = match (req.filter("group-id"), req.filter("vpc-id")) {
                (Some(ids), _) => ids,
                (None, Some(vpcs)) if vpcs.contains(&"vpc-canned".to_string()) => CANNED_CLUSTERS
                    .iter()
                    .flat_map(|c| ["0", "1", "2", "3", "r"].map(|n| format!("sg-{}{n}", &c[..1])))
                    .collect(),
                (None, Some(_)) => Vec::new(),
                (None, None) => req.list("GroupId"),
            };
            let by_filter = req.filter("group-id").is_some() || req.filter("vpc-id").is_some();
            let unknown: Vec<&String> = ids.iter().filter(|id| canned_group(id).is_none()).collect();
            if !by_filter && !unknown.is_empty() {
                let named = unknown.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(",");
                return ec2_error(400, "InvalidGroup.NotFound", &format!("The security group '{named}' does not exist"));
            }
            let known: Vec<String> = ids.iter().filter_map(|id| canned_group(id)).collect();
            let half = known.len().div_ceil(2);
            let page = if second_page { &known[half..] } else { &known[..half] };
            ec2("DescribeSecurityGroups", format!("<securityGroupInfo>{}</securityGroupInfo>{}", page.concat(), next(!second_page)))
        }
        ("POST", "/", "DescribeLaunchTemplateVersions") => {
            // Each template has two versions: 2, its latest and default, which the region-wide
            // `$Latest`/`$Default` walk gives, and 1, which the node groups pin and which only
            // a request naming the template and the version gives.
            let version = |lt: &str, n: u32, group: &str| {
                format!(
                    "<item><launchTemplateId>{lt}</launchTemplateId><versionNumber>{n}</versionNumber><defaultVersion>{}</defaultVersion>\
                     <launchTemplateData><securityGroupIdSet><item>{group}</item></securityGroupIdSet></launchTemplateData></item>",
                    n == 2
                )
            };
            let items: String = match req.param("LaunchTemplateId") {
                Some(lt) if req.list("LaunchTemplateVersion") == ["1"] => version(lt, 1, &format!("sg-{}2", lt.trim_start_matches("lt-"))),
                Some(lt) => return ec2_error(400, "InvalidLaunchTemplateVersion", &format!("unexpected versions of {lt}")),
                None if req.list("LaunchTemplateVersion") == ["$Latest", "$Default"] => {
                    CANNED_CLUSTERS.iter().map(|c| version(&format!("lt-{}", &c[..1]), 2, "sg-0unused")).collect()
                }
                None => return ec2_error(400, "InvalidParameterCombination", "versions without a template"),
            };
            ec2("DescribeLaunchTemplateVersions", format!("<launchTemplateVersionSet>{items}</launchTemplateVersionSet>"))
        }
        ("POST", "/", "DescribeInstances") => {
            // Each cluster's instance carries only its `kubernetes.io/cluster/<name>` tag, found
            // when the `tag-key` filter names it or the `kubernetes.io/cluster/*` wildcard; every
            // walk answers in two pages, the instances on the second.
            let keys = req.filter("tag-key").unwrap_or_default();
            let named = |c: &str| keys.iter().any(|k| *k == format!("kubernetes.io/cluster/{c}") || k == "kubernetes.io/cluster/*");
            let clusters = CANNED_CLUSTERS.iter().copied().filter(|c| named(c));
            let instances: String = clusters
                .filter(|_| second_page)
                .map(|c| {
                    format!(
                        "<item><reservationId>r-{c}</reservationId><ownerId>{ACCOUNT}</ownerId><instancesSet><item>\
                         <instanceId>i-{c}</instanceId><instanceState><code>16</code><name>running</name></instanceState>\
                         <groupSet><item><groupId>sg-{p}3</groupId><groupName>n</groupName></item></groupSet>\
                         <tagSet><item><key>kubernetes.io/cluster/{c}</key><value>owned</value></item>\
                         <item><key>aws:autoscaling:groupName</key><value>{c}-asg</value></item></tagSet>\
                         </item></instancesSet></item>",
                        p = &c[..1]
                    )
                })
                .collect();
            let body = format!("<reservationSet>{instances}</reservationSet>");
            ec2("DescribeInstances", format!("{body}{}", next(!second_page)))
        }
        ("POST", "/", "DescribeVpcs") => ec2(
            "DescribeVpcs",
            "<vpcSet><item><vpcId>vpc-canned</vpcId><cidrBlock>10.0.0.0/16</cidrBlock><cidrBlockAssociationSet><item>\
             <cidrBlock>10.0.0.0/16</cidrBlock><cidrBlockState><state>associated</state></cidrBlockState></item>\
             </cidrBlockAssociationSet></item></vpcSet>"
                .into(),
        ),
        // No endpoints, route tables or branch ENIs in the canned VPC.
        ("POST", "/", "DescribeVpcEndpoints") => ec2("DescribeVpcEndpoints", "<vpcEndpointSet/>".into()),
        ("POST", "/", "DescribeRouteTables") => ec2("DescribeRouteTables", "<routeTableSet/>".into()),
        ("POST", "/", "DescribeNetworkInterfaces") => ec2("DescribeNetworkInterfaces", "<networkInterfaceSet/>".into()),
        ("POST", "/", "DescribeManagedPrefixLists") => {
            let (id, name) = if second_page { ("pl-ddb", "com.amazonaws.eu-west-1.dynamodb") } else { ("pl-s3", "com.amazonaws.eu-west-1.s3") };
            ec2(
                "DescribeManagedPrefixLists",
                format!("<prefixListSet><item><prefixListId>{id}</prefixListId><prefixListName>{name}</prefixListName></item></prefixListSet>{}", next(!second_page)),
            )
        }
        ("GET", "/clusters", _) => match req.param("nextToken") {
            None => json(serde_json::json!({ "clusters": ["alpha", "bravo"], "nextToken": "charlie" })),
            Some(_) => json(serde_json::json!({ "clusters": ["charlie"] })),
        },
        ("GET", path, _) => {
            let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
            match parts.as_slice() {
                ["clusters", c] if CANNED_CLUSTERS.contains(c) => {
                    let p = &c[..1];
                    json(serde_json::json!({ "cluster": {
                        "name": c,
                        "arn": format!("arn:aws:eks:eu-west-1:{ACCOUNT}:cluster/{c}"),
                        "resourcesVpcConfig": {
                            "clusterSecurityGroupId": format!("sg-{p}0"),
                            "securityGroupIds": [format!("sg-{p}1")],
                            "vpcId": "vpc-canned",
                            "endpointPublicAccess": true,
                            "endpointPrivateAccess": false,
                            "publicAccessCidrs": ["0.0.0.0/0"]
                        },
                        "tags": {}
                    }}))
                }
                ["clusters", c] => eks_error(404, "ResourceNotFoundException", &format!("No cluster found for name: {c}.")),
                ["clusters", _, "node-groups"] => match req.param("nextToken") {
                    None => json(serde_json::json!({ "nodegroups": ["templated"], "nextToken": "ssh" })),
                    Some(_) => json(serde_json::json!({ "nodegroups": ["ssh"] })),
                },
                // No Fargate profiles in the canned clusters.
                ["clusters", _, "fargate-profiles"] => json(serde_json::json!({ "fargateProfileNames": [] })),
                ["clusters", c, "node-groups", ng] => {
                    let p = &c[..1];
                    let body = if *ng == "templated" {
                        serde_json::json!({ "nodegroupName": ng, "launchTemplate": { "id": format!("lt-{p}"), "name": format!("{c}-lt"), "version": "1" } })
                    } else {
                        serde_json::json!({ "nodegroupName": ng, "remoteAccess": { "ec2SshKey": "ops" }, "resources": { "remoteAccessSecurityGroup": format!("sg-{p}r") } })
                    };
                    json(serde_json::json!({ "nodegroup": body }))
                }
                _ => eks_error(404, "NotFoundException", "no such path"),
            }
        }
        _ => ec2_error(400, "InvalidAction", &format!("the canned AWS does not know {} {}", req.method, req.path)),
    }
}

async fn canned_source(
    handler: impl Fn(&Req) -> Resp + Send + Sync + 'static,
    opts: AwsOptions,
) -> (canned::Server, AwsSource) {
    let handler: Handler = Arc::new(handler);
    let server = canned::serve(handler).await;
    let conf = aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("eu-west-1"))
        .endpoint_url(&server.url)
        .credentials_provider(aws_sdk_ec2::config::SharedCredentialsProvider::new(
            aws_sdk_ec2::config::Credentials::new("testing", "testing", None, None, "canned"),
        ))
        .build();
    (server, AwsSource::from_sdk_config(conf, opts))
}

fn by_name(poll: &TargetPoll) -> BTreeMap<&str, &ClusterPoll> {
    poll.clusters.iter().map(|c| (c.id.name.as_str(), c)).collect()
}

#[tokio::test]
async fn next_token_pages_are_followed_for_every_list() {
    let (_server, source) = canned_source(world, options(HOUR)).await;
    let snaps = snapshots(source.poll(&target("eu-west-1", None)).await);
    assert_eq!(snaps.keys().map(String::as_str).collect::<Vec<_>>(), CANNED_CLUSTERS, "both ListClusters pages");
    for (name, s) in &snaps {
        let p = &name[..1];
        let ids: Vec<String> = ["0", "1", "2", "3", "r"].iter().map(|n| format!("sg-{p}{n}")).collect();
        assert_eq!(
            s.groups.keys().cloned().collect::<Vec<_>>(),
            ids,
            "{name}: groups from both DescribeSecurityGroups pages"
        );
        let roles: Vec<Role> = ids.iter().map(|id| s.groups[id].primary_role()).collect();
        assert_eq!(roles, [Role::Cluster, Role::ControlPlane, Role::Node, Role::Node, Role::RemoteAccess]);
        let sets: Vec<(&str, NodeGroupKind, Vec<String>)> =
            s.node_groups.iter().map(|g| (g.name.as_str(), g.kind, g.security_group_ids.clone())).collect();
        let asg = format!("{name}-asg");
        assert_eq!(
            sets,
            vec![
                ("ssh", NodeGroupKind::Managed, vec![format!("sg-{p}0"), format!("sg-{p}r")]),
                ("templated", NodeGroupKind::Managed, vec![format!("sg-{p}2")]),
                (asg.as_str(), NodeGroupKind::SelfManaged, vec![format!("sg-{p}3")]),
            ],
            "{name}: both ListNodegroups pages and the instance on the second DescribeInstances page"
        );
        assert_eq!(s.prefix_lists.keys().map(String::as_str).collect::<Vec<_>>(), ["pl-ddb", "pl-s3"]);
        assert_eq!(s.vpc_cidrs.iter().map(|c| c.to_string()).collect::<Vec<_>>(), ["10.0.0.0/16"]);
        assert!(s.warnings.is_empty(), "{:?}", s.warnings);
        assert_eq!(s.id.account_id, ACCOUNT);
    }
    let counts = source.call_counts();
    assert_eq!(counts["eks:ListClusters"], 2);
    assert_eq!(counts["ec2:DescribeSecurityGroups"], 2, "one batch of 15 groups by filter, two pages");
    assert_eq!(counts["eks:ListNodegroups"], 6);
    assert_eq!(counts["ec2:DescribeInstances"], 2, "one tag-key walk for the three clusters, two pages");
    assert_eq!(counts["ec2:DescribeManagedPrefixLists"], 2);
    assert_eq!(
        counts["ec2:DescribeLaunchTemplateVersions"], 4,
        "the region's $Latest/$Default walk, then the pinned version 1 of each template, which is neither"
    );
}

/// moto has no DescribeAddon (it answers 404 without an error code), so the `vpc-cni` add-on is
/// served by the canned AWS, a real HTTP server on loopback, rather than by the SDK's static
/// replay client: the poll makes some thirty calls in an order the replay client would have to
/// pin down, and this server answers each by what it asks. The canned VPC gets one branch ENI
/// (pods with their own SGs), without which DescribeAddon is never called.
fn world_with_pod_sgs(req: &Req) -> Resp {
    let path: Vec<&str> = req.path.trim_matches('/').split('/').collect();
    match (req.action(), path.as_slice()) {
        ("DescribeNetworkInterfaces", _) => xml(
            "<DescribeNetworkInterfacesResponse xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\"><requestId>r-1</requestId>\
             <networkInterfaceSet><item><networkInterfaceId>eni-branch</networkInterfaceId><interfaceType>branch</interfaceType>\
             <description>aws-k8s-branch-eni</description><vpcId>vpc-canned</vpcId>\
             <groupSet><item><groupId>sg-a3</groupId><groupName>pods</groupName></item></groupSet></item></networkInterfaceSet>\
             </DescribeNetworkInterfacesResponse>"
                .into(),
        ),
        (_, ["clusters", c, "addons", "vpc-cni"]) => match *c {
            // The add-on's configuration values as the console writes them (JSON).
            "alpha" => json(serde_json::json!({ "addon": { "addonName": "vpc-cni", "clusterName": c,
                "configurationValues": "{\"env\":{\"POD_SECURITY_GROUP_ENFORCING_MODE\":\"standard\",\"ENABLE_POD_ENI\":\"true\"}}" } })),
            // The managed add-on with nothing configured: the CNI's default.
            "bravo" => json(serde_json::json!({ "addon": { "addonName": "vpc-cni", "clusterName": c } })),
            // A self-managed VPC CNI: no such add-on.
            _ => eks_error(404, "ResourceNotFoundException", &format!("No addon: vpc-cni found in cluster: {c}")),
        },
        _ => world(req),
    }
}

#[tokio::test]
async fn the_pod_sg_enforcing_mode_comes_from_the_vpc_cni_add_on_only_for_clusters_with_pod_sgs() {
    use sgdrift::model::PodSgEnforcingMode;
    let (_server, source) = canned_source(world_with_pod_sgs, options(HOUR)).await;
    let snaps = snapshots(source.poll(&target("eu-west-1", None)).await);
    let modes: Vec<(&str, PodSgEnforcingMode)> =
        snaps.iter().map(|(n, s)| (n.as_str(), s.data_plane.pod_sg_enforcing_mode)).collect();
    assert_eq!(
        modes,
        [
            ("alpha", PodSgEnforcingMode::Standard),
            ("bravo", PodSgEnforcingMode::Strict),
            ("charlie", PodSgEnforcingMode::Unknown)
        ]
    );
    assert!(snaps.values().all(|s| s.warnings.is_empty()), "a self-managed CNI is no warning");
    assert_eq!(source.call_counts()["eks:DescribeAddon"], 3, "once per cluster with pod SGs, with the metadata");
    snapshots(source.poll(&target("eu-west-1", None)).await);
    assert_eq!(source.call_counts()["eks:DescribeAddon"], 3, "cached for metadata_interval");

    // Without branch ENIs nobody asks.
    let (_server, plain) = canned_source(world, options(HOUR)).await;
    let snaps = snapshots(plain.poll(&target("eu-west-1", None)).await);
    assert!(snaps.values().all(|s| s.data_plane.pod_sg_enforcing_mode == PodSgEnforcingMode::Unknown));
    assert_eq!(plain.call_counts().get("eks:DescribeAddon"), None);
}

#[tokio::test]
async fn access_denied_names_the_missing_action_and_the_other_clusters_still_read() {
    let (_server, source) = canned_source(
        |req: &Req| {
            if req.path == "/clusters/bravo" {
                return eks_error(
                    403,
                    "AccessDeniedException",
                    "User: arn:aws:iam::111122223333:user/t is not authorized to perform: eks:DescribeCluster",
                );
            }
            world(req)
        },
        options(HOUR),
    )
    .await;
    let poll = source.poll(&target("eu-west-1", None)).await;
    assert!(poll.error.is_none());
    let clusters = by_name(&poll);
    let err = clusters["bravo"].result.as_ref().expect_err("bravo is denied");
    assert_eq!(err.kind(), "access_denied");
    assert!(err.to_string().contains("`eks:DescribeCluster`"), "{err}");
    assert!(clusters["alpha"].result.is_ok() && clusters["charlie"].result.is_ok());
    let errors = source.stats().error_counts();
    assert_eq!(errors.get("eks:DescribeCluster").and_then(|e| e.get("access_denied")), Some(&1));
}

#[tokio::test]
async fn denied_security_group_reads_fail_the_clusters_naming_ec2_describe_security_groups() {
    let (_server, source) = canned_source(
        |req: &Req| {
            if req.action() == "DescribeSecurityGroups" {
                return ec2_error(403, "UnauthorizedOperation", "You are not authorized to perform this operation.");
            }
            world(req)
        },
        options(HOUR),
    )
    .await;
    let poll = source.poll(&target("eu-west-1", None)).await;
    assert!(poll.error.is_none(), "the target itself was read");
    assert_eq!(poll.clusters.len(), 3);
    for c in &poll.clusters {
        let err = c.result.as_ref().expect_err("no group could be read");
        assert_eq!(err.kind(), "access_denied");
        assert!(err.to_string().contains("`ec2:DescribeSecurityGroups`"), "{err}");
    }
    assert_eq!(source.call_counts()["ec2:DescribeSecurityGroups"], 1, "one batch, one denied call");
}

#[tokio::test]
async fn a_peer_in_the_listed_vpc_costs_no_call_and_a_failed_listing_does_not_make_it_missing() {
    // alpha's control-plane group lets in sg-shared, another workload's group in the same VPC:
    // the listing holds it, so no call is made for it. Then one poll's listing is denied: every
    // cluster fails that poll, and the next finds everything as before, sg-shared included,
    // still without a call by id.
    let denied = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let deny = Arc::clone(&denied);
    let (server, source) = canned_source(
        move |req: &Req| {
            if is_dsg(req) && deny.load(std::sync::atomic::Ordering::SeqCst) {
                return ec2_error(403, "UnauthorizedOperation", "You are not authorized to perform this operation.");
            }
            let mut resp = world(req);
            if is_dsg(req) {
                resp.body = resp.body.replace(
                    "<groupId>sg-a2</groupId></item></groups>",
                    "<groupId>sg-a2</groupId></item><item><userId>111122223333</userId><groupId>sg-shared</groupId></item></groups>",
                );
                if req.filter("vpc-id").is_some() && req.param("NextToken").is_some() {
                    let shared = group_xml("sg-shared", "", "");
                    resp.body = resp.body.replace("</securityGroupInfo>", &format!("{shared}</securityGroupInfo>"));
                }
            }
            resp
        },
        options(HOUR),
    )
    .await;
    let spec = target("eu-west-1", None);
    let by_id = |r: &Req| is_dsg(r) && r.filter("group-id").is_some();
    let first = snapshots(source.poll(&spec).await);
    assert!(first["alpha"].peer_groups.contains_key("sg-shared"), "the peer, from the listing");
    assert!(first.values().all(|s| s.warnings.is_empty()), "{first:?}");

    denied.store(true, std::sync::atomic::Ordering::SeqCst);
    let poll = source.poll(&spec).await;
    assert!(poll.clusters.iter().all(|c| c.result.as_ref().is_err_and(|e| e.kind() == "access_denied")));

    denied.store(false, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(snapshots(source.poll(&spec).await), first);
    assert_eq!(server.requests(by_id).len(), 0, "every group and peer came with the listings");
}

#[tokio::test]
async fn throttling_is_classified_and_counted_and_the_other_clusters_still_read() {
    let (_server, source) = canned_source(
        |req: &Req| {
            if req.path.starts_with("/clusters/charlie/node-groups/") {
                return eks_error(429, "ThrottlingException", "Rate exceeded");
            }
            world(req)
        },
        options(HOUR),
    )
    .await;
    let poll = source.poll(&target("eu-west-1", None)).await;
    let clusters = by_name(&poll);
    let err = clusters["charlie"].result.as_ref().expect_err("charlie is throttled");
    assert_eq!(err.kind(), "throttled");
    assert!(clusters["alpha"].result.is_ok() && clusters["bravo"].result.is_ok());
    let errors = source.stats().error_counts();
    assert_eq!(errors.get("eks:DescribeNodegroup").and_then(|e| e.get("throttled")), Some(&1));
    assert_eq!(errors.len(), 1, "no other operation failed: {errors:?}");
}

#[tokio::test]
async fn a_throttled_call_is_retried_within_the_attempt_bound() {
    let throttled = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = Arc::clone(&throttled);
    let (server, source) = canned_source(
        move |req: &Req| {
            if req.path == "/clusters/alpha" && seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
                return eks_error(429, "ThrottlingException", "Rate exceeded");
            }
            world(req)
        },
        AwsOptions { max_attempts: Some(3), ..options(HOUR) },
    )
    .await;
    let snaps = snapshots(source.poll(&target("eu-west-1", None)).await);
    assert_eq!(snaps.len(), 3);
    assert_eq!(server.requests(|r| r.path == "/clusters/alpha").len(), 2, "one throttled attempt, one retry");
    assert_eq!(source.call_counts()["eks:DescribeCluster"], 3, "a retried call counts once");
}

fn is_dsg(r: &Req) -> bool {
    r.action() == "DescribeSecurityGroups"
}

#[tokio::test]
async fn a_deleted_group_costs_no_extra_call_and_is_reported_on_its_cluster() {
    let (server, source) = canned_source(
        |req: &Req| {
            if req.path == "/clusters/alpha/node-groups/ssh" {
                return json(serde_json::json!({ "nodegroup": {
                    "nodegroupName": "ssh", "remoteAccess": { "ec2SshKey": "ops" },
                    "resources": { "remoteAccessSecurityGroup": "sg-0deleted0000000000" } } }));
            }
            world(req)
        },
        options(HOUR),
    )
    .await;
    let spec = target("eu-west-1", None);
    let snaps = snapshots(source.poll(&spec).await);
    assert_eq!(ids_in_warnings(&snaps["alpha"].warnings), BTreeSet::from(["sg-0deleted0000000000".to_string()]));
    assert!(!snaps["alpha"].groups.contains_key("sg-0deleted0000000000"));
    assert_eq!(snaps["alpha"].groups.len(), 4, "the other groups of alpha are read");
    assert!(snaps["bravo"].warnings.is_empty() && snaps["charlie"].warnings.is_empty());
    let dsg = server.requests(is_dsg);
    assert_eq!(dsg.len(), 2, "one listing of the clusters' VPC in two pages, no call for the missing id");
    assert!(dsg.iter().all(|r| r.filter("vpc-id") == Some(vec!["vpc-canned".to_string()])));

    let again = snapshots(source.poll(&spec).await);
    assert_eq!(again, snaps);
    assert_eq!(server.requests(is_dsg).len(), 4, "every poll costs the same listing");
}

#[tokio::test]
async fn a_rule_naming_a_deleted_peer_costs_one_call_in_the_first_poll_and_none_after() {
    // alpha's control-plane group lets in a group that no longer exists (a stale reference,
    // as EC2 keeps across a peering).
    let (server, source) = canned_source(
        |req: &Req| {
            let mut resp = world(req);
            if is_dsg(req) {
                resp.body = resp.body.replace("<groupId>sg-a2</groupId></item></groups>", "<groupId>sg-a2</groupId></item><item><userId>111122223333</userId><groupId>sg-stale</groupId></item></groups>");
            }
            resp
        },
        options(HOUR),
    )
    .await;
    let spec = target("eu-west-1", None);
    let first = snapshots(source.poll(&spec).await);
    let peers_asked = server.requests(|r| is_dsg(r) && r.filter("group-id") == Some(vec!["sg-stale".to_string()]));
    assert_eq!(peers_asked.len(), 2, "the new peer, asked once (two pages)");
    assert!(first["alpha"].groups["sg-a1"]
        .rules
        .iter()
        .any(|r| r.peer == Peer::Group { id: "sg-stale".into(), owner: None }));
    let before = server.requests(is_dsg).len();
    let second = snapshots(source.poll(&spec).await);
    assert_eq!(second, first);
    assert_eq!(server.requests(is_dsg).len() - before, 2, "the listing, and nothing for the known missing peer");
}

#[tokio::test]
async fn a_cluster_group_that_vanishes_from_cached_metadata_has_the_cluster_read_again_once() {
    // alpha's cluster SG is deleted after the first poll: the cluster may have been made
    // again under its name, so its DescribeCluster is read again, once; the group stays gone
    // (deleted by hand), which is reported and costs nothing more.
    let deleted = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let gone = Arc::clone(&deleted);
    let (_server, source) = canned_source(
        move |req: &Req| {
            let mut resp = world(req);
            if is_dsg(req) && gone.load(std::sync::atomic::Ordering::SeqCst) {
                let group = group_xml("sg-a0", &perm_from_group("-1", -1, -1, "sg-a0"), &all_to_internet());
                resp.body = resp.body.replace(&group, "");
            }
            resp
        },
        options(HOUR),
    )
    .await;
    let spec = target("eu-west-1", None);
    let described = |source: &AwsSource| count(source, "eks:DescribeCluster");
    snapshots(source.poll(&spec).await);
    assert_eq!(described(&source), 3);
    deleted.store(true, std::sync::atomic::Ordering::SeqCst);
    let noticed = snapshots(source.poll(&spec).await);
    assert!(ids_in_warnings(&noticed["alpha"].warnings).contains("sg-a0"), "{:?}", noticed["alpha"].warnings);
    assert_eq!(described(&source), 3, "the poll that notices uses the cache");
    snapshots(source.poll(&spec).await);
    assert_eq!(described(&source), 4, "alpha, and only alpha, is read again");
    for _ in 0..2 {
        let after = snapshots(source.poll(&spec).await);
        assert!(ids_in_warnings(&after["alpha"].warnings).contains("sg-a0"));
    }
    assert_eq!(described(&source), 4, "a group that stays gone costs no further reads");
}

#[tokio::test]
async fn a_vpc_holding_many_groups_besides_the_clusters_is_listed_once_then_its_groups_asked_by_id() {
    // The canned VPC is shared: 100 groups of other workloads beside the clusters' 15. The first
    // poll lists it (two pages), which shows 115 groups for 15 wanted; from then on the 15 are
    // asked by `group-id` filter, with the peers the listing gave for free. Then bravo's instance
    // SG is deleted: absent from the answer, reported, and no call spent looking for it.
    let deleted = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let gone = Arc::clone(&deleted);
    let (server, source) = canned_source(
        move |req: &Req| {
            let mut resp = world(req);
            if is_dsg(req) && req.filter("vpc-id").is_some() && req.param("NextToken").is_some() {
                let others: String = (0..100).map(|i| group_xml(&format!("sg-other{i:03}"), "", "")).collect();
                resp.body = resp.body.replace("</securityGroupInfo>", &format!("{others}</securityGroupInfo>"));
            }
            if is_dsg(req) && gone.load(std::sync::atomic::Ordering::SeqCst) {
                let group = group_xml("sg-b3", &perm_from_group("udp", 53, 53, "sg-b2"), &all_to_internet());
                resp.body = resp.body.replace(&group, "");
            }
            resp
        },
        options(HOUR),
    )
    .await;
    let spec = target("eu-west-1", None);
    let listings = |r: &Req| is_dsg(r) && r.filter("vpc-id").is_some();
    let by_id = |r: &Req| is_dsg(r) && r.filter("group-id").is_some();
    let counts = || (server.requests(listings).len(), server.requests(by_id).len());
    let first = snapshots(source.poll(&spec).await);
    assert!(first.values().all(|s| s.warnings.is_empty() && s.groups.len() == 5), "{first:?}");
    assert!(first.values().all(|s| s.groups.keys().all(|id| !id.starts_with("sg-other"))), "no foreign group kept");
    assert_eq!(counts(), (2, 0), "the VPC listed, two pages");

    assert_eq!(snapshots(source.poll(&spec).await), first);
    assert_eq!(counts(), (2, 2), "then the 15 by id, two pages");
    let asked: BTreeSet<String> = server.requests(by_id)[0].filter("group-id").unwrap().into_iter().collect();
    assert_eq!(asked.len(), 15, "{asked:?}");

    deleted.store(true, std::sync::atomic::Ordering::SeqCst);
    let gone = snapshots(source.poll(&spec).await);
    assert!(ids_in_warnings(&gone["bravo"].warnings).contains("sg-b3"), "{:?}", gone["bravo"].warnings);
    assert_eq!(counts(), (2, 4), "the same walk, no retry");
}

#[tokio::test]
async fn a_call_slower_than_the_timeout_fails_that_cluster_as_a_timeout() {
    let (_server, source) = canned_source(
        |req: &Req| {
            let mut resp = world(req);
            if req.path == "/clusters/bravo" {
                resp.delay = Some(Duration::from_secs(5));
            }
            resp
        },
        AwsOptions { timeout: Duration::from_secs(1), ..options(HOUR) },
    )
    .await;
    let poll = source.poll(&target("eu-west-1", None)).await;
    let clusters = by_name(&poll);
    let err = clusters["bravo"].result.as_ref().expect_err("bravo times out");
    assert_eq!(err.kind(), "timeout");
    assert!(err.to_string().contains("eks:DescribeCluster"), "{err}");
    assert!(clusters["alpha"].result.is_ok() && clusters["charlie"].result.is_ok());
}

#[tokio::test]
async fn failing_credentials_or_cluster_listing_fail_the_target_not_a_cluster() {
    let (_server, source) = canned_source(
        |req: &Req| {
            if req.action() == "GetCallerIdentity" {
                return sts_error(
                    403,
                    "InvalidClientTokenId",
                    "The security token included in the request is invalid.",
                );
            }
            world(req)
        },
        options(HOUR),
    )
    .await;
    let poll = source.poll(&target("eu-west-1", None)).await;
    assert!(poll.clusters.is_empty());
    let (region, err) = poll.error.expect("the target fails");
    assert_eq!(region, "eu-west-1");
    assert_eq!(err.kind(), "client");
    assert!(err.to_string().contains("sts:GetCallerIdentity"), "{err}");

    let (_server, source) = canned_source(
        |req: &Req| {
            if req.path == "/clusters" {
                return eks_error(503, "ServiceUnavailableException", "try later");
            }
            world(req)
        },
        options(HOUR),
    )
    .await;
    let poll = source.poll(&target("eu-west-1", None)).await;
    let (_, err) = poll.error.expect("ListClusters failed");
    assert_eq!(err.kind(), "server");
    assert!(err.to_string().contains("eks:ListClusters"), "{err}");
}

#[tokio::test]
async fn a_named_cluster_that_does_not_exist_fails_alone_without_listing_clusters() {
    let (_server, source) = canned_source(world, options(HOUR)).await;
    let spec = TargetSpec { region: "eu-west-1".into(), role_arn: None, clusters: vec!["alpha".into(), "zulu".into()] };
    let poll = source.poll(&spec).await;
    let clusters = by_name(&poll);
    assert_eq!(clusters.keys().copied().collect::<Vec<_>>(), ["alpha", "zulu"]);
    assert_eq!(clusters["zulu"].result.as_ref().map(|_| ()).expect_err("no such cluster").kind(), "not_found");
    assert!(clusters["alpha"].result.is_ok());
    assert_eq!(count(&source, "eks:ListClusters"), 0);
}

#[tokio::test]
async fn a_failed_metadata_refresh_keeps_the_last_metadata_with_a_warning() {
    let failing = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let fail = Arc::clone(&failing);
    let (_server, source) = canned_source(
        move |req: &Req| {
            if fail.load(std::sync::atomic::Ordering::SeqCst) && req.path == "/clusters/alpha/node-groups" {
                return eks_error(500, "ServerException", "internal error");
            }
            world(req)
        },
        options(Duration::ZERO),
    )
    .await;
    let spec = target("eu-west-1", None);
    let before = snapshots(source.poll(&spec).await);
    failing.store(true, std::sync::atomic::Ordering::SeqCst);
    let after = snapshots(source.poll(&spec).await);
    assert_eq!(after["alpha"].node_groups, before["alpha"].node_groups);
    assert_eq!(after["alpha"].groups, before["alpha"].groups);
    assert_eq!(after["alpha"].warnings.len(), 1, "{:?}", after["alpha"].warnings);
    assert!(after["alpha"].warnings[0].contains("eks:ListNodegroups"), "{:?}", after["alpha"].warnings);
    assert!(after["bravo"].warnings.is_empty());
}

#[tokio::test]
async fn a_group_that_cannot_be_read_fails_only_its_cluster() {
    let (_server, source) = canned_source(
        |req: &Req| {
            let mut resp = world(req);
            if req.action() == "DescribeSecurityGroups" {
                // bravo's control-plane rule, with a protocol EC2 would never send.
                let rule = format!("<ipProtocol>tcp</ipProtocol><fromPort>443</fromPort><toPort>443</toPort><groups><item><userId>{ACCOUNT}</userId><groupId>sg-b2</groupId>");
                let broken = rule.replace("<ipProtocol>tcp</ipProtocol>", "<ipProtocol>bogus</ipProtocol>");
                resp.body = resp.body.replace(&rule, &broken);
            }
            resp
        },
        options(HOUR),
    )
    .await;
    let poll = source.poll(&target("eu-west-1", None)).await;
    let clusters = by_name(&poll);
    let err = clusters["bravo"].result.as_ref().expect_err("bravo's group is unreadable");
    assert_eq!(err.kind(), "server");
    assert!(err.to_string().contains("sg-b1"), "{err}");
    assert!(clusters["alpha"].result.is_ok() && clusters["charlie"].result.is_ok());
}

#[tokio::test]
async fn an_emulator_that_goes_away_fails_the_poll_instead_of_hanging_or_panicking() {
    let mut own = moto::Moto::start();
    let region = "ca-central-1";
    own.build_fixture(&["--region", region, "--scenario", "scale", "--count", "1", "--prefix", "gone"]);
    let source = AwsSource::from_sdk_config(own.sdk_config(region), options(HOUR));
    let every = target(region, None);
    let named = TargetSpec { clusters: vec!["gone-000".into()], ..every.clone() };
    assert_eq!(snapshots(source.poll(&every).await).len(), 1);

    own.stop();
    let (_, err) = source.poll(&every).await.error.expect("ListClusters cannot be answered");
    assert_eq!(err.kind(), "server", "{err}");
    let poll = source.poll(&named).await;
    assert!(poll.error.is_none(), "the account is known from the first poll");
    // Its metadata is cached: the groups are what cannot be read.
    let err = poll.clusters[0].result.as_ref().expect_err("DescribeSecurityGroups cannot be answered");
    assert_eq!(err.kind(), "server", "{err}");
    assert!(err.to_string().contains("ec2:DescribeSecurityGroups"), "{err}");
}
