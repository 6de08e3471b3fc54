//! Helpers shared by the integration tests. Each test crate uses some of them only.
#![allow(dead_code)]

pub mod layouts;
