//! `changed_by` from CloudTrail `LookupEvents` for a finding that a timer poll found (no feed
//! event explains it), as the scheduler runs it on every poll: attribution, then the poll
//! applied to the state.
//!
//! The local AWS emulator lacks `LookupEvents` (moto answers HTTP 500, see
//! reference/aws-emulator.md), so CloudTrail is the SDK's static replay client here, answering
//! with the record of tests/fixtures/events/authorize-ingress.json exactly as `LookupEvents`
//! returns records: a JSON string in `Events[].CloudTrailEvent`.

use std::time::Duration;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_credential_types::Credentials;
use aws_smithy_http_client::test_util::{ReplayEvent, StaticReplayClient};
use aws_smithy_runtime_api::http::{Request, Response, StatusCode};
use aws_smithy_types::body::SdkBody;
use chrono::{DateTime, Utc};

use crate::support::layouts;
use sgdrift::diff::Evaluation;
use sgdrift::engine::ClusterOutcome;
use sgdrift::events::aws::CloudTrail;
use sgdrift::events::Attribution;
use sgdrift::model::{EndpointMode, Finding, Role, Style};
use sgdrift::scheduler::{apply_poll, TargetFailure};
use sgdrift::source::{AwsCallMetrics, TargetSpec};
use sgdrift::state::{PersistedState, StateStore};

/// `LookupEvents`' answer: the fixture's record on `group`, as a string, as CloudTrail returns it.
fn lookup_answer(group: &str) -> String {
    let path = format!("{}/tests/fixtures/events/authorize-ingress.json", env!("CARGO_MANIFEST_DIR"));
    let envelope: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap().replace("sg-0a1b2c3d4e5f60718", group)).unwrap();
    let record = envelope["detail"].to_string();
    serde_json::json!({ "Events": [ {
        "EventId": envelope["detail"]["eventID"],
        "EventName": "AuthorizeSecurityGroupIngress",
        "ReadOnly": "false",
        "EventTime": 1_795_590_000.0,
        "EventSource": "ec2.amazonaws.com",
        "Username": "jo",
        "Resources": [ { "ResourceType": "AWS::EC2::SecurityGroup", "ResourceName": group } ],
        "CloudTrailEvent": record
    } ] })
    .to_string()
}

fn replay(answers: &[String]) -> StaticReplayClient {
    StaticReplayClient::new(
        answers
            .iter()
            .map(|body| {
                let mut request = Request::new(SdkBody::empty());
                request.set_uri("https://cloudtrail.eu-west-1.amazonaws.com/").unwrap();
                ReplayEvent::new(
                    request,
                    Response::new(StatusCode::try_from(200).unwrap(), SdkBody::from(body.as_str())),
                )
            })
            .collect(),
    )
}

fn sdk_config(client: StaticReplayClient) -> SdkConfig {
    SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(layouts::REGION))
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            "testing", "testing", None, None, "tests",
        )))
        .http_client(client)
        .build()
}

fn outcome(snapshot: &sgdrift::model::ClusterSnapshot, findings: Vec<Finding>) -> Vec<ClusterOutcome> {
    vec![ClusterOutcome {
        id: snapshot.id.clone(),
        target: 0,
        result: Ok((snapshot.clone(), Evaluation { findings, flows: vec![], owned: vec![] })),
    }]
}

