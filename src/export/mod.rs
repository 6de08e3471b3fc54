//! What sgdrift shows the outside: the report (JSON, text, HTML, ASFF) and the Prometheus metrics.

pub mod asff;
pub mod html;
pub mod metrics;
pub mod report;
