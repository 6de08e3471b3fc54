//! The Grafana dashboard, linted by the rules of grafana/dashboard-linter that matter here
//! (no Go toolchain in CI): classic JSON model 42 with a stable uid, a `datasource` variable
//! used everywhere, `job`/`instance` filters, the cluster variables, titles, descriptions and
//! units on every panel, `$__rate_interval` in every range, counters only under rate/increase.

use crate::ops_common as common;

use std::collections::BTreeSet;

use serde_json::Value;

use crate::ops_common::{dashboard_panels, read_json, variable_query};

const DASHBOARD: &str = "dashboards/sgdrift-overview.json";

/// Units Grafana knows that suit this dashboard; a typo would otherwise render as a bare number.
const UNITS: [&str; 12] = [
    "short",
    "none",
    "s",
    "ms",
    "reqps",
    "ops",
    "percentunit",
    "dateTimeAsIso",
    "dateTimeFromNow",
    "bytes",
    "decbytes",
    "bool",
];

/// Metrics carrying `account_id`, `region` and `eks_cluster`: queries filter them by the
/// dashboard's cluster variables.
const PER_CLUSTER_PREFIXES: [&str; 4] =
    ["sgdrift_cluster_", "sgdrift_security_group_", "sgdrift_findings", "sgdrift_required_flow_"];

fn dashboard() -> Value {
    read_json(DASHBOARD)
}

fn datasource_ok(ds: &Value) -> bool {
    ds["type"] == "prometheus" && (ds["uid"] == "${datasource}" || ds["uid"] == "$datasource")
}

/// Each metric selector of `expr`: the metric name and the text of its `{…}` (empty if none).
fn selectors(expr: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = expr;
    while let Some(start) = rest.find("sgdrift_") {
        let tail = &rest[start..];
        let end = tail.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(tail.len());
        let name = tail[..end].to_string();
        let after = &tail[end..];
        let matchers = if after.starts_with('{') {
            after[1..after.find('}').expect("closed selector")].to_string()
        } else {
            String::new()
        };
        out.push((name, matchers));
        rest = &tail[end..];
    }
    out
}

#[test]
fn the_dashboard_is_a_classic_model_with_a_stable_identity() {
    let d = dashboard();
    assert_eq!(d["uid"], "sgdrift-overview", "a stable uid keeps links and provisioning working");
    assert!(d["id"].is_null(), "\"id\" must be null so Grafana assigns one on import");
    assert_eq!(d["schemaVersion"], 42);
    assert!(d["title"].as_str().is_some_and(|t| !t.is_empty()));
    assert!(d["tags"].as_array().is_some_and(|t| t.contains(&Value::from("sgdrift"))));
    assert_eq!(d["editable"], false, "provisioned dashboards are changed in the repository, not in the UI");
}

#[test]
fn the_variables_are_datasource_job_instance_and_the_cluster_identity() {
    let d = dashboard();
    let vars = d["templating"]["list"].as_array().expect("templating.list");
    let names: Vec<&str> = vars.iter().map(|v| v["name"].as_str().unwrap_or_default()).collect();
    assert_eq!(names, ["datasource", "job", "instance", "account_id", "region", "eks_cluster"]);
    assert_eq!(vars[0]["type"], "datasource");
    assert_eq!(vars[0]["query"], "prometheus");
    for v in &vars[1..] {
        let name = v["name"].as_str().unwrap();
        assert_eq!(v["type"], "query", "{name}");
        assert!(datasource_ok(&v["datasource"]), "variable {name} must query ${{datasource}}");
        assert_eq!(v["multi"], true, "{name} is multi-select");
        assert_eq!(v["includeAll"], true, "{name} has All");
        assert_eq!(v["allValue"], ".+", "{name}: All must be .+ (the linter's value, and never a huge regex)");
        let query = variable_query(v);
        let source = if ["job", "instance"].contains(&name) { "sgdrift_build_info" } else { "sgdrift_cluster_info" };
        assert!(
            query.starts_with(&format!("label_values({source}")) && query.ends_with(&format!(", {name})")),
            "variable {name}: `{query}` should be label_values({source}…, {name})"
        );
    }
}

