//! The `files` source against the demo data and hand-made breakage, and the test layouts
//! against style detection.

use std::path::{Path, PathBuf};

use crate::support::layouts;
use sgdrift::model::{ClusterSnapshot, Direction, EndpointMode, NodeGroupKind, Role, Style, VpcEndpointKind};
use sgdrift::source::files::FilesSource;
use sgdrift::source::{style, ClusterPoll, SourceError, TargetSpec};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn demo_dir() -> PathBuf {
    repo().join("config/demo")
}

fn spec(region: &str, clusters: &[&str]) -> TargetSpec {
    TargetSpec { region: region.into(), role_arn: None, clusters: clusters.iter().map(|c| c.to_string()).collect() }
}

fn poll(dir: &Path, region: &str) -> Vec<ClusterPoll> {
    let poll = FilesSource::new(dir.to_path_buf()).poll(&spec(region, &["*"]));
    assert!(poll.error.is_none(), "target error: {:?}", poll.error);
    poll.clusters
}

fn find<'a>(polls: &'a [ClusterPoll], name: &str) -> &'a ClusterPoll {
    polls.iter().find(|p| p.id.name == name).unwrap_or_else(|| panic!("no cluster {name} in the poll"))
}

fn snapshot<'a>(polls: &'a [ClusterPoll], name: &str) -> &'a ClusterSnapshot {
    match &find(polls, name).result {
        Ok(s) => s,
        Err(e) => panic!("{name} failed: {e}"),
    }
}

fn error(polls: &[ClusterPoll], name: &str) -> String {
    match &find(polls, name).result {
        Ok(_) => panic!("{name} loaded, but an error was expected"),
        Err(e @ SourceError::Input(_)) => e.to_string(),
        Err(e) => panic!("{name} failed with {} rather than an input error: {e}", e.kind()),
    }
}

fn roles_of(snap: &ClusterSnapshot, ids: &[String]) -> Vec<Role> {
    ids.iter()
        .map(|id| snap.groups.get(id).unwrap_or_else(|| panic!("{id} is not a group of the snapshot")).primary_role())
        .collect()
}

fn count(snap: &ClusterSnapshot, role: Role) -> usize {
    snap.groups_with_role(role).count()
}

