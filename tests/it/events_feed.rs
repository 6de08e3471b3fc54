//! The change feed against the local AWS emulator (design.md §2 `events`, issue 13): with
//! `poll.interval = "10m"`, only the feed makes the daemon poll between start and the end of the
//! test. CloudTrail-shaped events are posted to the SQS queue as EventBridge delivers them (the
//! emulator turns no EC2 call into an event); their shapes come from tests/fixtures/events/,
//! which cites the AWS pages they were taken from. Slack is a real HTTP receiver.
//!
//! Timings are not asserted (the 3 s target is measured by scripts/bench-events): these tests
//! assert what happens, with generous timeouts.

use crate::support::moto;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::daemon_harness::{free_port, Daemon, Receiver};
use aws_sdk_ec2::types::{IpPermission, IpRange};

const REGION: &str = "eu-south-1";
const CLUSTER: &str = "console-public";
/// The group id, account, region and time the fixtures name, replaced per test.
const FIXTURE_GROUP: &str = "sg-0a1b2c3d4e5f60718";
const FIXTURE_ACCOUNT: &str = "111122223333";
const FIXTURE_REGION: &str = "eu-west-1";

/// A cluster built in the emulator, its SQS queue, a Slack receiver and the clients to change them.
struct World {
    aws: moto::Moto,
    /// SQS on its own emulator when a test must stop EC2 and EKS without stopping the queue.
    sqs_aws: Option<moto::Moto>,
    rt: tokio::runtime::Runtime,
    ec2: aws_sdk_ec2::Client,
    sqs: aws_sdk_sqs::Client,
    queue: String,
    node: String,
    account: String,
    slack: Receiver,
    dir: tempfile::TempDir,
}

