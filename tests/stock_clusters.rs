//! Runs `it/stock_clusters.rs` on this branch, which predates the single integration binary
//! `tests/it`: once merged there (`mod stock_clusters;` in `tests/it/main.rs`), this file goes.

#[path = "support/mod.rs"]
mod support;

#[path = "it/stock_clusters.rs"]
mod stock_clusters;
