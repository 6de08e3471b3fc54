//! `sgdrift fix` against live AWS, here the local emulator: for each drift class of the test
//! fleet, `fix --apply` restores a clean `check` and leaves every other rule as it was, pasting
//! the printed AWS CLI commands does exactly the same, and a revoke that would cut the kubelet off
//! is refused with the reason while excepted rules stay out of the plan; on the offline demo, the
//! plan is printed and --apply refused.

use crate::support::moto;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{json, Value};

/// Runs sgdrift against the emulator (`Moto::sgdrift`).
fn sgdrift(server: &moto::Moto, region: &str, args: &[&str]) -> Output {
    server.sgdrift(region, args)
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn explain(out: &Output) -> String {
    format!("stdout:\n{}\nstderr:\n{}", stdout(out), String::from_utf8_lossy(&out.stderr))
}

/// One region of the emulator with the clean clusters of the fleet built in it.
struct Fleet {
    server: &'static moto::Moto,
    region: String,
    _dir: tempfile::TempDir,
    config: PathBuf,
    manifest: Value,
}

/// terraform-aws-eks defaults (private endpoint, NAT) and eksctl's managed-only default: both
/// clean under eks-minimal, so every finding after an injected drift is that drift's.
const CLUSTERS: &str = "terraform-nat,eksctl-managed";

impl Fleet {
    fn build(region: &str, exceptions: &str) -> Fleet {
        let server = moto::server_for(module_path!());
        let manifest = server.build_fixture(&["--region", region, "--scenario", "layouts", "--only", CLUSTERS]);
        let dir = tempfile::tempdir().expect("temp dir");
        let config = dir.path().join("sgdrift.toml");
        std::fs::write(
            &config,
            format!(
                "[poll]\ntimeout = \"20s\"\n\n[source]\nkind = \"aws\"\n\n[[targets]]\nregions = [\"{region}\"]\n\
                 clusters = [\"terraform-nat\", \"eksctl-managed\"]\nbaseline = \"eks-minimal\"\nwebhook_ports = [9443]\n{exceptions}"
            ),
        )
        .expect("write the config");
        Fleet { server, region: region.to_string(), _dir: dir, config, manifest }
    }

    fn group(&self, cluster: &str, role: &str) -> String {
        moto::manifest_groups(&self.manifest, cluster, role)
            .first()
            .cloned()
            .unwrap_or_else(|| panic!("{cluster} has no {role} group"))
    }

    fn sgdrift(&self, args: &[&str]) -> Output {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--config", self.config.to_str().expect("utf-8 path")]);
        sgdrift(self.server, &self.region, &all)
    }

    /// ec2_rules.py (see there) against this region.
    fn ec2(&self, what: &str, args: &[&str]) -> String {
        let python = std::env::var("SGDRIFT_PYTHON")
            .map(PathBuf::from)
            .unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python"));
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/aws/ec2_rules.py");
        let out = Command::new(&python)
            .arg(&script)
            .args(["--endpoint", &self.server.url, "--region", &self.region, what])
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("{}: {e}", python.display()));
        assert!(out.status.success(), "ec2_rules.py {what} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        stdout(&out)
    }

    /// Every rule of the two clusters' groups, groups and peers named `<cluster>/<role>`.
    fn rules(&self) -> Vec<Value> {
        let mut labels = BTreeMap::new();
        for cluster in CLUSTERS.split(',') {
            for role in ["cluster", "control-plane", "node"] {
                labels.insert(self.group(cluster, role), format!("{cluster}/{role}"));
            }
        }
        serde_json::from_str(&self.ec2("rules", &[&serde_json::to_string(&labels).expect("json")])).expect("rules JSON")
    }

    /// Injects one drift class.
    fn inject(&self, drift: &Drift) {
        let group = self.group(drift.cluster, drift.role);
        let mut permission = drift.permission.clone();
        if let Some(pairs) = permission.get_mut("UserIdGroupPairs") {
            pairs[0]["GroupId"] = json!(self.group(drift.cluster, "control-plane"));
        }
        let kwargs = json!({ "GroupId": group, "IpPermissions": [permission] });
        self.ec2("call", &[drift.method, &kwargs.to_string()]);
    }
}

/// One way the fleet drifts: a boto3 call on a group of a cluster.
struct Drift {
    name: &'static str,
    cluster: &'static str,
    role: &'static str,
    method: &'static str,
    /// One `IpPermission`; a `UserIdGroupPairs` entry names the cluster's control-plane group.
    permission: Value,
}

fn drifts() -> Vec<Drift> {
    let world = |proto: &str, from: i32, to: i32| json!({"IpProtocol": proto, "FromPort": from, "ToPort": to, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]});
    let d = |name, cluster, role, method, permission| Drift { name, cluster, role, method, permission };
    vec![
        d("internet SSH", "terraform-nat", "node", "authorize_security_group_ingress", world("tcp", 22, 22)),
        d("wide NodePorts", "terraform-nat", "node", "authorize_security_group_ingress", world("tcp", 30000, 32767)),
        d(
            "world-open control plane 443",
            "terraform-nat",
            "control-plane",
            "authorize_security_group_ingress",
            world("tcp", 443, 443),
        ),
        // The node group already admits tcp 443 from the control plane: EC2 merges both peers
        // into one permission, of which only the internet must go.
        d(
            "one peer of a merged permission",
            "terraform-nat",
            "node",
            "authorize_security_group_ingress",
            world("tcp", 443, 443),
        ),
        // Not one of the seed's classes: it exercises a revoke of egress and of a group reference.
        d(
            "egress to the control plane on a port EKS does not use",
            "terraform-nat",
            "node",
            "authorize_security_group_egress",
            json!({"IpProtocol": "tcp", "FromPort": 5432, "ToPort": 5432, "UserIdGroupPairs": [{"GroupId": ""}]}),
        ),
        d(
            "deleted kubelet rule",
            "terraform-nat",
            "node",
            "revoke_security_group_ingress",
            // moto matches a group pair's description on revoke (EC2 does not): name it.
            json!({"IpProtocol": "tcp", "FromPort": 10250, "ToPort": 10250, "UserIdGroupPairs": [{"GroupId": "", "Description": "Cluster API to node kubelets"}]}),
        ),
        d(
            "deleted node egress",
            "terraform-nat",
            "node",
            "revoke_security_group_egress",
            json!({"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}),
        ),
        d(
            "stripped cluster SG egress",
            "eksctl-managed",
            "cluster",
            "revoke_security_group_egress",
            json!({"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}),
        ),
    ]
}

fn ids(rules: &[Value]) -> BTreeSet<String> {
    rules.iter().map(|r| r["id"].as_str().expect("id").to_string()).collect()
}

/// The rules without their ids: what two builds of the fleet share.
fn content(rules: &[Value]) -> Vec<Value> {
    rules
        .iter()
        .map(|r| {
            let mut r = r.clone();
            r.as_object_mut().expect("object").remove("id");
            r
        })
        .collect()
}

/// The AWS CLI commands of a printed plan, in order.
fn commands(plan: &str) -> Vec<String> {
    plan.lines().map(str::trim).filter(|l| l.starts_with("aws ec2 ")).map(str::to_string).collect()
}

#[test]
fn each_drift_class_is_fixed_by_apply_and_by_pasting_the_printed_commands_alike() {
    let applied = Fleet::build("eu-west-3", "");
    let pasted = Fleet::build("eu-south-1", "");
    for fleet in [&applied, &pasted] {
        let out = fleet.sgdrift(&["check"]);
        assert_eq!(out.status.code(), Some(0), "the fleet starts clean\n{}", explain(&out));
    }
    for drift in drifts() {
        let name = drift.name;
        let clean = applied.rules();
        applied.inject(&drift);
        pasted.inject(&drift);
        let drifted = applied.rules();
        let out = applied.sgdrift(&["check"]);
        assert_eq!(out.status.code(), Some(1), "{name}: check sees the drift\n{}", explain(&out));

        let out = applied.sgdrift(&["fix", "--cluster", drift.cluster, "--apply"]);
        assert_eq!(out.status.code(), Some(0), "{name}: fix --apply\n{}", explain(&out));
        assert!(stdout(&out).contains("applied 1/"), "{name}\n{}", explain(&out));
        let out = applied.sgdrift(&["check"]);
        assert_eq!(out.status.code(), Some(0), "{name}: check after fix --apply\n{}", explain(&out));
        let fixed = applied.rules();
        // Only the injected rule went; nothing else lost or changed its id.
        let removed: BTreeSet<String> = ids(&drifted).difference(&ids(&fixed)).cloned().collect();
        let injected: BTreeSet<String> = ids(&drifted).difference(&ids(&clean)).cloned().collect();
        assert_eq!(removed, injected, "{name}: revoked rules");
        let before: Vec<&Value> = drifted.iter().filter(|r| !removed.contains(r["id"].as_str().unwrap())).collect();
        assert!(
            before.iter().all(|r| fixed.contains(r)),
            "{name}: a rule changed\nbefore {before:#?}\nafter {fixed:#?}"
        );
        for added in fixed.iter().filter(|r| !ids(&drifted).contains(r["id"].as_str().unwrap())) {
            assert!(added["description"].as_str().is_some_and(|d| d.starts_with("sgdrift")), "{name}: {added}");
        }
        let again = applied.sgdrift(&["fix", "--cluster", drift.cluster, "--apply"]);
        assert_eq!(again.status.code(), Some(0), "{name}: second run\n{}", explain(&again));
        assert!(stdout(&again).contains("nothing to fix"), "{name}: a second run plans nothing\n{}", explain(&again));

        let plan = pasted.sgdrift(&["fix", "--cluster", drift.cluster]);
        assert_eq!(plan.status.code(), Some(1), "{name}: the plan alone changes nothing\n{}", explain(&plan));
        let printed = commands(&stdout(&plan));
        assert!(!printed.is_empty(), "{name}: no command printed\n{}", explain(&plan));
        for command in &printed {
            assert!(command.contains(&format!("--region {}", pasted.region)), "{command}");
            pasted.ec2("paste", &[command]);
        }
        let out = pasted.sgdrift(&["check"]);
        assert_eq!(out.status.code(), Some(0), "{name}: check after pasting {printed:#?}\n{}", explain(&out));
        assert_eq!(content(&pasted.rules()), content(&fixed), "{name}: pasting differs from --apply");
    }
}

#[test]
fn a_revoke_that_would_cut_off_the_kubelet_is_refused_and_excepted_rules_stay_out_of_the_plan() {
    let probe = Fleet::build("ap-northeast-3", "");
    let node = probe.group("terraform-nat", "node");
    let exception = format!(
        "\n[[exceptions]]\ngroup_id = \"{node}\"\nrule = \"ingress tcp 22 from 0.0.0.0/0\"\nreason = \"bastion during the migration\"\nexpires = \"2099-12-31\"\n"
    );
    std::fs::write(&probe.config, std::fs::read_to_string(&probe.config).unwrap() + &exception).unwrap();
    let fleet = probe;
    let cp = fleet.group("terraform-nat", "control-plane");
    let world = |port: i32| json!({"IpProtocol": "tcp", "FromPort": port, "ToPort": port, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]});
    for permission in [world(10250), world(22)] {
        fleet.ec2(
            "call",
            &["authorize_security_group_ingress", &json!({"GroupId": node, "IpPermissions": [permission]}).to_string()],
        );
    }
    let kubelet = json!({"IpProtocol": "tcp", "FromPort": 10250, "ToPort": 10250, "UserIdGroupPairs": [{"GroupId": cp, "Description": "Cluster API to node kubelets"}]});
    fleet.ec2(
        "call",
        &["revoke_security_group_ingress", &json!({"GroupId": node, "IpPermissions": [kubelet]}).to_string()],
    );
    let before = fleet.rules();

    let out = fleet.sgdrift(&["fix", "--cluster", "terraform-nat", "--apply"]);
    assert_eq!(out.status.code(), Some(1), "drift is left\n{}", explain(&out));
    let text = stdout(&out);
    let refused = text
        .lines()
        .find(|l| l.contains("refused: revoke ingress tcp 10250 from 0.0.0.0/0"))
        .unwrap_or_else(|| panic!("no refusal\n{text}"));
    assert!(refused.contains("it would close the kubelet flow of node group"), "{refused}");
    assert!(refused.contains(&format!("authorize ingress tcp 10250 from {cp} on {node} first")), "{refused}");
    assert!(!text.contains("applied"), "nothing is applied\n{text}");
    assert!(!text.contains("tcp 22"), "the excepted SSH rule is not in the plan\n{text}");
    assert_eq!(fleet.rules(), before, "no rule changed");
}

#[test]
fn on_the_offline_demo_fix_prints_the_plan_and_will_not_apply_without_aws() {
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/demo.toml");
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_sgdrift"))
            .args(args)
            .arg("--config")
            .arg(&demo)
            .output()
            .expect("sgdrift runs")
    };
    let out = run(&["fix", "--cluster", "shop-prod"]);
    assert_eq!(out.status.code(), Some(1), "the demo drifts\n{}", explain(&out));
    let plan = stdout(&out);
    assert!(plan.starts_with("111122223333/eu-west-1/shop-prod: "), "{plan}");
    assert!(commands(&plan).iter().all(|c| c.contains("--region eu-west-1 --group-id sg-")), "{plan}");
    let out = run(&["fix", "--cluster", "shop-prod", "--min-severity", "critical"]);
    assert!(
        commands(&stdout(&out)).len() < commands(&plan).len(),
        "--min-severity leaves lower findings alone\n{}",
        explain(&out)
    );
    let out = run(&["fix", "--cluster", "shop-prod", "--apply"]);
    assert_eq!(out.status.code(), Some(2), "{}", explain(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("`fix --apply` writes to AWS, so it needs source.kind = \"aws\""), "{err}");
    let out = run(&["fix", "--cluster", "no-such-cluster"]);
    assert_eq!(out.status.code(), Some(2), "{}", explain(&out));
}
