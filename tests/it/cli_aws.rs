//! `sgdrift check` and `sgdrift record` against live AWS, here the local emulator: the same
//! binary, config and credentials chain users run, pointed at moto by AWS_ENDPOINT_URL.

use crate::support::moto;
use crate::support::proxy;
use crate::support::schema;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Runs sgdrift with the standard AWS variables aimed at the emulator, and nothing else of AWS.
fn sgdrift(server: &moto::Moto, region: &str, args: &[&str]) -> Output {
    sgdrift_at(&server.url, region, args)
}

/// As [`sgdrift`], with AWS at `endpoint` (the emulator, or a proxy in front of it).
fn sgdrift_at(endpoint: &str, region: &str, args: &[&str]) -> Output {
    moto::sgdrift_at(endpoint, region, args)
}

fn config(dir: &Path, region: &str, clusters: &str, baseline: &str) -> PathBuf {
    let path = dir.join(format!("sgdrift-{}.toml", clusters.replace(['"', ',', ' ', '*'], "")));
    std::fs::write(
        &path,
        format!(
            "[poll]\ntimeout = \"20s\"\n\n[source]\nkind = \"aws\"\n\n[[targets]]\nregions = [\"{region}\"]\nclusters = [{clusters}]\nbaseline = \"{baseline}\"\nwebhook_ports = [9443]\n"
        ),
    )
    .unwrap();
    path
}

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// Authorizes or revokes one ingress rule through the AWS API (boto3 in the test venv).
fn ingress(server: &moto::Moto, region: &str, verb: &str, group: &str, port: u16, cidr: &str) {
    let python = std::env::var("SGDRIFT_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python"));
    let script = format!(
        "import boto3\nec2 = boto3.client('ec2', endpoint_url='{}', region_name='{region}', aws_access_key_id='testing', aws_secret_access_key='testing')\n\
         ec2.{verb}_security_group_ingress(GroupId='{group}', IpPermissions=[{{'IpProtocol': 'tcp', 'FromPort': {port}, 'ToPort': {port}, 'IpRanges': [{{'CidrIp': '{cidr}'}}]}}])\n",
        server.url
    );
    let out =
        Command::new(&python).arg("-c").arg(script).output().unwrap_or_else(|e| panic!("{}: {e}", python.display()));
    assert!(out.status.success(), "{verb} failed: {}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn check_reads_every_cluster_of_a_region_with_one_security_group_call_and_one_walk_per_ec2_shape() {
    let server = moto::server_for(module_path!());
    let region = "ap-south-1";
    let manifest = server.build_fixture(&["--region", region]);
    let names = moto::manifest_clusters(&manifest);
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), region, "\"*\"", "eks-minimal");
    let out = sgdrift(server, region, &["check", "--config", cfg.to_str().unwrap(), "--format", "json"]);
    assert_ne!(out.status.code(), Some(2), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    let report = json(&out);
    schema::assert_matches_schema("report.schema.json", "check --format json against the emulator", &report);
    let mut seen: Vec<String> =
        report["clusters"].as_array().unwrap().iter().map(|c| c["cluster"].as_str().unwrap().to_string()).collect();
    seen.sort();
    let mut want = names.clone();
    want.sort();
    assert_eq!(seen, want);
    for c in report["clusters"].as_array().unwrap() {
        assert_ne!(c["status"], "error", "{c}");
        let name = c["cluster"].as_str().unwrap();
        assert_eq!(c["style"], manifest["clusters"][name]["style"], "{name}");
        assert_eq!(c["endpoint_mode"], manifest["clusters"][name]["mode"], "{name}");
    }
    let calls = &report["stats"]["aws_calls"];
    // One call by `group-id` filter for every group of the region; moto's managed node groups
    // name a remote-access group that does not exist, which is simply absent: no retry.
    let missing =
        report["clusters"].as_array().unwrap().iter().any(|c| {
            c["warnings"].as_array().is_some_and(|w| w.iter().any(|w| w.as_str().unwrap_or("").contains("sg-")))
        });
    assert!(missing, "the fixture's managed node groups name a group that does not exist");
    assert_eq!(calls["ec2:DescribeSecurityGroups"], 1, "{calls}");
    // Everything else that can be batched is one walk for the region.
    for walk in [
        "ec2:DescribeInstances",
        "ec2:DescribeVpcs",
        "ec2:DescribeVpcEndpoints",
        "ec2:DescribeRouteTables",
        "ec2:DescribeNetworkInterfaces",
        "ec2:DescribeLaunchTemplateVersions",
    ] {
        assert_eq!(calls[walk], 1, "{walk}: {calls}");
    }
    assert_eq!(calls["eks:DescribeCluster"], names.len(), "{calls}");
    assert_eq!(calls["eks:ListClusters"], 1, "{calls}");
}

