//! The pure alert policy: findings open and close episodes; per poll, one notification per
//! cluster that changed. Time is an argument, never read here.

use serde::{Deserialize, Serialize};

/// Episodes and the outbox of undelivered notifications; persisted inside the state file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AlertState {}
