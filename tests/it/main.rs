//! The integration tests, as one binary: one link instead of one per file, one harness. Each
//! module is what used to be a test file of its own; the shared helpers live beside it under
//! `tests/support`, `tests/daemon_harness` and `tests/ops`.

// Table-driven tests spell out the type of their rows; naming each one would hide the table.
#![allow(clippy::type_complexity)]

#[path = "../daemon_harness/mod.rs"]
mod daemon_harness;
#[path = "../ops/common.rs"]
mod ops_common;
#[path = "../support/mod.rs"]
mod support;

mod alerts_delivery;
mod alerts_outbox;
mod alerts_routing;
mod alerts_secrets;
mod aws_source;
mod cli;
mod cli_aws;
mod cli_help;
mod daemon_aws;
mod daemon_crash;
mod daemon_prometheus;
mod daemon_run;
mod events_attribution;
mod events_feed;
mod fault_suite;
mod files_source;
mod fix_aws;
mod ops_dashboard;
mod ops_dockerfile;
mod ops_events;
mod ops_helm;
mod ops_iam;
mod ops_kubernetes;
mod ops_metric_names;
mod ops_prometheus_demo;
mod ops_prometheus_rules;
mod ops_systemd;
mod page_layout;
mod profiles;
mod properties;
mod stock_clusters;
