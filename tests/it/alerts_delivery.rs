//! Alert delivery against a real HTTP receiver on loopback standing in for Slack and a webhook
//! consumer: what is sent per poll, retries, rate limits, and Slack's size limits.

use crate::support::schema;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use crate::support::alerting::{at, cluster, failed_report, finding, quick_backoff, report, settings, Running};
use crate::support::receiver::{Receiver, Reply};
use serde_json::Value;
use sgdrift::alert::DeliveryOptions;
use sgdrift::model::{Finding, Severity};
use sgdrift::state::StateStore;

const SLACK: &str = "/services/T000/B000/slack";
const HOOK: &str = "/hooks/sgdrift";

/// A Slack sink (URL in a file) and a webhook sink (URL inline), both at the receiver.
async fn start(dir: &std::path::Path, receiver: &Receiver, extra: &str, options: DeliveryOptions) -> Running {
    std::fs::write(dir.join("slack-url"), format!("{}\n", receiver.url(SLACK))).unwrap();
    let settings = settings(
        dir,
        &format!(
            "[[alerts.slack]]\nwebhook_url_file = \"slack-url\"\nmin_severity = \"low\"\n\n\
             [[alerts.webhook]]\nurl = \"{}\"\nmin_severity = \"low\"\n{extra}",
            receiver.url(HOOK)
        ),
    );
    let store = Arc::new(StateStore::load(dir.join("state.json")).unwrap());
    Running::start(&settings, store, options).await
}

