//! `sgdrift run` on live AWS (the local emulator): drift injected through the API shows in
//! /metrics within an interval; with the emulator gone the polls fail, the findings stay (stale)
//! and nothing is resolved; when it is back, polling recovers by itself.

use crate::support::moto;

use std::process::{Command, Stdio};

use crate::daemon_harness::{free_port, Daemon};

const REGION: &str = "eu-south-1";
const CLUSTER: &str = "console-public";

fn spawn(server: &moto::Moto, dir: &std::path::Path, port: u16) -> Daemon {
    let body = format!(
        "[poll]\ninterval = \"1s\"\njitter = \"0s\"\ntimeout = \"3s\"\n\n\
         [source]\nkind = \"aws\"\n\n[[targets]]\nregions = [\"{REGION}\"]\nclusters = [\"*\"]\nbaseline = \"eks-minimal\"\n"
    );
    run(server, dir, port, REGION, &body)
}

/// `sgdrift run` against `server` in `region`, with `body` (everything but `[server]` and
/// `[alerts]`) as its configuration.
fn run(server: &moto::Moto, dir: &std::path::Path, port: u16, region: &str, body: &str) -> Daemon {
    let config = dir.join("sgdrift.toml");
    let state = dir.join("state.json");
    let text =
        format!("[server]\nlisten = \"127.0.0.1:{port}\"\n\n{body}\n[alerts]\nstate_file = \"{}\"\n", state.display());
    std::fs::write(&config, text).unwrap();
    let log = dir.join("daemon.log");
    let mut command = Command::new(env!("CARGO_BIN_EXE_sgdrift"));
    server.point(&mut command, region);
    let child = command
        .args(["run", "--config"])
        .arg(&config)
        .env("RUST_LOG", "info,sgdrift=debug")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("sgdrift runs");
    Daemon { child, port, log }
}

