//! The Prometheus metrics of design.md §3, in one owned registry.