#[test]
fn drift_injected_through_the_api_appears_in_one_check_and_is_gone_in_the_next() {
    let server = moto::server_for(module_path!());
    let region = "ca-central-1";
    let manifest = server.build_fixture(&["--region", region, "--only", "terraform-public-private"]);
    let name = "terraform-public-private";
    let node = moto::manifest_groups(&manifest, name, "node")[0].clone();
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), region, &format!("\"{name}\""), "eks-minimal");
    let args = ["check", "--config", cfg.to_str().unwrap(), "--format", "json"];

    let before = json(&sgdrift(server, region, &args));
    let ssh = |r: &serde_json::Value| {
        r["clusters"][0]["findings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["group_id"] == node.as_str() && f["from_port"] == 22 && f["peer"] == "0.0.0.0/0")
            .count()
    };
    assert_eq!(ssh(&before), 0);

    ingress(server, region, "authorize", &node, 22, "0.0.0.0/0");
    let out = sgdrift(server, region, &args);
    assert_eq!(out.status.code(), Some(1));
    let during = json(&out);
    assert_eq!(ssh(&during), 1, "{during}");
    schema::assert_matches_schema("report.schema.json", "a drifted report from the emulator", &during);
    let f = during["clusters"][0]["findings"].as_array().unwrap().iter().find(|f| f["from_port"] == 22).unwrap();
    assert_eq!(f["severity"], "critical");
    assert_eq!(f["kind"], "unexpected");

    ingress(server, region, "revoke", &node, 22, "0.0.0.0/0");
    let after = json(&sgdrift(server, region, &args));
    assert_eq!(ssh(&after), 0);
}

