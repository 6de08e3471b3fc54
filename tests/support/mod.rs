//! Helpers shared by the integration tests: fixture builders, the AWS emulator, a webhook
//! receiver, the alerting harness and the JSON Schema validator. Each module uses some of them.
#![allow(dead_code)]

pub mod alerting;
pub mod layouts;
pub mod moto;
pub mod proxy;
pub mod receiver;
pub mod schema;
