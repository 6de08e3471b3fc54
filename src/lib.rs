//! sgdrift watches the security groups of Amazon EKS clusters and reports drift from a recorded
//! minimal baseline: rules that open more than the baseline allows, rules the cluster needs that
//! have gone, and required traffic (kubelet, API, DNS, webhooks, AWS APIs) that no longer flows.
//!
//! # Layout
//!
//! The data path, from an AWS answer to a Slack message, is drawn in `docs/architecture.md`.
//!
//! - [`model`]: plain data (rules, peers, groups, snapshots, findings) and normalization.
//! - [`baseline`]: the baseline format, the built-in profiles, resolution, exceptions, `record`.
//! - [`diff`] and [`flows`]: the pure differ and flow checker.
//! - [`remediation`]: the pure planner of the change that restores the baseline, checked on the
//!   snapshot; [`source::write`] carries it out for `sgdrift fix --apply`.
//! - [`source`]: snapshots from live AWS or from AWS-CLI JSON files, behind one
//!   `Source::from_config` / `Source::poll`; the AWS call counters.
//! - [`engine`]: one target polled and evaluated (what `check` and the scheduler share).
//! - [`scheduler`]: the poll loop (timer, jitter, skips, concurrency cap) and the `Trigger`
//!   that asks for a poll now; applying a poll to the state.
//! - [`events`]: the SQS change feed (CloudTrail events → targeted re-polls) and the attribution
//!   of new findings to the CloudTrail event that made them (`changed_by`).
//! - [`state`]: the persisted findings, first-seen times, alert episodes and outbox.
//! - [`alert`]: the pure episode policy, the sinks and the outbox dispatcher.
//! - [`export`]: the report (JSON, text, HTML) and the Prometheus metrics.
//! - [`http`]: `/metrics`, `/healthz`, `/readyz`, `/api/v1/report` and the status page.
//! - [`daemon`]: `sgdrift run`: wiring, signals, reloads.
//! - [`config`], [`cli`], [`app`], [`telemetry`]: the program around the core.
//! - [`testing`]: fixture builders shared by unit tests, integration tests and benches.
//!
//! The pure core (`model`, `baseline`, `diff`, `flows`, `remediation`, `alert::policy`) does no I/O.

// Table-driven tests spell out the type of their rows; naming each one would hide the table.
#![cfg_attr(test, allow(clippy::type_complexity))]

pub mod alert;
pub mod app;
pub mod baseline;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod diff;
pub mod engine;
pub mod events;
pub mod export;
pub mod flows;
pub mod http;
pub mod model;
pub mod remediation;
pub mod scheduler;
pub mod source;
pub mod state;
pub mod telemetry;
pub mod testing;