impl World {
    fn new(separate_sqs: bool) -> World {
        let aws = moto::Moto::start();
        let manifest = aws.build_fixture(&["--region", REGION, "--only", CLUSTER]);
        let account = manifest["account"].as_str().expect("the manifest names its account").to_string();
        let node = moto::manifest_groups(&manifest, CLUSTER, "node")
            .into_iter()
            .chain(moto::manifest_groups(&manifest, CLUSTER, "cluster"))
            .next()
            .expect("a node or cluster group");
        let sqs_aws = separate_sqs.then(moto::Moto::start);
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let ec2 = aws_sdk_ec2::Client::new(&aws.sdk_config(REGION));
        let sqs = aws_sdk_sqs::Client::new(&sqs_aws.as_ref().unwrap_or(&aws).sdk_config(REGION));
        let queue = rt.block_on(async {
            let out =
                sqs.create_queue().queue_name("sgdrift-events").send().await.expect("the emulator creates the queue");
            out.queue_url().expect("a queue URL").to_string()
        });
        World {
            aws,
            sqs_aws,
            rt,
            ec2,
            sqs,
            queue,
            node,
            account,
            slack: Receiver::start(),
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// `sgdrift run` with the feed on this world's queue (attribution off: the emulator has no
    /// LookupEvents), polling every 10 minutes, a burst ending after 1 s of quiet.
    fn spawn(&self, log: &str) -> Daemon {
        let port = free_port();
        let config = self.dir.path().join("sgdrift.toml");
        std::fs::write(
            &config,
            format!(
                "[server]\nlisten = \"127.0.0.1:{port}\"\n\n[poll]\ninterval = \"10m\"\njitter = \"0s\"\ntimeout = \"2s\"\n\n\
                 [source]\nkind = \"aws\"\n\n[[targets]]\nregions = [\"{REGION}\"]\nclusters = [\"*\"]\nbaseline = \"eks-minimal\"\n\n\
                 [events]\nqueue_url = \"{}\"\nattribution = \"off\"\ncoalesce = \"1s\"\n\n\
                 [alerts]\nstate_file = \"{}\"\n\n[[alerts.slack]]\nname = \"oncall\"\nwebhook_url_env = \"SGDRIFT_TEST_SLACK\"\nmin_severity = \"low\"\n",
                self.queue,
                self.dir.path().join("state.json").display()
            ),
        )
        .unwrap();
        let log = self.dir.path().join(log);
        let mut command = Command::new(env!("CARGO_BIN_EXE_sgdrift"));
        self.aws.point(&mut command, REGION);
        command
            .args(["run", "--config"])
            .arg(&config)
            .env("RUST_LOG", "info,sgdrift=debug")
            .env("SGDRIFT_TEST_SLACK", format!("http://127.0.0.1:{}/slack", self.slack.port))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        if let Some(sqs) = &self.sqs_aws {
            command.env("AWS_ENDPOINT_URL_SQS", &sqs.url);
        }
        let child = command.spawn().expect("sgdrift runs");
        Daemon { child, port, log }
    }

    /// Authorizes `tcp port` from `cidr` on the node group, as an operator would.
    fn authorize(&self, port: i32, cidr: &str) {
        self.rt
            .block_on(
                self.ec2
                    .authorize_security_group_ingress()
                    .group_id(&self.node)
                    .ip_permissions(permission(port, cidr))
                    .send(),
            )
            .expect("the emulator authorizes the rule");
    }

    fn revoke(&self, port: i32, cidr: &str) {
        self.rt
            .block_on(
                self.ec2
                    .revoke_security_group_ingress()
                    .group_id(&self.node)
                    .ip_permissions(permission(port, cidr))
                    .send(),
            )
            .expect("the emulator revokes the rule");
    }

    /// The fixture `file` as EventBridge would deliver it for this world's group, with its own
    /// event id and the time now.
    fn event(&self, file: &str, group: &str, n: usize) -> String {
        let text = std::fs::read_to_string(repo().join("tests/fixtures/events").join(file)).unwrap();
        let mut v: serde_json::Value = serde_json::from_str(
            &text.replace(FIXTURE_GROUP, group).replace(FIXTURE_ACCOUNT, &self.account).replace(FIXTURE_REGION, REGION),
        )
        .unwrap();
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        v["detail"]["eventTime"] = now.clone().into();
        v["time"] = now.into();
        v["detail"]["eventID"] = format!("{file}-{n}").into();
        v.to_string()
    }

    /// Posts `bodies`, ten per request.
    fn post(&self, bodies: &[String]) {
        self.rt.block_on(async {
            for (i, chunk) in bodies.chunks(10).enumerate() {
                let entries = chunk.iter().enumerate().map(|(j, b)| {
                    aws_sdk_sqs::types::SendMessageBatchRequestEntry::builder()
                        .id(format!("m{i}-{j}"))
                        .message_body(b)
                        .build()
                        .unwrap()
                });
                self.sqs
                    .send_message_batch()
                    .queue_url(&self.queue)
                    .set_entries(Some(entries.collect()))
                    .send()
                    .await
                    .expect("posted");
            }
        });
    }

    /// Messages in the queue, visible or in flight.
    fn queued(&self) -> u64 {
        use aws_sdk_sqs::types::QueueAttributeName as A;
        let out = self
            .rt
            .block_on(
                self.sqs
                    .get_queue_attributes()
                    .queue_url(&self.queue)
                    .attribute_names(A::ApproximateNumberOfMessages)
                    .attribute_names(A::ApproximateNumberOfMessagesNotVisible)
                    .send(),
            )
            .expect("queue attributes");
        let attrs = out.attributes().cloned().unwrap_or_default();
        [A::ApproximateNumberOfMessages, A::ApproximateNumberOfMessagesNotVisible]
            .iter()
            .map(|a| attrs.get(a).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0))
            .sum()
    }

    /// The Slack messages received so far, as text.
    fn messages(&self) -> Vec<String> {
        self.slack.bodies()
    }
}

fn permission(port: i32, cidr: &str) -> IpPermission {
    IpPermission::builder()
        .ip_protocol("tcp")
        .from_port(port)
        .to_port(port)
        .ip_ranges(IpRange::builder().cidr_ip(cidr).build())
        .build()
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Ready, and every alert of the first poll delivered: what follows is the feed's doing.
fn settled(d: &mut Daemon, world: &World) -> usize {
    d.wait_ready();
    d.wait_for("the first poll's alerts delivered", |d| {
        (d.value("sgdrift_notification_queue_length", &[]) == Some(0.0)).then_some(())
    });
    world.messages().len()
}

/// AWS calls made by the source (EC2, EKS, STS), the queue's own left out.
fn source_calls(d: &Daemon) -> f64 {
    d.metrics()
        .iter()
        .filter(|s| s.name == "sgdrift_aws_api_requests_total" && s.labels["service"] != "sqs")
        .map(|s| s.value)
        .sum()
}

fn outcome(d: &Daemon, outcome: &str) -> f64 {
    d.value("sgdrift_events_received_total", &[("outcome", outcome)]).unwrap_or(0.0)
}

const ACTOR: &str = "assumed-role/Admin/jo";

#[test]
fn an_authorize_event_alerts_once_naming_the_actor_and_its_revoke_resolves() {
    let world = World::new(false);
    let mut d = world.spawn("daemon.log");
    let before = settled(&mut d, &world);
    let polls = d.total("sgdrift_polls_total");

    world.authorize(22, "0.0.0.0/0");
    world.post(&[world.event("authorize-ingress.json", &world.node, 0)]);
    let alert = d.wait_for("the Slack message of the new SSH rule", |_| world.messages().get(before).cloned());
    assert!(alert.contains("Drift: 1 new finding"), "{alert}");
    assert!(
        alert.contains("tcp 22 from 0.0.0.0/0") && alert.contains(ACTOR),
        "the message names the rule and who made it: {alert}"
    );
    assert!(alert.contains("AuthorizeSecurityGroupIngress"), "{alert}");
    assert_eq!(d.total("sgdrift_polls_total"), polls + 1.0, "one re-poll of the one cluster");
    let report = d.report();
    let finding = report["clusters"][0]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["from_port"] == 22 && f["peer"] == "0.0.0.0/0")
        .cloned()
        .expect("the finding is in the report");
    assert!(finding["changed_by"]["arn"].as_str().unwrap().ends_with(ACTOR), "{finding}");
    assert_eq!(finding["changed_by"]["event_id"], "authorize-ingress.json-0");
    d.wait_for("the message deleted after its re-poll", |_| (world.queued() == 0).then_some(()));

    world.revoke(22, "0.0.0.0/0");
    world.post(&[world.event("revoke-ingress.json", &world.node, 0)]);
    let resolved = d.wait_for("the resolved message", |_| world.messages().get(before + 1).cloned());
    assert!(resolved.contains("Resolved"), "{resolved}");
    assert_eq!(outcome(&d, "matched"), 2.0);
    assert!(d.value("sgdrift_detection_latency_seconds_count", &[]).unwrap_or(0.0) >= 2.0);
}

#[test]
fn a_burst_of_a_hundred_edits_on_one_group_is_one_poll_and_one_message() {
    let world = World::new(false);
    let mut d = world.spawn("daemon.log");
    let before = settled(&mut d, &world);
    let polls = d.total("sgdrift_polls_total");

    // One rule added and 99 edits of its description: 100 changes, 100 events in a second.
    world.authorize(2375, "198.51.100.0/24");
    let mut bodies = vec![world.event("authorize-ingress.json", &world.node, 0)];
    bodies.extend((1..100).map(|n| world.event("modify-rules.json", &world.node, n)));
    world.post(&bodies);
    d.wait_for("all 100 events handled", |d| (outcome(d, "matched") == 100.0).then_some(()));
    d.wait_for("the burst's message", |_| world.messages().get(before).cloned());
    d.wait_for("the burst's messages deleted", |_| (world.queued() == 0).then_some(()));
    assert_eq!(d.total("sgdrift_polls_total"), polls + 1.0, "the burst is one re-poll");
    assert_eq!(world.messages().len(), before + 1, "and one Slack message: {:?}", &world.messages()[before..]);
}

#[test]
fn events_for_groups_no_cluster_uses_cost_no_aws_call_and_poison_messages_are_dropped() {
    let world = World::new(false);
    let mut d = world.spawn("daemon.log");
    let before = settled(&mut d, &world);
    let calls = source_calls(&d);
    let polls = d.total("sgdrift_polls_total");

    world.post(&[
        world.event("authorize-ingress.json", "sg-0badc0ffee0000000", 0),
        "this is not an EventBridge event".to_string(),
        r#"{"detail-type": "AWS API Call via CloudTrail", "detail": {"eventSource": "s3.amazonaws.com", "eventName": "PutObject"}}"#.to_string(),
    ]);
    d.wait_for("the three messages handled", |d| {
        (outcome(d, "unknown_group") == 1.0 && outcome(d, "malformed") == 1.0 && outcome(d, "ignored") == 1.0)
            .then_some(())
    });
    d.wait_for("every message deleted", |_| (world.queued() == 0).then_some(()));
    assert_eq!(source_calls(&d), calls, "no EC2, EKS or STS call for a group no cluster uses");
    assert_eq!(d.total("sgdrift_polls_total"), polls);
    assert_eq!(world.messages().len(), before);
    assert!(d.log_text().contains("is not a CloudTrail event; deleted"), "the poison message is logged");
}

/// Stops and resumes a process (the emulator's server, found as the child of its port's
/// listener) without losing its state.
fn signal_server(server: &moto::Moto, signal: &str) {
    let pid = listener_pid(server.port).expect("the emulator's process");
    let status = Command::new("kill").arg(format!("-{signal}")).arg(pid.to_string()).status().unwrap();
    assert!(status.success(), "kill -{signal} {pid}");
}

/// The process listening on `port`, from /proc (no tool needed).
fn listener_pid(port: u16) -> Option<u32> {
    let tcp = std::fs::read_to_string("/proc/net/tcp").ok()?;
    let inode = tcp.lines().skip(1).find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        let local_port = u16::from_str_radix(f.get(1)?.rsplit(':').next()?, 16).ok()?;
        (local_port == port && f.get(3) == Some(&"0A")).then(|| f.get(9).map(|s| s.to_string())).flatten()
    })?;
    let target = format!("socket:[{inode}]");
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|p| {
        let pid: u32 = p.file_name().to_str()?.parse().ok()?;
        let fds = std::fs::read_dir(p.path().join("fd")).ok()?;
        fds.flatten().any(|fd| std::fs::read_link(fd.path()).is_ok_and(|l| l == Path::new(&target))).then_some(pid)
    })
}

