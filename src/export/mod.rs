//! What sgdrift shows the outside: the report (JSON, text, HTML) and the Prometheus metrics.

pub mod html;
pub mod metrics;
pub mod report;