/// A scratch copy of the demo data, to break.
fn demo_copy() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().expect("temp dir");
    copy_dir(&demo_dir(), tmp.path());
    tmp
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("dir entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

#[test]
fn the_demo_config_names_the_demo_directory_and_both_regions() {
    let settings = sgdrift::config::load(&repo().join("config/demo.toml")).expect("demo.toml loads");
    assert_eq!(settings.config.source.dir.as_deref(), Some(repo().join("config/demo").as_path()));
    let regions: Vec<&str> = settings.targets.iter().flat_map(|t| t.regions.iter().map(String::as_str)).collect();
    assert_eq!(regions, ["eu-west-1", "us-east-1"]);
    assert_eq!(settings.config.server.listen, "127.0.0.1:9787");
}

#[test]
fn the_demo_loads_every_cluster_in_its_own_region() {
    let eu = poll(&demo_dir(), "eu-west-1");
    let us = poll(&demo_dir(), "us-east-1");
    let names = |p: &[ClusterPoll]| p.iter().map(|c| c.id.name.clone()).collect::<Vec<_>>();
    assert_eq!(names(&eu), ["ledger", "shop-prod"]);
    assert_eq!(names(&us), ["payments"]);
    for p in eu.iter().chain(&us) {
        let snap = p.result.as_ref().unwrap_or_else(|e| panic!("{} failed: {e}", p.id));
        assert!(snap.warnings.is_empty(), "{}: {:?}", p.id, snap.warnings);
        assert_eq!(snap.id, p.id);
    }
    assert_eq!(find(&eu, "shop-prod").id.account_id, "111122223333");
    assert_eq!(find(&us, "payments").id.account_id, "444455556666");
}

#[test]
fn the_demo_clusters_have_the_style_mode_and_roles_of_their_tools() {
    let eu = poll(&demo_dir(), "eu-west-1");
    let us = poll(&demo_dir(), "us-east-1");
    // (cluster, style, mode, cluster, control-plane, node, remote-access, endpoint groups)
    let table = [
        (snapshot(&eu, "shop-prod"), Style::Console, EndpointMode::Public, [1, 1, 0, 1, 0]),
        (snapshot(&us, "payments"), Style::Eksctl, EndpointMode::PublicPrivate, [1, 1, 2, 0, 0]),
        (snapshot(&eu, "ledger"), Style::Terraform, EndpointMode::Private, [1, 1, 1, 0, 1]),
    ];
    for (snap, style, mode, counts) in table {
        let name = &snap.id.name;
        assert_eq!(snap.style, style, "{name}");
        assert_eq!(snap.endpoint_mode, mode, "{name}");
        let roles = [Role::Cluster, Role::ControlPlane, Role::Node, Role::RemoteAccess, Role::Endpoint];
        let got: Vec<usize> = roles.iter().map(|r| count(snap, *r)).collect();
        assert_eq!(got, counts, "{name}: groups per role {roles:?}");
        let cluster_sg = snap.cluster_security_group_id.as_deref().expect("cluster SG");
        assert_eq!(snap.groups[cluster_sg].primary_role(), Role::Cluster, "{name}");
        assert!(!snap.groups.values().any(|g| g.name == "default"), "{name}: the VPC default group is no role's");
    }
}

#[test]
fn the_demo_node_groups_carry_the_groups_each_tool_attaches() {
    let eu = poll(&demo_dir(), "eu-west-1");
    let us = poll(&demo_dir(), "us-east-1");
    // Managed without launch template: cluster SG + remote-access SG; eksctl managed: its
    // template lists the cluster SG; eksctl unmanaged: shared + own SG; terraform: node SG only.
    let table: [(&ClusterSnapshot, &str, NodeGroupKind, &[Role]); 6] = [
        (snapshot(&eu, "shop-prod"), "general", NodeGroupKind::Managed, &[Role::Cluster, Role::RemoteAccess]),
        (snapshot(&eu, "shop-prod"), "spot", NodeGroupKind::Managed, &[Role::Cluster]),
        (snapshot(&us, "payments"), "ng-managed", NodeGroupKind::Managed, &[Role::Cluster]),
        (snapshot(&us, "payments"), "ng-workers", NodeGroupKind::SelfManaged, &[Role::Node, Role::Node]),
        (snapshot(&eu, "ledger"), "default-20240611091529154200000009", NodeGroupKind::Managed, &[Role::Node]),
        (snapshot(&eu, "ledger"), "batch-20240611091533116500000011", NodeGroupKind::SelfManaged, &[Role::Node]),
    ];
    for (snap, ng, kind, roles) in table {
        let group = snap
            .node_groups
            .iter()
            .find(|g| g.name == ng)
            .unwrap_or_else(|| panic!("{}: no node group {ng} in {:?}", snap.id.name, snap.node_groups));
        assert_eq!(group.kind, kind, "{ng}");
        assert_eq!(roles_of(snap, &group.security_group_ids), roles, "{ng}");
    }
    for name in ["shop-prod", "ledger"] {
        assert_eq!(snapshot(&eu, name).node_groups.len(), 2, "{name}");
    }
    assert_eq!(snapshot(&us, "payments").node_groups.len(), 2);
}

#[test]
fn the_demo_rules_are_read_in_canonical_form() {
    let eu = poll(&demo_dir(), "eu-west-1");
    let shop = snapshot(&eu, "shop-prod");
    let ssh = layouts::group(shop, Role::RemoteAccess);
    assert!(layouts::has(ssh, &layouts::rule(Direction::Ingress, "tcp 22", "0.0.0.0/0")));
    let cluster = layouts::group(shop, Role::Cluster);
    let widened = layouts::rule(Direction::Ingress, "tcp 0-65535", "10.0.0.0/8");
    let found = cluster.rules.iter().find(|r| r.key() == widened.key()).expect("the widened NodePort rule");
    assert_eq!(found.description.as_deref(), Some("NLB NodePorts from corp network"));
    assert!(layouts::has(cluster, &layouts::rule(Direction::Ingress, "all", &cluster.id)));

    let ledger = snapshot(&eu, "ledger");
    let node = layouts::group(ledger, Role::Node);
    let kubelet = |r: &sgdrift::model::Rule| r.direction == Direction::Ingress && r.traffic.to_port() == 10250;
    assert!(!node.rules.iter().any(kubelet), "the demo deleted the kubelet rule");
    assert!(node.rules.iter().any(|r| r.direction == Direction::Ingress && r.traffic.protocol_name() == "udp"));
    // terraform strips the default egress of the groups it makes.
    let cp = layouts::group(ledger, Role::ControlPlane);
    assert!(cp.rules.iter().all(|r| r.direction == Direction::Ingress), "{:?}", cp.rules);
}

#[test]
fn the_private_demo_cluster_knows_its_endpoints_prefix_lists_and_vpc() {
    let eu = poll(&demo_dir(), "eu-west-1");
    let ledger = snapshot(&eu, "ledger");
    let mut interface: Vec<&str> =
        ledger.vpc_endpoints.iter().filter(|e| e.kind == VpcEndpointKind::Interface).map(|e| e.service()).collect();
    interface.sort();
    assert_eq!(interface, ["ec2", "ecr.api", "ecr.dkr", "logs", "sts"]);
    let gateways: Vec<&str> =
        ledger.vpc_endpoints.iter().filter(|e| e.kind == VpcEndpointKind::Gateway).map(|e| e.service()).collect();
    assert_eq!(gateways, ["s3"]);
    let endpoint_sg = layouts::group(ledger, Role::Endpoint);
    assert!(ledger
        .vpc_endpoints
        .iter()
        .filter(|e| e.kind == VpcEndpointKind::Interface)
        .all(|e| e.security_group_ids == [endpoint_sg.id.clone()]));
    assert_eq!(ledger.prefix_lists.get("pl-6da54004").map(String::as_str), Some("com.amazonaws.eu-west-1.s3"));
    assert_eq!(ledger.vpc_cidrs, vec!["10.20.0.0/16".parse::<ipnet::IpNet>().unwrap()]);
}

#[test]
fn malformed_json_names_file_line_and_column_and_spares_the_other_clusters() {
    let tmp = demo_copy();
    let file = tmp.path().join("shop-prod/describe-security-groups.json");
    let text = std::fs::read_to_string(&file).unwrap();
    // Drop the comma after the first GroupId: the parser trips on the next line's first key.
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    let at = lines.iter().position(|l| l.contains("\"GroupId\"")).unwrap();
    lines[at] = lines[at].trim_end_matches(',').to_string();
    std::fs::write(&file, lines.join("\n")).unwrap();
    let next = &lines[at + 1];
    let column = next.len() - next.trim_start().len() + 1;

    let eu = poll(tmp.path(), "eu-west-1");
    let message = error(&eu, "shop-prod");
    let location = format!("{}:{}:{column}:", file.display(), at + 2);
    assert!(message.starts_with(&location), "`{message}` should start with `{location}`");
    assert!(message.contains("aws ec2 describe-security-groups"), "{message}");
    snapshot(&eu, "ledger");
}

#[test]
fn a_broken_describe_cluster_is_reported_once_in_the_region_of_its_arn() {
    let tmp = demo_copy();
    let file = tmp.path().join("payments/describe-cluster.json");
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, &text[..text.len() / 2]).unwrap();

    let us = poll(tmp.path(), "us-east-1");
    let message = error(&us, "payments");
    assert!(message.starts_with(&format!("{}:", file.display())), "{message}");
    assert!(message.contains("EOF"), "{message}");
    assert_eq!(find(&us, "payments").id.account_id, "444455556666");
    let eu = poll(tmp.path(), "eu-west-1");
    assert!(eu.iter().all(|p| p.id.name != "payments"));
    assert!(eu.iter().all(|p| p.result.is_ok()));
}

