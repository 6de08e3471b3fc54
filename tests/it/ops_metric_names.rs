//! Every metric the dashboard, the alert rules and their promtool tests use is one the daemon
//! exports: the exported names are the `"sgdrift_…"` string literals of src/export/metrics.rs,
//! src/source/calls.rs and src/alert/*.rs, where the daemon, the AWS source's call counters and
//! the alert dispatcher define their metrics.

use crate::ops_common as common;

use std::collections::{BTreeMap, BTreeSet};

use crate::ops_common::{read, repo, rust_files, sgdrift_names, sgdrift_string_literals, strip_line_comments};

/// Series a histogram or summary named `X` exposes besides `X` itself.
const HISTOGRAM_SUFFIXES: [&str; 3] = ["_bucket", "_sum", "_count"];

fn exported() -> BTreeSet<String> {
    let mut files = rust_files(&repo().join("src/export/metrics.rs"));
    files.extend(rust_files(&repo().join("src/source/calls.rs")));
    files.extend(rust_files(&repo().join("src/alert")));
    let names: BTreeSet<String> = files
        .iter()
        .flat_map(|f| sgdrift_string_literals(&std::fs::read_to_string(f).expect("readable source")))
        .collect();
    assert!(
        !names.is_empty(),
        "src/export/metrics.rs, src/source/calls.rs and src/alert/*.rs define no \"sgdrift_…\" metric yet: nothing to check the dashboard and alerts against"
    );
    names
}

/// Metric names used by each ops artefact, comments left out.
fn used() -> BTreeMap<&'static str, BTreeSet<String>> {
    let mut out = BTreeMap::new();
    let dashboard = common::read_json("dashboards/sgdrift-overview.json");
    let mut names = BTreeSet::new();
    for (_, expr) in common::dashboard_queries(&dashboard) {
        names.extend(sgdrift_names(&expr));
    }
    for var in dashboard["templating"]["list"].as_array().expect("templating.list") {
        names.extend(sgdrift_names(&common::variable_query(var)));
    }
    out.insert("dashboards/sgdrift-overview.json", names);
    for file in ["deploy/prometheus/sgdrift-alerts.yaml", "deploy/prometheus/sgdrift-alerts.test.yaml"] {
        let text: String =
            read(file).lines().filter(|l| !l.trim_start().starts_with('#')).collect::<Vec<_>>().join("\n");
        out.insert(file, sgdrift_names(&text));
    }
    out
}

fn is_exported(name: &str, exported: &BTreeSet<String>) -> bool {
    exported.contains(name)
        || HISTOGRAM_SUFFIXES.iter().any(|s| name.strip_suffix(s).is_some_and(|base| exported.contains(base)))
}

#[test]
fn every_metric_in_the_dashboard_and_alerts_is_one_the_daemon_exports() {
    let exported = exported();
    let mut unknown = Vec::new();
    for (file, names) in used() {
        assert!(!names.is_empty(), "{file} uses no sgdrift metric: the scan is broken");
        for name in names {
            if !is_exported(&name, &exported) {
                unknown.push(format!("{file}: {name}"));
            }
        }
    }
    assert!(
        unknown.is_empty(),
        "metrics the daemon does not export:\n  {}\nexported: {exported:?}",
        unknown.join("\n  ")
    );
}

#[test]
fn the_scanner_reads_literals_and_skips_comments() {
    let source = strip_line_comments(
        "let a = \"sgdrift_x_total\"; // \"sgdrift_commented\"\nlet b = format!(\"sgdrift_{}\", 1);",
    );
    assert_eq!(sgdrift_string_literals(&source), BTreeSet::from(["sgdrift_x_total".to_string()]));
    assert_eq!(
        sgdrift_names("rate(sgdrift_a_total[1m]) / xsgdrift_b + sgdrift_c{x=\"1\"}"),
        BTreeSet::from(["sgdrift_a_total".to_string(), "sgdrift_c".to_string()])
    );
}
