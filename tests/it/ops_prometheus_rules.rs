//! The alert rules: promtool accepts them and their unit tests pass, every alert is documented
//! and tested, and the Kubernetes PrometheusRule is the generated copy of the rule file.

use std::process::Command;

use crate::ops_common::{python, read, repo, run_ok, tool};

#[test]
fn promtool_accepts_the_alert_rules() {
    let out = run_ok(
        Command::new(tool("promtool"))
            .args(["check", "rules"])
            .arg(repo().join("deploy/prometheus/sgdrift-alerts.yaml")),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("SUCCESS"), "promtool check rules said:\n{text}");
}

#[test]
fn promtool_unit_tests_of_the_alert_rules_pass() {
    let out = run_ok(Command::new(tool("promtool")).current_dir(repo().join("deploy/prometheus")).args([
        "test",
        "rules",
        "sgdrift-alerts.test.yaml",
    ]));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("SUCCESS"), "promtool test rules said:\n{text}");
}

#[test]
fn every_alert_has_a_severity_annotations_a_runbook_section_and_tests_both_ways() {
    run_ok(Command::new(python()).arg(repo().join("tests/ops/check_alerts.py")).arg(repo()));
}

#[test]
fn the_prometheusrule_is_the_generated_copy_of_the_alert_rules() {
    let out = run_ok(Command::new("bash").arg(repo().join("scripts/gen-prometheusrule")).arg("-"));
    let generated = String::from_utf8(out.stdout).expect("generator prints UTF-8");
    let committed = read("deploy/kubernetes/prometheusrule.yaml");
    assert!(
        generated == committed,
        "deploy/kubernetes/prometheusrule.yaml is out of date with deploy/prometheus/sgdrift-alerts.yaml: run scripts/gen-prometheusrule"
    );
    // The generated file keeps every rule line of the source, only indented under `spec:`.
    for line in read("deploy/prometheus/sgdrift-alerts.yaml").lines().filter(|l| !l.is_empty() && !l.starts_with('#')) {
        assert!(committed.contains(&format!("  {line}\n")), "prometheusrule.yaml lacks the rule line {line:?}");
    }
}
