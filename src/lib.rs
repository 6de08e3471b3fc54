//! sgdrift watches the security groups of Amazon EKS clusters and reports drift from a recorded
//! minimal baseline: rules that open more than the baseline allows, rules the cluster needs that
//! have gone, and required traffic (kubelet, API, DNS, webhooks, AWS APIs) that no longer flows.
//!
//! # Layout
//!
//! - [`model`]: plain data (rules, peers, groups, snapshots, findings) and normalization.
//! - [`baseline`]: the baseline format, the built-in profiles, resolution, exceptions, `record`.
//! - [`diff`] and [`flows`]: the pure differ and flow checker.
//! - [`source`]: snapshots from live AWS or from AWS-CLI JSON files.
//! - [`config`], [`cli`], [`app`], [`telemetry`]: the program around the core.
//! - [`export`]: the report (JSON, text, HTML) and the Prometheus metrics.
//! - [`testing`]: fixture builders shared by unit tests, integration tests and benches.
//!
//! The pure core (`model`, `baseline`, `diff`, `flows`, `alert::policy`) does no I/O.

pub mod alert;
pub mod app;
pub mod baseline;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod diff;
pub mod engine;
pub mod export;
pub mod flows;
pub mod http;
pub mod model;
pub mod scheduler;
pub mod source;
pub mod state;
pub mod telemetry;
pub mod testing;