fn at(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

/// Applies one poll to the state, as the scheduler records it.
async fn record(store: &StateStore, spec: &TargetSpec, outcomes: Vec<ClusterOutcome>, now: DateTime<Utc>) {
    let result: Result<Vec<ClusterOutcome>, TargetFailure> = Ok(outcomes);
    store.apply(|s| apply_poll(s, spec, &result, now, &mut |_, _, _| {})).await.1.unwrap();
}

fn findings(outcomes: &[ClusterOutcome]) -> &[Finding] {
    &outcomes[0].result.as_ref().unwrap().1.findings
}

#[tokio::test]
async fn a_finding_the_timer_found_is_attributed_from_lookup_events_once_per_group() {
    let snapshot = layouts::cluster(Style::Eksctl, EndpointMode::Private);
    let node = layouts::group(&snapshot, Role::Node).id.clone();
    let spec = TargetSpec { region: layouts::REGION.into(), role_arn: None, clusters: vec!["*".into()] };
    let dir = tempfile::tempdir().unwrap();
    let store = StateStore::with_state(dir.path().join("state.json"), PersistedState::default());
    // A clean poll first: the last clean poll that a look-up starts from.
    record(&store, &spec, outcome(&snapshot, vec![]), at("2026-11-30T06:55:00Z")).await;

    let client = replay(&[lookup_answer(&node)]);
    let calls = AwsCallMetrics::unregistered();
    let attribution =
        Attribution::new(Some(CloudTrail::new(sdk_config(client.clone()), calls.clone(), Duration::from_secs(5))));
    let ssh =
        Finding::test().critical().on(&node).rule("ingress tcp 22 from 0.0.0.0/0").in_cluster(&snapshot.id).build();
    let mut polled = outcome(&snapshot, vec![ssh.clone()]);
    attribution.attribute(&spec, &mut polled, &store).await;
    record(&store, &spec, polled, at("2026-11-30T07:05:00Z")).await;

    let recorded = store.read_now(|s| s.clusters.values().next().unwrap().report.findings.clone());
    let by = recorded[0].changed_by.clone().expect("the finding carries the actor CloudTrail names");
    assert_eq!(by.arn, "arn:aws:sts::111122223333:assumed-role/Admin/jo");
    assert_eq!(by.source_ip.as_deref(), Some("203.0.113.7"));
    assert_eq!(by.user_agent.as_deref(), Some("aws-cli/2.15.0 Python/3.11.6 Linux/6.1 exe/x86_64.amzn.2"));
    assert_eq!(
        (by.event_name.as_str(), by.event_id.as_str()),
        ("AuthorizeSecurityGroupIngress", "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0")
    );
    assert_eq!(by.event_time, at("2026-11-30T07:00:00Z"));

    let requests: Vec<String> = client
        .actual_requests()
        .map(|r| String::from_utf8_lossy(r.body().bytes().unwrap_or_default()).into_owned())
        .collect();
    assert_eq!(requests.len(), 1);
    let asked: serde_json::Value = serde_json::from_str(&requests[0]).unwrap();
    assert_eq!(asked["LookupAttributes"][0]["AttributeKey"], "ResourceName");
    assert_eq!(asked["LookupAttributes"][0]["AttributeValue"], node.as_str());
    let since = asked["StartTime"].as_f64().unwrap() as i64;
    assert_eq!(
        since,
        at("2026-11-30T06:50:00Z").timestamp(),
        "since the last clean poll, with a margin for changes made while it ran"
    );
    assert_eq!(calls.call_counts()["cloudtrail:LookupEvents"], 1);

    // The next poll: the known finding is not looked up again, and a new one on the same group
    // is answered from the cache (the replay client has no second answer).
    let again = Finding { id: "another-ssh-finding".into(), ..ssh.clone() };
    let mut next = outcome(&snapshot, vec![ssh, again]);
    attribution.attribute(&spec, &mut next, &store).await;
    assert_eq!(
        findings(&next)[0].changed_by,
        None,
        "a finding already known is not attributed again (the state keeps its actor)"
    );
    assert_eq!(
        findings(&next)[1].changed_by.as_ref().map(|b| b.event_id.as_str()),
        Some("0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0")
    );
    assert_eq!(client.actual_requests().count(), 1, "one look-up per group, cached");
    record(&store, &spec, next, at("2026-11-30T07:10:00Z")).await;
    let kept = store.read_now(|s| s.clusters.values().next().unwrap().report.findings[0].changed_by.clone());
    assert_eq!(kept, Some(by));
}

#[tokio::test]
async fn a_cluster_polled_for_the_first_time_asks_cloudtrail_nothing() {
    let snapshot = layouts::cluster(Style::Eksctl, EndpointMode::Private);
    let node = layouts::group(&snapshot, Role::Node).id.clone();
    let spec = TargetSpec { region: layouts::REGION.into(), role_arn: None, clusters: vec!["*".into()] };
    let dir = tempfile::tempdir().unwrap();
    let store = StateStore::with_state(dir.path().join("state.json"), PersistedState::default());
    let client = replay(&[]);
    let attribution = Attribution::new(Some(CloudTrail::new(
        sdk_config(client.clone()),
        AwsCallMetrics::unregistered(),
        Duration::from_secs(5),
    )));
    let ssh = Finding::test().on(&node).rule("ingress tcp 22 from 0.0.0.0/0").in_cluster(&snapshot.id).build();
    let mut first = outcome(&snapshot, vec![ssh]);
    attribution.attribute(&spec, &mut first, &store).await;
    assert_eq!(client.actual_requests().count(), 0, "drift that predates sgdrift has no 'since' to look from");
    assert_eq!(findings(&first)[0].changed_by, None);
}