#[test]
fn a_crash_between_receiving_and_recording_still_detects_the_change_once() {
    let world = World::new(true);
    let mut d = world.spawn("daemon-1.log");
    let before = settled(&mut d, &world);

    // EC2 and EKS stop answering (the server is paused, its state kept): the re-poll cannot
    // finish, so the message must stay in the queue.
    world.authorize(22, "0.0.0.0/0");
    signal_server(&world.aws, "STOP");
    world.post(&[world.event("authorize-ingress.json", &world.node, 0)]);
    d.wait_for("the event received", |d| (outcome(d, "matched") == 1.0).then_some(()));
    d.child.kill().expect("kill -9");
    d.child.wait().unwrap();
    signal_server(&world.aws, "CONT");
    assert_eq!(world.queued(), 1, "the message was not deleted before its re-poll was recorded");
    assert_eq!(world.messages().len(), before, "nothing was alerted before the crash");

    let mut d = world.spawn("daemon-2.log");
    d.wait_for("the Slack message of the change", |_| world.messages().get(before).cloned());
    // The message comes back after its visibility timeout, and its re-poll changes nothing.
    d.wait_for("the message handled again and deleted", |_| (world.queued() == 0).then_some(()));
    assert_eq!(world.messages().len(), before + 1, "detected once: {:?}", &world.messages()[before..]);
    assert!(world.messages()[before].contains("tcp 22 from 0.0.0.0/0"));
}