#[test]
fn a_baseline_recorded_from_live_aws_gives_no_rule_findings_on_the_same_cluster() {
    let server = moto::server_for(module_path!());
    let region = "sa-east-1";
    server.build_fixture(&["--region", region, "--only", "eksctl-private"]);
    let name = "eksctl-private";
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), region, &format!("\"{name}\""), "eks-minimal");
    let recorded = dir.path().join("recorded.toml");
    let out = sgdrift(
        server,
        region,
        &["record", "--config", cfg.to_str().unwrap(), "--cluster", name, "--out", recorded.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let text = std::fs::read_to_string(&recorded).unwrap();
    assert!(text.contains("role:"), "peers by role:\n{text}");

    let cfg2 = config(dir.path(), region, &format!("\"{name}\", \"x\""), recorded.to_str().unwrap());
    let report = json(&sgdrift(server, region, &["check", "--config", cfg2.to_str().unwrap(), "--format", "json"]));
    let rule_findings: Vec<_> = report["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["cluster"] == name)
        .flat_map(|c| c["findings"].as_array().unwrap().clone())
        .filter(|f| f["kind"] != "flow")
        .collect();
    assert!(rule_findings.is_empty(), "{rule_findings:?}");
}

// --- organization-wide targets ----------------------------------------------------------------

/// A pass-through to the emulator (`support/proxy.rs`) that answers `sts:AssumeRole` of
/// `refused_account` with AccessDenied, as AWS does when the role is missing or does not trust
/// the caller (moto lets any role be assumed).
fn refusing_proxy(upstream: &str, refused_account: &str) -> String {
    let refused = format!("iam%3A%3A{refused_account}%3Arole");
    let rule = move |request: &[u8]| {
        let text = String::from_utf8_lossy(request);
        (text.contains("Action=AssumeRole") && text.contains(&refused)).then(|| {
            let body = "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>User is not authorized to perform: sts:AssumeRole</Message></Error><RequestId>r-1</RequestId></ErrorResponse>";
            proxy::response("403 Forbidden", &[("Content-Type", "text/xml")], body)
        })
    };
    proxy::Proxy::start(upstream, std::sync::Arc::new(rule)).url
}

#[test]
fn an_organization_target_checks_every_member_account_and_a_role_it_cannot_assume_fails_that_account_only() {
    let server = moto::server_for(module_path!());
    let region = "sa-east-1";
    // An organization in the emulator's default account: A in an OU, B in an OU below it, C at
    // the root; the management account (no member role) is left out with exclude_accounts.
    let org = server.boto3(
        "org = session.client('organizations', endpoint_url=endpoint)\n\
         try:\n    org.create_organization(FeatureSet='ALL')\nexcept org.exceptions.AlreadyInOrganizationException:\n    pass\n\
         root = org.list_roots()['Roots'][0]['Id']\n\
         parent = org.create_organizational_unit(ParentId=root, Name='workloads')['OrganizationalUnit']['Id']\n\
         child = org.create_organizational_unit(ParentId=parent, Name='prod')['OrganizationalUnit']['Id']\n\
         ids = {}\n\
         for name, where in [('a', parent), ('b', child), ('c', root)]:\n\
         \x20   status = org.create_account(Email=f'{name}@example.com', AccountName=f'sgdrift-{name}')['CreateAccountStatus']\n\
         \x20   ids[name] = status['AccountId']\n\
         \x20   if where != root:\n\
         \x20       org.move_account(AccountId=ids[name], SourceParentId=root, DestinationParentId=where)\n\
         me = org.describe_organization()['Organization']['MasterAccountId']\n\
         print(json.dumps({'ids': ids, 'parent': parent, 'management': me}))\n",
    );
    let id = |k: &str| org["ids"][k].as_str().unwrap().to_string();
    let (a, b, c) = (id("a"), id("b"), id("c"));
    for (account, prefix) in [(&a, "orga"), (&b, "orgb")] {
        server.member_cluster(region, account, prefix);
    }
    let proxy = refusing_proxy(&server.url, &c);

    let dir = tempfile::tempdir().unwrap();
    let write_cfg = |name: &str, organization: &str| {
        let path = dir.path().join(name);
        std::fs::write(
            &path,
            format!("[poll]\ntimeout = \"20s\"\n\n[source]\nkind = \"aws\"\n\n[[targets]]\nregions = [\"{region}\"]\nclusters = [\"*\"]\norganization = {organization}\n"),
        )
        .unwrap();
        path
    };
    let management = org["management"].as_str().unwrap();
    let whole =
        write_cfg("whole.toml", &format!("{{ role_name = \"sgdrift-read\", exclude_accounts = [\"{management}\"] }}"));
    let out = sgdrift_at(&proxy, region, &["check", "--config", whole.to_str().unwrap(), "--format", "json"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "one account cannot be read: the verdict is incomplete; stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = json(&out);
    schema::assert_matches_schema("report.schema.json", "an organization report with an account in error", &report);
    let clusters = report["clusters"].as_array().unwrap();
    let checked: std::collections::BTreeSet<(String, String)> = clusters
        .iter()
        .filter(|c| c["status"] != "error")
        .map(|c| (c["account_id"].as_str().unwrap().to_string(), c["cluster"].as_str().unwrap().to_string()))
        .collect();
    let want = [(a.clone(), "orga-000".to_string()), (b.clone(), "orgb-000".to_string())];
    assert_eq!(checked, want.into_iter().collect(), "{report}");
    let errors: Vec<&serde_json::Value> = clusters.iter().filter(|c| c["status"] == "error").collect();
    assert_eq!(errors.len(), 1, "only the account whose role is refused fails: {report}");
    assert_eq!(errors[0]["account_id"], c.as_str());
    assert!(
        errors[0]["error"].as_str().unwrap().contains("AssumeRole")
            || errors[0]["error"].as_str().unwrap().contains("denied"),
        "{}",
        errors[0]
    );
    assert_eq!(report["stats"]["aws_calls"]["organizations:ListAccounts"], 1, "{}", report["stats"]);

    // `ous`: the OU and everything below it; C, at the root, is not asked for at all.
    let below = write_cfg(
        "ous.toml",
        &format!("{{ role_name = \"sgdrift-read\", ous = [\"{}\"] }}", org["parent"].as_str().unwrap()),
    );
    let out = sgdrift_at(&proxy, region, &["check", "--config", below.to_str().unwrap(), "--format", "json"]);
    assert_ne!(out.status.code(), Some(2), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    let report = json(&out);
    let accounts: std::collections::BTreeSet<&str> =
        report["clusters"].as_array().unwrap().iter().map(|c| c["account_id"].as_str().unwrap()).collect();
    assert_eq!(accounts, [a.as_str(), b.as_str()].into_iter().collect(), "{report}");
}