fn authorize_ssh(server: &moto::Moto, group: &str) {
    let python = std::env::var("SGDRIFT_PYTHON")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python"));
    let script = format!(
        "import boto3\nboto3.client('ec2', endpoint_url='{}', region_name='{REGION}', aws_access_key_id='testing', aws_secret_access_key='testing')\
         .authorize_security_group_ingress(GroupId='{group}', IpPermissions=[{{'IpProtocol': 'tcp', 'FromPort': 22, 'ToPort': 22, 'IpRanges': [{{'CidrIp': '0.0.0.0/0'}}]}}])\n",
        server.url
    );
    let out = Command::new(&python).arg("-c").arg(script).output().expect("python runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn the_daemon_sees_drift_keeps_it_through_an_aws_outage_and_recovers_by_itself() {
    let mut server = moto::Moto::start();
    let manifest = server.build_fixture(&["--region", REGION, "--only", CLUSTER]);
    let node = moto::manifest_groups(&manifest, CLUSTER, "node")
        .into_iter()
        .chain(moto::manifest_groups(&manifest, CLUSTER, "cluster"))
        .next()
        .expect("a node or cluster group");
    let dir = tempfile::tempdir().unwrap();
    let mut d = spawn(&server, dir.path(), free_port());
    d.wait_ready();
    let cluster = [("eks_cluster", CLUSTER)];
    assert_eq!(d.value("sgdrift_cluster_poll_success", &cluster), Some(1.0));
    let critical = [("eks_cluster", CLUSTER), ("severity", "critical"), ("kind", "unexpected")];
    assert_eq!(d.value("sgdrift_findings", &critical), None, "the fixture is clean of critical drift");

    authorize_ssh(&server, &node);
    d.wait_for("the injected SSH rule in /metrics", |d| {
        (d.value("sgdrift_findings", &critical) == Some(1.0)).then_some(())
    });
    assert_eq!(d.value("sgdrift_security_group_drifted", &[("security_group_id", node.as_str())]), Some(1.0));

    // AWS goes away: the poll fails, the drift stays, marked stale.
    let port = server.port;
    server.stop();
    d.wait_for("the poll to fail", |d| (d.value("sgdrift_cluster_poll_success", &cluster) == Some(0.0)).then_some(()));
    d.wait_for_more_polls(2.0);
    assert_eq!(d.value("sgdrift_findings", &critical), Some(1.0), "failed polls resolve nothing");
    let report = d.report();
    let c = report["clusters"].as_array().unwrap().iter().find(|c| c["cluster"] == CLUSTER).unwrap().clone();
    assert_eq!(c["stale"], true, "{c}");
    assert!(c["findings"].as_array().unwrap().iter().any(|f| f["from_port"] == 22), "{c}");
    let text = d.get("/metrics").body;
    assert!(
        text.lines().any(|l| l.starts_with("sgdrift_aws_api_request_errors_total{")),
        "AWS errors are counted:\n{}",
        text.lines().filter(|l| l.contains("aws_api")).collect::<Vec<_>>().join("\n")
    );

    // AWS is back where it was (a fresh emulator with the same cluster): polling recovers alone.
    let server = moto::Moto::start_on(port);
    server.build_fixture(&["--region", REGION, "--only", CLUSTER]);
    d.wait_for("the poll to recover", |d| {
        (d.value("sgdrift_cluster_poll_success", &cluster) == Some(1.0)).then_some(())
    });
    let report = d.report();
    let c = report["clusters"].as_array().unwrap().iter().find(|c| c["cluster"] == CLUSTER).unwrap().clone();
    assert_eq!(c["stale"], false, "{c}");
}

#[test]
fn an_account_joining_the_organization_gets_its_polls_and_the_other_accounts_are_not_polled_again() {
    // Polls an hour apart, the organization's OU listed every 2 s: account A is polled once at
    // the start; when B joins the OU, B is polled at once and A not again — its task runs on,
    // its timer's next tick an hour away, instead of every poll of the fleet restarting. B's
    // cluster is made before B is moved into the OU, so that its first poll finds it.
    let server = moto::Moto::start();
    let region = "ap-south-1";
    let org = server.boto3(
        "org = session.client('organizations', endpoint_url=endpoint)\n\
         try:\n    org.create_organization(FeatureSet='ALL')\nexcept org.exceptions.AlreadyInOrganizationException:\n    pass\n\
         root = org.list_roots()['Roots'][0]['Id']\n\
         ou = org.create_organizational_unit(ParentId=root, Name='clusters')['OrganizationalUnit']['Id']\n\
         ids = [org.create_account(Email=f'{n}@example.com', AccountName=f'sgdrift-{n}')['CreateAccountStatus']['AccountId'] for n in 'ab']\n\
         print(json.dumps({'root': root, 'ou': ou, 'a': ids[0], 'b': ids[1]}))\n",
    );
    let field = |k: &str| org[k].as_str().unwrap().to_string();
    let (root, ou, a, b) = (field("root"), field("ou"), field("a"), field("b"));
    let join = |account: &str, prefix: &str| {
        server.member_cluster(region, account, prefix);
        server.boto3(&format!(
            "org = session.client('organizations', endpoint_url=endpoint)\n\
             org.move_account(AccountId='{account}', SourceParentId='{root}', DestinationParentId='{ou}')\nprint('{{}}')\n"
        ));
    };
    join(&a, "orga");
    let dir = tempfile::tempdir().unwrap();
    let body = format!(
        "[poll]\ninterval = \"1h\"\njitter = \"0s\"\ntimeout = \"20s\"\nmetadata_interval = \"2s\"\n\n\
         [source]\nkind = \"aws\"\n\n[[targets]]\nregions = [\"{region}\"]\nclusters = [\"*\"]\n\
         organization = {{ role_name = \"sgdrift-read\", ous = [\"{ou}\"] }}\n"
    );
    let mut d = run(&server, dir.path(), free_port(), region, &body);
    d.wait_ready();
    let polls =
        |d: &Daemon, account: &str| d.value("sgdrift_polls_total", &[("account_id", account), ("region", region)]);
    assert_eq!(polls(&d, &a), Some(1.0));
    assert_eq!(polls(&d, &b), None, "B is not in the OU yet");

    join(&b, "orgb");
    // The poll counter is the last thing a poll updates.
    d.wait_for("the new account polled", |d| (polls(d, &b) == Some(1.0)).then_some(()));
    assert_eq!(d.value("sgdrift_cluster_poll_success", &[("eks_cluster", "orgb-000")]), Some(1.0));
    assert!(d.log_text().contains("polls reconciled"), "{}", d.log_text());
    assert_eq!(polls(&d, &a), Some(1.0), "A's task ran on: no second poll an hour early");
}