#[test]
fn a_missing_required_file_is_a_clear_error_for_that_cluster_only() {
    let tmp = demo_copy();
    std::fs::remove_file(tmp.path().join("ledger/describe-security-groups.json")).unwrap();
    std::fs::remove_file(tmp.path().join("payments/describe-cluster.json")).unwrap();

    let eu = poll(tmp.path(), "eu-west-1");
    let message = error(&eu, "ledger");
    assert!(message.contains("ledger/describe-security-groups.json"), "{message}");
    assert!(message.contains("missing"), "{message}");
    assert!(message.contains("aws ec2 describe-security-groups --filters Name=vpc-id,Values=vpc-"), "{message}");
    snapshot(&eu, "shop-prod");

    let us = poll(tmp.path(), "us-east-1");
    let message = error(&us, "payments");
    assert!(message.contains("payments/describe-cluster.json"), "{message}");
    assert!(message.contains("aws eks describe-cluster --name payments"), "{message}");
}

#[test]
fn groups_referenced_but_absent_become_warnings() {
    let dir = repo().join("tests/fixtures/files");
    let eu = poll(&dir, "eu-west-1");
    let snap = snapshot(&eu, "orphans");
    assert_eq!(snap.warnings.len(), 2, "{:?}", snap.warnings);
    let control_plane =
        snap.warnings.iter().find(|w| w.contains("sg-0e9d8c7b6a5f4e3d2")).expect("control-plane warning");
    assert!(control_plane.contains("control-plane"), "{control_plane}");
    assert!(control_plane.contains("describe-security-groups.json"), "{control_plane}");
    let template = snap.warnings.iter().find(|w| w.contains("lt-0f1e2d3c4b5a69788")).expect("launch template warning");
    assert!(template.contains("version 4"), "{template}");
    // The template's version is unknown and no instance says otherwise: EKS's default applies.
    assert_eq!(roles_of(snap, &snap.node_groups[0].security_group_ids), [Role::Cluster]);
    assert_eq!(snap.control_plane_security_group_ids, ["sg-0e9d8c7b6a5f4e3d2"]);
    assert!(!snap.groups.contains_key("sg-0e9d8c7b6a5f4e3d2"));
}