#[test]
fn every_panel_has_a_title_description_unit_and_the_datasource_variable() {
    let d = dashboard();
    let panels = dashboard_panels(&d);
    assert!(panels.len() >= 10, "only {} panels", panels.len());
    let mut ids = BTreeSet::new();
    for p in d["panels"].as_array().unwrap() {
        for q in std::iter::once(p).chain(p["panels"].as_array().into_iter().flatten()) {
            let id = q["id"].as_u64().unwrap_or_else(|| panic!("panel {} lacks a numeric id", q["title"]));
            assert!(ids.insert(id), "panel id {id} is used twice");
        }
    }
    for p in &panels {
        let title = p["title"].as_str().unwrap_or_default();
        assert!(!title.is_empty(), "a panel lacks a title: {p}");
        assert!(p["description"].as_str().is_some_and(|s| s.len() > 20), "panel {title} lacks a description");
        assert!(datasource_ok(&p["datasource"]), "panel {title} must use ${{datasource}}");
        let unit = p["fieldConfig"]["defaults"]["unit"].as_str().unwrap_or_default();
        assert!(UNITS.contains(&unit), "panel {title}: unit `{unit}` is not one of {UNITS:?}");
        let targets =
            p["targets"].as_array().filter(|t| !t.is_empty()).unwrap_or_else(|| panic!("panel {title} has no query"));
        let refs: BTreeSet<&str> = targets.iter().map(|t| t["refId"].as_str().expect("refId")).collect();
        assert_eq!(refs.len(), targets.len(), "panel {title}: refIds must be unique");
        for t in targets {
            assert!(datasource_ok(&t["datasource"]), "panel {title}: query {} must use ${{datasource}}", t["refId"]);
            assert!(t["expr"].as_str().is_some_and(|e| !e.trim().is_empty()), "panel {title}: empty query");
        }
        let pos = &p["gridPos"];
        let (x, w) = (pos["x"].as_u64().unwrap(), pos["w"].as_u64().unwrap());
        assert!(x + w <= 24 && pos["h"].as_u64().unwrap() > 0, "panel {title} is outside the 24-column grid");
    }
}

#[test]
fn panels_do_not_overlap() {
    let d = dashboard();
    let mut cells = BTreeSet::new();
    for p in d["panels"].as_array().unwrap() {
        let g = &p["gridPos"];
        let (x, y, w, h) =
            (g["x"].as_u64().unwrap(), g["y"].as_u64().unwrap(), g["w"].as_u64().unwrap(), g["h"].as_u64().unwrap());
        for cx in x..x + w {
            for cy in y..y + h {
                assert!(cells.insert((cx, cy)), "panel {} overlaps another at column {cx}, row {cy}", p["title"]);
            }
        }
    }
}

#[test]
fn every_query_filters_by_job_instance_and_the_cluster_variables() {
    let d = dashboard();
    for (title, expr) in common::dashboard_queries(&d) {
        let found = selectors(&expr);
        assert!(!found.is_empty(), "panel {title}: `{expr}` reads no sgdrift metric");
        for (metric, matchers) in found {
            for needed in [r#"job=~"$job""#, r#"instance=~"$instance""#] {
                assert!(matchers.contains(needed), "panel {title}: {metric} lacks {needed}");
            }
            if PER_CLUSTER_PREFIXES.iter().any(|p| metric.starts_with(p)) {
                for var in ["account_id", "region", "eks_cluster"] {
                    let needed = format!(r#"{var}=~"${var}""#);
                    assert!(matchers.contains(&needed), "panel {title}: {metric} lacks {needed}");
                }
            }
        }
    }
}

#[test]
fn ranges_use_rate_interval_and_counters_appear_only_under_rate_or_increase() {
    let d = dashboard();
    for (title, expr) in common::dashboard_queries(&d) {
        for (i, _) in expr.match_indices('[') {
            assert!(
                expr[i..].starts_with("[$__rate_interval]"),
                "panel {title}: a range other than [$__rate_interval] in `{expr}`"
            );
        }
        for (metric, _) in selectors(&expr) {
            let counter = ["_total", "_bucket", "_count", "_sum"].iter().any(|s| metric.ends_with(s));
            if counter {
                let at = expr.find(&metric).unwrap();
                let before = expr[..at].trim_end();
                assert!(
                    before.ends_with("rate(") || before.ends_with("increase("),
                    "panel {title}: counter {metric} must be wrapped in rate() or increase()"
                );
            }
        }
        if expr.contains("rate(") || expr.contains("increase(") {
            assert!(expr.contains("[$__rate_interval]"), "panel {title}: rate without $__rate_interval");
        }
    }
}
