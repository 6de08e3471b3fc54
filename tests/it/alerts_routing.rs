//! Routed and authenticated sinks against a real receiver: `match` sends each sink only its
//! clusters and severities; a webhook carries its configured headers, and its signature
//! verifies with the Python snippet published in docs/webhooks.md.

use crate::support::schema;

use std::collections::BTreeSet;
use std::sync::Arc;

use crate::support::alerting::{at, cluster, finding, quick_backoff, report, settings, Running};
use crate::support::receiver::Receiver;
use sgdrift::model::{ClusterId, Severity};
use sgdrift::state::StateStore;

fn clusters_and_severities(receiver: &Receiver, path: &str) -> BTreeSet<(String, String, String)> {
    receiver
        .requests(path)
        .iter()
        .flat_map(|r| {
            let body = r.body.clone();
            body["events"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| {
                    (
                        body["account_id"].as_str().unwrap().to_string(),
                        body["cluster"].as_str().unwrap().to_string(),
                        e["finding"]["severity"].as_str().unwrap().to_string(),
                    )
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_routed_sink_gets_only_the_clusters_accounts_and_severities_it_matches() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start().await;
    let settings = settings(
        dir.path(),
        &format!(
            "[[alerts.webhook]]\nname = \"prod\"\nurl = \"{}\"\nmatch = {{ clusters = [\"prod-*\"], accounts = [\"111122223333\"] }}\n\n\
             [[alerts.webhook]]\nname = \"critical\"\nurl = \"{}\"\nmatch = {{ severities = [\"critical\"] }}\n\n\
             [[alerts.webhook]]\nname = \"everything\"\nurl = \"{}\"\n",
            receiver.url("/prod"),
            receiver.url("/critical"),
            receiver.url("/all")
        ),
    );
    let store = Arc::new(StateStore::load(dir.path().join("state.json")).unwrap());
    let mut run = Running::start(&settings, store, quick_backoff()).await;
    let other_account = ClusterId { account_id: "444455556666".into(), ..cluster("prod-x") };
    for c in [cluster("prod-eu1"), cluster("staging"), other_account] {
        let findings = vec![
            finding(&c, "sg-0abc", 22, "0.0.0.0/0", Severity::Critical),
            finding(&c, "sg-0abc", 8080, "10.0.0.0/8", Severity::Medium),
        ];
        run.poll(&report(&c, findings), true, at(0)).await;
    }
    run.drained().await;
    run.stop().await;

    let set = |items: &[(&str, &str, &str)]| -> BTreeSet<(String, String, String)> {
        items.iter().map(|(a, c, s)| (a.to_string(), c.to_string(), s.to_string())).collect()
    };
    let (ours, theirs) = ("111122223333", "444455556666");
    assert_eq!(
        clusters_and_severities(&receiver, "/prod"),
        set(&[(ours, "prod-eu1", "critical"), (ours, "prod-eu1", "medium")])
    );
    assert_eq!(
        clusters_and_severities(&receiver, "/critical"),
        set(&[(ours, "prod-eu1", "critical"), (ours, "staging", "critical"), (theirs, "prod-x", "critical")])
    );
    assert_eq!(clusters_and_severities(&receiver, "/all").len(), 6);
}

/// The Python between the markers of docs/webhooks.md.
fn documented_snippet() -> String {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/webhooks.md")).unwrap();
    let start = doc.find("<!-- verify-snippet:start -->").expect("docs/webhooks.md has the snippet markers");
    let end = doc.find("<!-- verify-snippet:end -->").unwrap();
    let block = &doc[start..end];
    let code = block.split("```python").nth(1).and_then(|b| b.split("```").next()).expect("a python block");
    code.to_string()
}

/// Runs the documented `verify` on a received request; its printed verdict.
fn python_verify(secret: &str, timestamp: &str, signature: &str, body: &[u8]) -> String {
    let python = std::env::var("SGDRIFT_PYTHON").unwrap_or_else(|_| "python3".into());
    let dir = tempfile::tempdir().unwrap();
    let body_file = dir.path().join("body");
    std::fs::write(&body_file, body).unwrap();
    let program = format!(
        "{}\nimport os, sys\nprint(verify(os.environb[b'SECRET'], sys.argv[1], sys.argv[2], open(sys.argv[3], 'rb').read()))\n",
        documented_snippet()
    );
    let out = std::process::Command::new(&python)
        .arg("-c")
        .arg(program)
        .arg(timestamp)
        .arg(signature)
        .arg(&body_file)
        .env("SECRET", secret)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {python} (set SGDRIFT_PYTHON): {e}"));
    assert!(out.status.success(), "the snippet failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_webhook_verifies_with_the_documented_snippet_and_carries_its_headers() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start().await;
    let secret = "whsec-0123456789abcdef";
    std::env::set_var("SGDRIFT_TEST_HMAC", secret);
    std::env::set_var("SGDRIFT_TEST_SIEM_TOKEN", "Bearer t0ken");
    std::fs::write(dir.path().join("headers"), "# extra\nX-Team: platform\n").unwrap();
    let settings = settings(
        dir.path(),
        &format!(
            "[[alerts.webhook]]\nurl = \"{}\"\nsigning_secret_env = \"SGDRIFT_TEST_HMAC\"\n\
             headers_env = {{ Authorization = \"SGDRIFT_TEST_SIEM_TOKEN\" }}\nheaders_file = \"headers\"\n",
            receiver.url("/signed")
        ),
    );
    let store = Arc::new(StateStore::load(dir.path().join("state.json")).unwrap());
    let mut run = Running::start(&settings, store, quick_backoff()).await;
    let c = cluster("prod");
    run.poll(&report(&c, vec![finding(&c, "sg-0abc", 22, "0.0.0.0/0", Severity::Critical)]), true, at(0)).await;
    run.drained().await;
    run.stop().await;

    let got = receiver.requests("/signed");
    assert_eq!(got.len(), 1);
    let r = &got[0];
    let header = |name: &str| r.headers.get(name).map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
    assert_eq!(header("authorization"), "Bearer t0ken");
    assert_eq!(header("x-team"), "platform");
    assert_eq!(header("content-type"), "application/json");
    assert_eq!(r.body["schema_version"], 1);
    schema::assert_matches_schema("webhook.schema.json", "a signed webhook payload", &r.body);
    let (timestamp, signature) = (header("x-sgdrift-timestamp"), header("x-sgdrift-signature-256"));
    assert!(signature.starts_with("sha256="), "{signature}");
    assert_eq!(python_verify(secret, &timestamp, &signature, &r.raw), "True");
    // The same check refuses a changed body, another secret and a shifted timestamp.
    let mut tampered = r.raw.clone();
    tampered.push(b' ');
    assert_eq!(python_verify(secret, &timestamp, &signature, &tampered), "False");
    assert_eq!(python_verify("other", &timestamp, &signature, &r.raw), "False");
    let shifted = (timestamp.parse::<u64>().unwrap() - 1).to_string();
    assert_eq!(python_verify(secret, &shifted, &signature, &r.raw), "False");
}