#[test]
fn a_launch_template_without_groups_leaves_the_nodes_in_the_cluster_group() {
    let tmp = demo_copy();
    let file = tmp.path().join("ledger/describe-launch-template-versions.json");
    let mut doc: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    for v in doc["LaunchTemplateVersions"].as_array_mut().unwrap() {
        v["LaunchTemplateData"].as_object_mut().unwrap().remove("SecurityGroupIds");
    }
    std::fs::write(&file, serde_json::to_string_pretty(&doc).unwrap()).unwrap();

    let eu = poll(tmp.path(), "eu-west-1");
    let ledger = snapshot(&eu, "ledger");
    let managed = ledger.node_groups.iter().find(|g| g.kind == NodeGroupKind::Managed).unwrap();
    assert_eq!(roles_of(ledger, &managed.security_group_ids), [Role::Cluster]);
}

#[test]
fn the_target_picks_clusters_by_name_and_region() {
    let source = FilesSource::new(demo_dir());
    let names = |region: &str, clusters: &[&str]| -> Vec<String> {
        source.poll(&spec(region, clusters)).clusters.into_iter().map(|c| c.id.name).collect()
    };
    assert_eq!(names("eu-west-1", &["ledger"]), ["ledger"]);
    assert_eq!(names("eu-west-1", &["payments"]), Vec::<String>::new());
    assert_eq!(names("us-east-1", &["payments", "ledger"]), ["payments"]);
    assert_eq!(names("ap-south-1", &["*"]), Vec::<String>::new());
}

#[test]
fn a_missing_directory_fails_the_target_with_its_path() {
    let poll = FilesSource::new(PathBuf::from("/nonexistent/sgdrift-demo")).poll(&spec("eu-west-1", &["*"]));
    let (_, err) = poll.error.expect("target error");
    assert_eq!(err.kind(), "input");
    assert!(err.to_string().contains("/nonexistent/sgdrift-demo"), "{err}");
}

#[test]
fn every_layout_is_recognised_as_its_own_style() {
    for style in layouts::STYLES {
        for mode in EndpointMode::ALL {
            let snap = layouts::cluster(style, mode);
            let detected = style::detect(&snap.id.name, &Default::default(), snap.groups.values());
            // Auto Mode is read from `computeConfig.enabled`; its groups are EKS's own, as a
            // console cluster's.
            let by_groups = if style == Style::AutoMode { Style::Console } else { style };
            assert_eq!(detected, by_groups, "{}", snap.id.name);
            assert_eq!(snap.style, style);
            assert_eq!(snap.endpoint_mode, mode);
        }
    }
}

#[test]
fn every_layout_names_only_groups_it_has() {
    for style in layouts::STYLES {
        for mode in EndpointMode::ALL {
            let snap = layouts::cluster(style, mode);
            let name = &snap.id.name;
            let mut referenced = snap.control_plane_set();
            referenced.extend(snap.node_groups.iter().flat_map(|g| g.security_group_ids.clone()));
            referenced.extend(snap.vpc_endpoints.iter().flat_map(|e| e.security_group_ids.clone()));
            for id in &referenced {
                assert!(snap.groups.contains_key(id), "{name}: {id} is referenced but not a group");
            }
            for (id, g) in &snap.groups {
                assert_eq!(id, &g.id);
                assert!(id.len() == 20 && id.starts_with("sg-0"), "{name}: `{id}` is not an sg- id of 17 hex digits");
                let roles_in_rules = g.rules.iter().filter_map(|r| r.peer.group_id());
                for peer in roles_in_rules {
                    assert!(snap.groups.contains_key(peer), "{name}: {id} references unknown {peer}");
                }
            }
            assert!(!snap.node_groups.is_empty(), "{name}");
            let private = mode == EndpointMode::Private;
            assert_eq!(!snap.vpc_endpoints.is_empty(), private, "{name}: endpoints only in private mode");
        }
    }
}