fn events(request: &Value) -> Vec<(String, String)> {
    request["events"]
        .as_array()
        .expect("a webhook body has an events array")
        .iter()
        .map(|e| (e["episode_id"].as_str().unwrap().to_string(), e["status"].as_str().unwrap().to_string()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drift_fires_once_per_cluster_repeats_nothing_and_resolves_only_after_a_good_poll() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start().await;
    let mut run = start(dir.path(), &receiver, "", DeliveryOptions::default()).await;
    let (a, b) = (cluster("prod-a"), cluster("prod-b"));
    let ssh = finding(&a, "sg-0aaa", 22, "0.0.0.0/0", Severity::Critical);
    let http = finding(&a, "sg-0aaa", 8080, "10.0.0.0/8", Severity::Medium);
    let b_ssh = finding(&b, "sg-0bbb", 22, "0.0.0.0/0", Severity::Critical);

    // First drift: one message per cluster to each sink.
    run.poll(&report(&a, vec![ssh.clone(), http.clone()]), true, at(0)).await;
    run.poll(&report(&b, vec![b_ssh.clone()]), true, at(0)).await;
    run.drained().await;
    let slack = receiver.requests(SLACK);
    let hook = receiver.requests(HOOK);
    assert_eq!((slack.len(), hook.len()), (2, 2));
    let by_cluster: BTreeSet<&str> = hook.iter().map(|r| r.body["cluster"].as_str().unwrap()).collect();
    assert_eq!(by_cluster, BTreeSet::from(["prod-a", "prod-b"]));
    let a_hook = hook.iter().find(|r| r.body["cluster"] == "prod-a").unwrap();
    assert_eq!(a_hook.body["status"], "firing");
    assert_eq!(
        events(&a_hook.body),
        vec![(ssh.id.clone(), "firing".to_string()), (http.id.clone(), "firing".to_string())]
    );
    let a_slack = slack.iter().find(|r| r.body["text"].as_str().unwrap().contains("prod-a")).unwrap();
    assert_eq!(a_slack.body["blocks"][0]["text"]["text"], ":red_circle: Drift: 2 new findings in prod-a");
    // At most one message a second per webhook.
    assert!(slack[1].at.duration_since(slack[0].at) >= Duration::from_secs(1), "two Slack messages within a second");
    assert!(hook[1].at.duration_since(hook[0].at) >= Duration::from_secs(1), "two webhook posts within a second");

    // The next, unchanged poll queues nothing.
    run.poll(&report(&a, vec![http.clone(), ssh.clone()]), true, at(5)).await;
    run.poll(&report(&b, vec![b_ssh.clone()]), true, at(5)).await;
    assert_eq!(run.outbox_len().await, 0, "an unchanged poll queued a notification");

    // A failed poll of a (no findings at all) resolves nothing.
    run.poll(&failed_report(&a), false, at(10)).await;
    run.poll(&report(&a, vec![]), false, at(10)).await;
    let mut stale = report(&a, vec![]);
    stale.stale = true;
    run.poll(&stale, true, at(10)).await;
    assert_eq!(run.outbox_len().await, 0, "a failed or stale poll queued a notification");

    // The SSH rule is revoked: one resolved message for a, to each sink; b stays quiet.
    run.poll(&report(&a, vec![http.clone()]), true, at(52)).await;
    run.poll(&report(&b, vec![b_ssh.clone()]), true, at(52)).await;
    run.drained().await;
    let slack = receiver.requests(SLACK);
    let hook = receiver.requests(HOOK);
    assert_eq!((slack.len(), hook.len()), (3, 3));
    assert_eq!(hook[2].body["cluster"], "prod-a");
    assert_eq!(hook[2].body["status"], "resolved");
    assert_eq!(events(&hook[2].body), vec![(ssh.id.clone(), "resolved".to_string())]);
    assert_eq!(hook[2].body["open_findings"], 1);
    for (i, request) in hook.iter().enumerate() {
        schema::assert_matches_schema("webhook.schema.json", &format!("webhook payload {i}"), &request.body);
    }
    let resolved = serde_json::to_string(&slack[2].body).unwrap();
    assert!(resolved.contains("Resolved: 1 finding in prod-a, 1 still open"), "{resolved}");
    assert!(resolved.contains("lasted 52m"), "the resolved message names how long the drift lasted: {resolved}");

    assert_eq!(run.metric("sgdrift_notifications_total", &[("integration", "slack")]), 3.0);
    assert_eq!(run.metric("sgdrift_notifications_total", &[("integration", "webhook")]), 3.0);
    assert_eq!(run.metric("sgdrift_notification_queue_length", &[]), 0.0);
    run.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_is_sent_again_no_earlier_than_its_retry_after_and_delivered_once() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start().await;
    receiver.script(SLACK, [Reply::status(429).header("retry-after", "2").body("rate_limited")]);
    let mut run = start(dir.path(), &receiver, "", DeliveryOptions::default()).await;
    let c = cluster("prod");

    run.poll(&report(&c, vec![finding(&c, "sg-0abc", 22, "0.0.0.0/0", Severity::High)]), true, at(0)).await;
    run.drained().await;

    let slack = receiver.requests(SLACK);
    assert_eq!(slack.iter().map(|r| r.answered).collect::<Vec<_>>(), vec![429, 200]);
    assert!(
        slack[1].at.duration_since(slack[0].at) >= Duration::from_secs(2),
        "sent again {:?} after a 429 with Retry-After: 2",
        slack[1].at.duration_since(slack[0].at)
    );
    assert_eq!(slack[0].body, slack[1].body, "the retry is the same message");
    assert_eq!(
        run.metric("sgdrift_notifications_failed_total", &[("integration", "slack"), ("reason", "rate_limited")]),
        1.0
    );
    assert_eq!(receiver.requests(HOOK).len(), 1, "the webhook is not held up by Slack's rate limit");
    run.stop().await;
    assert_eq!(receiver.requests(SLACK).len(), 2, "delivered once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_are_retried_with_backoff_until_delivered_once() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start().await;
    receiver.script(HOOK, [Reply::status(500), Reply::status(502), Reply::status(503)]);
    let mut run = start(dir.path(), &receiver, "", quick_backoff()).await;
    let c = cluster("prod");
    let f = finding(&c, "sg-0abc", 22, "0.0.0.0/0", Severity::High);

    run.poll(&report(&c, vec![f.clone()]), true, at(0)).await;
    run.drained().await;
    run.stop().await;

    let hook = receiver.requests(HOOK);
    assert_eq!(hook.iter().map(|r| r.answered).collect::<Vec<_>>(), vec![500, 502, 503, 200]);
    let ids: BTreeSet<&str> = hook.iter().map(|r| r.body["notification_id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 1, "every attempt carries the same notification");
    assert_eq!(events(&hook[3].body), vec![(f.id.clone(), "firing".to_string())]);
    assert_eq!(run_metric(&run, "server_error"), 3.0);
    assert_eq!(run.metric("sgdrift_notifications_total", &[("integration", "webhook")]), 4.0);
}

fn run_metric(run: &Running, reason: &str) -> f64 {
    run.metric("sgdrift_notifications_failed_total", &[("integration", "webhook"), ("reason", reason)])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_error_is_not_retried_and_is_counted_with_its_reason() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start().await;
    receiver.script(HOOK, [Reply::status(400).body("invalid_payload")]);
    let mut run = start(dir.path(), &receiver, "", quick_backoff()).await;
    let c = cluster("prod");
    let f = finding(&c, "sg-0abc", 22, "0.0.0.0/0", Severity::High);

    run.poll(&report(&c, vec![f.clone()]), true, at(0)).await;
    run.drained().await;
    assert_eq!(receiver.requests(HOOK).len(), 1);
    assert_eq!(run_metric(&run, "client_error"), 1.0);
    assert_eq!(run_metric(&run, "server_error"), 0.0);

    // The refused notification is gone; the next one goes through.
    run.poll(&report(&c, vec![]), true, at(5)).await;
    run.drained().await;
    run.stop().await;
    let hook = receiver.requests(HOOK);
    assert_eq!(hook.iter().map(|r| r.answered).collect::<Vec<_>>(), vec![400, 200]);
    assert_eq!(events(&hook[1].body), vec![(f.id.clone(), "resolved".to_string())]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_that_times_out_is_retried() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start().await;
    receiver.script(HOOK, [Reply::ok().delay(Duration::from_secs(3))]);
    let options = DeliveryOptions { request_timeout: Duration::from_millis(500), ..quick_backoff() };
    let mut run = start(dir.path(), &receiver, "", options).await;
    let c = cluster("prod");

    run.poll(&report(&c, vec![finding(&c, "sg-0abc", 22, "0.0.0.0/0", Severity::High)]), true, at(0)).await;
    run.drained().await;
    run.stop().await;
    assert_eq!(receiver.requests(HOOK).len(), 2);
    assert_eq!(run_metric(&run, "timeout"), 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_sink_gets_only_findings_at_or_above_its_minimum_severity() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start().await;
    std::fs::write(dir.path().join("slack-url"), receiver.url(SLACK)).unwrap();
    let settings = settings(
        dir.path(),
        &format!(
            "[[alerts.slack]]\nwebhook_url_file = \"slack-url\"\nmin_severity = \"high\"\n\n\
             [[alerts.webhook]]\nurl = \"{}\"\n",
            receiver.url(HOOK)
        ),
    );
    let store = Arc::new(StateStore::load(dir.path().join("state.json")).unwrap());
    let mut run = Running::start(&settings, store, quick_backoff()).await;
    let c = cluster("prod");
    let low = finding(&c, "sg-0abc", 443, "203.0.113.0/24", Severity::Low);
    let critical = finding(&c, "sg-0abc", 22, "0.0.0.0/0", Severity::Critical);

    run.poll(&report(&c, vec![low.clone()]), true, at(0)).await;
    run.drained().await;
    assert_eq!((receiver.requests(SLACK).len(), receiver.requests(HOOK).len()), (0, 1), "low drift is not for Slack");

    run.poll(&report(&c, vec![low.clone(), critical.clone()]), true, at(5)).await;
    run.drained().await;
    run.stop().await;
    let slack = receiver.requests(SLACK);
    assert_eq!(slack.len(), 1);
    let text = serde_json::to_string(&slack[0].body).unwrap();
    assert!(text.contains("tcp 22") && !text.contains("tcp 443"), "{text}");
    assert_eq!(events(&receiver.requests(HOOK)[1].body), vec![(critical.id.clone(), "firing".to_string())]);
}

/// Every block and text of a Slack message against the documented limits.
fn assert_inside_slack_limits(body: &Value) {
    let blocks = body["blocks"].as_array().expect("blocks");
    assert!(blocks.len() <= 50, "{} blocks", blocks.len());
    assert!(body["text"].as_str().unwrap().chars().count() <= 40_000);
    let mut total = 0;
    for b in blocks {
        match b["type"].as_str().unwrap() {
            "header" => {
                assert_eq!(b["text"]["type"], "plain_text");
                assert!(b["text"]["text"].as_str().unwrap().chars().count() <= 150);
            }
            "section" => {
                if let Some(t) = b["text"]["text"].as_str() {
                    assert!(t.chars().count() <= 3000, "a section of {} characters", t.chars().count());
                    total += t.chars().count();
                }
                if let Some(fields) = b["fields"].as_array() {
                    assert!(fields.len() <= 10);
                    for f in fields {
                        assert!(f["text"].as_str().unwrap().chars().count() <= 2000);
                        total += f["text"].as_str().unwrap().chars().count();
                    }
                }
            }
            "context" => assert!(b["elements"].as_array().unwrap().len() <= 10),
            other => panic!("unexpected block type {other}"),
        }
    }
    // Slack has refused messages of about 13k characters of blocks.
    assert!(total < 12_000, "{total} characters of block text");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_findings_make_one_slack_message_inside_the_limits_with_the_count_right() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start().await;
    let mut run =
        start(dir.path(), &receiver, "[server]\nexternal_url = \"https://sgdrift.example.com\"\n", quick_backoff())
            .await;
    let c = cluster("prod-eu1");
    let mut findings: Vec<Finding> =
        (0..500).map(|i| finding(&c, &format!("sg-{:04}", i % 7), 1000 + i, "10.0.0.0/8", Severity::Medium)).collect();
    findings[0].severity = Severity::Critical;
    findings[0].reason = "opened by <script> & friends".into();

    run.poll(&report(&c, findings), true, at(0)).await;
    run.drained().await;
    run.stop().await;

    let slack = receiver.requests(SLACK);
    assert_eq!(slack.len(), 1);
    let body = &slack[0].body;
    assert_inside_slack_limits(body);
    assert_eq!(body["blocks"][0]["text"]["text"], ":red_circle: Drift: 500 new findings in prod-eu1");
    assert!(body["text"].as_str().unwrap().contains("500 new"), "{}", body["text"]);
    let sections: Vec<&str> =
        body["blocks"].as_array().unwrap().iter().filter_map(|b| b["text"]["text"].as_str()).collect();
    let listed = sections.iter().flat_map(|t| t.lines()).filter(|l| l.starts_with("• ")).count();
    let more = sections.iter().find(|t| t.starts_with("… and ")).expect("an \"… and N more\" section");
    let n: usize = more["… and ".len()..].split(' ').next().unwrap().parse().unwrap();
    assert!(listed > 0 && n > 0);
    assert_eq!(listed + n, 500, "{listed} listed and {more}");
    assert!(
        more.contains("<https://sgdrift.example.com/#cluster-111122223333-eu-west-1-prod-eu1|status page>"),
        "{more}"
    );
    let first = sections.iter().flat_map(|t| t.lines()).find(|l| l.starts_with("• ")).unwrap();
    assert!(first.contains("*critical*") && first.contains("opened by &lt;script&gt; &amp; friends"), "{first}");
    let whole = serde_json::to_string(body).unwrap();
    assert!(!whole.contains("<script>"), "unescaped mrkdwn");
    assert!(whole.contains("<https://sgdrift.example.com/#cluster-111122223333-eu-west-1-prod-eu1|Status page>"));
}