#[test]
fn layouts_attach_groups_the_way_each_tool_does() {
    for mode in EndpointMode::ALL {
        let console = layouts::cluster(Style::Console, mode);
        assert_eq!(roles_of(&console, &console.node_groups[0].security_group_ids), [Role::Cluster]);

        let tf = layouts::cluster(Style::Terraform, mode);
        let cp = layouts::group(&tf, Role::ControlPlane);
        assert!(cp.rules.iter().all(|r| r.direction == Direction::Ingress), "terraform ≥ v19: no control-plane egress");
        assert_eq!(roles_of(&tf, &tf.node_groups[0].security_group_ids), [Role::Node]);

        let eksctl = layouts::cluster(Style::Eksctl, mode);
        let shared = layouts::group_named(&eksctl, "ClusterSharedNodeSecurityGroup");
        let cluster = layouts::group(&eksctl, Role::Cluster);
        assert!(layouts::has(cluster, &layouts::rule(Direction::Ingress, "all", &shared.id)));
        if mode == EndpointMode::Private {
            assert!(eksctl
                .vpc_endpoints
                .iter()
                .filter(|e| e.kind == VpcEndpointKind::Interface)
                .all(|e| e.security_group_ids == [shared.id.clone()]));
        }
    }
}

#[test]
fn layout_helpers_inject_and_remove_drift() {
    let mut snap = layouts::cluster(Style::Terraform, EndpointMode::Private);
    let node = layouts::group(&snap, Role::Node).id.clone();
    let cp = layouts::group(&snap, Role::ControlPlane).id.clone();
    let kubelet = layouts::rule(Direction::Ingress, "tcp 10250", &cp);
    layouts::remove_rule(&mut snap, &node, &kubelet);
    assert!(!layouts::has(&snap.groups[&node], &kubelet));
    let ssh = layouts::rule(Direction::Ingress, "tcp 22", "0.0.0.0/0");
    layouts::add_rule(&mut snap, &node, ssh.clone());
    layouts::add_rule(&mut snap, &node, ssh.clone());
    assert_eq!(snap.groups[&node].rules.iter().filter(|r| r.key() == ssh.key()).count(), 1);
}

#[test]
fn every_layout_keeps_every_required_flow_open() {
    let ctx = sgdrift::flows::FlowContext { webhook_ports: vec![9443, 8443] };
    for style in layouts::STYLES {
        for mode in EndpointMode::ALL {
            let snap = layouts::cluster(style, mode);
            let flows = sgdrift::flows::check(&snap, &ctx);
            assert!(!flows.is_empty(), "{}", snap.id.name);
            for f in flows {
                assert_eq!(f.status, sgdrift::flows::FlowStatus::Open, "{}: {}", snap.id.name, f.detail);
            }
        }
    }
}

#[test]
fn the_demo_closes_only_the_kubelet_flow_of_ledger() {
    let ctx = sgdrift::flows::FlowContext { webhook_ports: vec![9443] };
    let polls: Vec<ClusterPoll> =
        [poll(&demo_dir(), "eu-west-1"), poll(&demo_dir(), "us-east-1")].into_iter().flatten().collect();
    let mut closed = Vec::new();
    for p in &polls {
        let snap = p.result.as_ref().expect("demo loads");
        for f in sgdrift::flows::check(snap, &ctx) {
            if f.status == sgdrift::flows::FlowStatus::Closed {
                closed.push((snap.id.name.clone(), f.name.as_str(), f.node_group.unwrap_or_default()));
            }
        }
    }
    closed.sort();
    assert_eq!(
        closed,
        [
            ("ledger".to_string(), "kubelet", "batch-20240611091533116500000011".to_string()),
            ("ledger".to_string(), "kubelet", "default-20240611091529154200000009".to_string()),
        ]
    );
}

/// Copies a directory tree (one level of cluster directories).
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[test]
fn files_under_other_names_are_recognised_by_what_the_cli_printed() {
    let tmp = tempfile::tempdir().unwrap();
    copy_tree(&demo_dir(), tmp.path());
    let mut renamed = 0;
    for cluster in std::fs::read_dir(tmp.path()).unwrap() {
        let cluster = cluster.unwrap().path();
        for (i, file) in std::fs::read_dir(&cluster).unwrap().enumerate() {
            let file = file.unwrap().path();
            std::fs::rename(&file, cluster.join(format!("export-{i}.json"))).unwrap();
            renamed += 1;
        }
    }
    assert!(renamed > 10);
    for region in ["eu-west-1", "us-east-1"] {
        let original = poll(&demo_dir(), region);
        let again = poll(tmp.path(), region);
        assert_eq!(original.len(), again.len());
        for o in &original {
            let want = o.result.as_ref().expect("the demo loads");
            let got = snapshot(&again, &o.id.name);
            assert_eq!(got, want, "{} read from renamed files", o.id.name);
        }
    }
}

/// `aws eks describe-addon --addon-name vpc-cni` as the files source reads it: the pod-SG
/// enforcing mode of its `configurationValues`, strict by default, unknown without the file.
#[test]
fn the_vpc_cni_add_on_file_gives_the_pod_sg_enforcing_mode_and_a_broken_one_names_itself() {
    use sgdrift::model::PodSgEnforcingMode;
    let addon = |values: Option<&str>| {
        let mut a = serde_json::json!({ "addonName": "vpc-cni", "clusterName": "shop-prod", "addonVersion": "v1.19.0-eksbuild.1", "status": "ACTIVE" });
        if let Some(v) = values {
            a["configurationValues"] = v.into();
        }
        serde_json::to_string_pretty(&serde_json::json!({ "addon": a })).unwrap()
    };
    let cases = [
        (None, PodSgEnforcingMode::Unknown),
        (Some(addon(None)), PodSgEnforcingMode::Strict),
        (Some(addon(Some("env:\n  POD_SECURITY_GROUP_ENFORCING_MODE: standard\n"))), PodSgEnforcingMode::Standard),
        (Some(addon(Some(r#"{"env":{"POD_SECURITY_GROUP_ENFORCING_MODE":"strict"}}"#))), PodSgEnforcingMode::Strict),
    ];
    for (file, want) in cases {
        let tmp = demo_copy();
        if let Some(text) = &file {
            std::fs::write(tmp.path().join("shop-prod/describe-addon-vpc-cni.json"), text).unwrap();
        }
        let polls = poll(tmp.path(), "eu-west-1");
        assert_eq!(snapshot(&polls, "shop-prod").data_plane.pod_sg_enforcing_mode, want, "{file:?}");
    }
    let tmp = demo_copy();
    std::fs::write(tmp.path().join("shop-prod/describe-addon-vpc-cni.json"), "{\"addon\": [}").unwrap();
    let e = error(&poll(tmp.path(), "eu-west-1"), "shop-prod");
    assert!(e.contains("describe-addon-vpc-cni.json:1:"), "{e}");
    assert!(e.contains("aws eks describe-addon --cluster-name shop-prod --addon-name vpc-cni --output json"), "{e}");
}

/// `aws eks describe-fargate-profile` files: each profile an endpoint with the cluster SG; a file
/// that is not the command's output names the file and the command.
#[test]
fn fargate_profile_files_are_endpoints_with_the_cluster_sg() {
    let tmp = demo_copy();
    let profile = serde_json::json!({ "fargateProfile": {
        "fargateProfileName": "fp-default", "clusterName": "shop-prod", "status": "ACTIVE",
        "podExecutionRoleArn": "arn:aws:iam::111122223333:role/fargate", "subnets": ["subnet-08feade5a03a33591"],
        "selectors": [{ "namespace": "default" }] } });
    std::fs::write(tmp.path().join("shop-prod/describe-fargate-profile-fp-default.json"), profile.to_string()).unwrap();
    let polls = poll(tmp.path(), "eu-west-1");
    let snap = snapshot(&polls, "shop-prod");
    let fargate = snap.node_groups.iter().find(|g| g.kind == NodeGroupKind::Fargate).expect("the profile");
    assert_eq!(
        (fargate.name.as_str(), &fargate.security_group_ids),
        ("fp-default", &vec![snap.cluster_security_group_id.clone().unwrap()])
    );

    std::fs::write(tmp.path().join("shop-prod/describe-fargate-profile-fp-default.json"), "{\"fargateProfile\": {}}")
        .unwrap();
    let e = error(&poll(tmp.path(), "eu-west-1"), "shop-prod");
    assert!(e.contains("describe-fargate-profile-fp-default.json:1:"), "{e}");
    assert!(
        e.contains("aws eks describe-fargate-profile --cluster-name shop-prod --fargate-profile-name fp-default"),
        "{e}"
    );
}
