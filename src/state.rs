//! Persistent state: the current findings per cluster with their first-seen times, the last
//! success and error of each cluster's poll, and the alert episodes and outbox; written
//! atomically (temp file in the same directory, fsync, rename, fsync of the directory).
//!
//! A missing state file means a first start: the state begins empty. A state file that cannot
//! be parsed is never overwritten and never silently discarded: [`StateStore::load`] fails with
//! an error naming the file, line and column, and the daemon refuses to start. Discarding it
//! would lose undelivered notifications and first-seen times and re-alert every drift, so that
//! is left to the operator, who moves the file aside. Writes are atomic, so only an outside
//! hand (or a failing disk) can produce such a file.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::alert::AlertState;
use crate::export::report::{ClusterReport, Report, Stats};
use crate::model::ClusterId;

/// The version of the file format this build writes and reads.
pub const STATE_VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot read state file {path}: {source}")]
    Read { path: String, source: io::Error },
    #[error(
        "state file {path} is corrupt at line {line}, column {column}: {message}; sgdrift does not \
         overwrite it: move it aside to start with an empty state (drift that is still present is then \
         alerted again)"
    )]
    Corrupt { path: String, line: usize, column: usize, message: String },
    #[error("state file {path} has format version {found}, newer than this sgdrift reads ({STATE_VERSION}); run a newer sgdrift or move the file aside")]
    Version { path: String, found: u32 },
    #[error("cannot write state file {path}: {source}")]
    Write { path: String, source: io::Error },
}

impl StateError {
    /// A bounded label for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            StateError::Read { .. } => "read",
            StateError::Corrupt { .. } => "corrupt",
            StateError::Version { .. } => "version",
            StateError::Write { .. } => "write",
        }
    }
}

/// Everything that must survive a restart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PersistedState {
    #[serde(default)]
    pub version: u32,
    /// Per cluster, keyed by [`cluster_key`]: the daemon's view, owned by the scheduler.
    #[serde(default)]
    pub clusters: BTreeMap<String, ClusterState>,
    #[serde(default)]
    pub alerts: AlertState,
}

impl Default for PersistedState {
    fn default() -> Self {
        PersistedState { version: STATE_VERSION, clusters: BTreeMap::new(), alerts: AlertState::default() }
    }
}

/// `account/region/name`: the key of a cluster in [`PersistedState::clusters`].
pub fn cluster_key(id: &ClusterId) -> String {
    id.to_string()
}

/// What the daemon knows of one cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusterState {
    /// The current view. After a failed poll: the findings, groups and flows of the last
    /// successful one, with `stale: true`, `status: error` and the error.
    pub report: ClusterReport,
    /// When each current finding (by id) was first seen; survives restarts.
    #[serde(default)]
    pub first_seen: BTreeMap<String, DateTime<Utc>>,
    /// Which (region, role) of the config the cluster was found through, so that a failure of
    /// that whole target can mark it, and a config reload can tell whether it is still wanted.
    pub origin: Origin,
    pub last_attempt: Option<DateTime<Utc>>,
    pub last_error: Option<PollError>,
}

impl ClusterState {
    pub fn id(&self) -> ClusterId {
        ClusterId {
            account_id: self.report.account_id.clone(),
            region: self.report.region.clone(),
            name: self.report.cluster.clone(),
        }
    }

    /// Did the last poll of this cluster succeed?
    pub fn poll_ok(&self) -> bool {
        self.last_error.is_none() && self.report.last_success.is_some()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Origin {
    pub region: String,
    pub role_arn: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PollError {
    /// `SourceError::kind()`: bounded.
    pub kind: String,
    pub message: String,
    pub at: DateTime<Utc>,
}

impl PersistedState {
    /// The report of design.md §3 for every known cluster, in key order.
    pub fn report(&self, now: DateTime<Utc>) -> Report {
        Report::new(now, self.clusters.values().map(|c| c.report.clone()).collect(), Stats::default())
    }

    /// First-seen times of every current finding of every cluster (finding ids are unique
    /// across clusters: the cluster is part of the hash).
    pub fn first_seen(&self) -> BTreeMap<String, DateTime<Utc>> {
        self.clusters.values().flat_map(|c| c.first_seen.iter().map(|(k, v)| (k.clone(), *v))).collect()
    }
}

/// The state in memory, and the one file it is persisted to. Writers are serialized, so the
/// file always holds the result of the last completed `update`.
pub struct StateStore {
    pub path: PathBuf,
    // A plain mutex, held only while a closure runs or the state is serialized: scrapes read it
    // synchronously from a prometheus `Collector`.
    inner: std::sync::Mutex<PersistedState>,
    writer: tokio::sync::Mutex<()>,
}

impl StateStore {
    /// Reads `path`; a missing file is an empty state. See the module docs for a corrupt one.
    pub fn load(path: PathBuf) -> Result<Self, StateError> {
        let shown = path.display().to_string();
        let state = match fs::read_to_string(&path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => PersistedState::default(),
            Err(source) => return Err(StateError::Read { path: shown, source }),
            Ok(text) if text.trim().is_empty() => PersistedState::default(),
            Ok(text) => {
                let mut state: PersistedState = serde_json::from_str(&text).map_err(|e| StateError::Corrupt {
                    path: shown.clone(),
                    line: e.line(),
                    column: e.column(),
                    message: e.to_string().split(" at line ").next().unwrap_or_default().to_string(),
                })?;
                if state.version > STATE_VERSION {
                    return Err(StateError::Version { path: shown, found: state.version });
                }
                state.version = STATE_VERSION;
                state
            }
        };
        Ok(Self::with_state(path, state))
    }

    /// A store holding `state`, persisted to `path` from the next write on.
    pub fn with_state(path: PathBuf, state: PersistedState) -> Self {
        StateStore { path, inner: std::sync::Mutex::new(state), writer: tokio::sync::Mutex::new(()) }
    }

    /// Applies `f` and writes the result to disk before returning. When the write fails the
    /// change stays in memory (and reaches the disk with the next successful write).
    pub async fn update<R>(&self, f: impl FnOnce(&mut PersistedState) -> R) -> Result<R, StateError> {
        let (result, written) = self.apply(f).await;
        written.map(|()| result)
    }

    /// As [`update`](Self::update), but the closure's result is returned even when the write
    /// fails, for callers that must act on what changed either way (the scheduler's metrics).
    pub async fn apply<R>(&self, f: impl FnOnce(&mut PersistedState) -> R) -> (R, Result<(), StateError>) {
        let _writer = self.writer.lock().await;
        let (result, bytes) = {
            let mut guard = self.lock();
            let result = f(&mut guard);
            (result, serialize(&guard))
        };
        let written = self.write(bytes).await;
        (result, written)
    }

    pub async fn read<R>(&self, f: impl FnOnce(&PersistedState) -> R) -> R {
        self.read_now(f)
    }

    /// As [`read`](Self::read), for synchronous callers (a scrape's `Collector::collect`).
    pub fn read_now<R>(&self, f: impl FnOnce(&PersistedState) -> R) -> R {
        f(&self.lock())
    }

    /// Writes the current state (at shutdown, or after a failed write).
    pub async fn flush(&self) -> Result<(), StateError> {
        let _writer = self.writer.lock().await;
        let bytes = serialize(&self.lock());
        self.write(bytes).await
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PersistedState> {
        // A panic in an update closure leaves the state as it was changed so far; still usable.
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    async fn write(&self, bytes: Vec<u8>) -> Result<(), StateError> {
        let path = self.path.clone();
        // fsync can take long; keep it off the async workers.
        let result = tokio::task::spawn_blocking(move || write_atomic(&path, &bytes))
            .await
            .unwrap_or_else(|e| Err(io::Error::other(e.to_string())));
        result.map_err(|source| StateError::Write { path: self.path.display().to_string(), source })
    }
}

fn serialize(state: &PersistedState) -> Vec<u8> {
    // Only maps with string keys and plain values: serialization cannot fail.
    serde_json::to_vec(state).unwrap_or_default()
}

/// Replaces `path` with `bytes` so that a crash at any point leaves either the old or the new
/// file, never a mix.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "the state file path names no file"))?;
    fs::create_dir_all(&dir)?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(".tmp");
    let tmp = dir.join(tmp_name);
    {
        let mut options = OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
    }
    fs::rename(&tmp, path)?;
    // The rename is durable only once the directory entry is.
    File::open(&dir)?.sync_all()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::report::ClusterStatus;
    use crate::model::{Finding, FlowName};

    fn cluster(name: &str) -> ClusterState {
        ClusterState {
            report: ClusterReport {
                account_id: "111122223333".into(),
                region: "eu-west-1".into(),
                cluster: name.into(),
                endpoint_mode: None,
                style: None,
                status: ClusterStatus::Ok,
                error: None,
                groups: vec![],
                findings: vec![],
                flows: vec![],
                warnings: vec![],
                stale: false,
                last_success: Some("2026-01-02T03:04:05Z".parse().unwrap()),
            },
            first_seen: [("abc".to_string(), "2026-01-01T00:00:00Z".parse().unwrap())].into(),
            origin: Origin { region: "eu-west-1".into(), role_arn: None },
            last_attempt: None,
            last_error: None,
        }
    }

    #[tokio::test]
    async fn an_update_is_on_disk_when_it_returns_and_a_new_store_reads_it_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/state.json");
        let store = StateStore::load(path.clone()).unwrap();
        store.update(|s| s.clusters.insert("k".into(), cluster("prod"))).await.unwrap();
        let again = StateStore::load(path).unwrap();
        let (original, reread) = (store.read(|s| s.clone()).await, again.read(|s| s.clone()).await);
        assert_eq!(original, reread);
        assert_eq!(reread.clusters["k"].first_seen["abc"].to_rfc3339(), "2026-01-01T00:00:00+00:00");
    }

    #[tokio::test]
    async fn a_write_leaves_no_temporary_file_behind() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::load(dir.path().join("state.json")).unwrap();
        store.flush().await.unwrap();
        let names: Vec<String> =
            fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        assert_eq!(names, vec!["state.json".to_string()]);
    }

    #[test]
    fn a_missing_file_is_an_empty_state() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::load(dir.path().join("absent.json")).unwrap();
        assert!(store.read_now(|s| s.clusters.is_empty()));
    }

    #[test]
    fn a_corrupt_file_is_refused_with_its_name_line_and_column_and_left_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let text = "{\"version\": 1,\n \"clusters\": {,}}";
        fs::write(&path, text).unwrap();
        let err = StateStore::load(path.clone()).err().expect("corrupt state must be refused");
        let message = err.to_string();
        assert_eq!(err.kind(), "corrupt");
        assert!(message.contains(&path.display().to_string()), "{message}");
        assert!(message.contains("line 2, column 15"), "{message}");
        assert_eq!(fs::read_to_string(&path).unwrap(), text);
    }

    /// Written by the sgdrift of 2026-11-28, before findings held typed rules: `run` on the demo.
    const V1_DEMO_STATE: &str = include_str!("../tests/fixtures/state/v1-demo.json");

    /// `value` with the finding fields added since (`first_seen`, `changed_by`, `remediation`)
    /// as `null` wherever a finding is.
    fn with_new_finding_fields(value: &mut serde_json::Value) {
        match value {
            serde_json::Value::Object(map) => {
                if map.contains_key("suppressed_by") {
                    for key in ["first_seen", "changed_by", "remediation"] {
                        map.entry(key).or_insert(serde_json::Value::Null);
                    }
                }
                map.values_mut().for_each(with_new_finding_fields);
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(with_new_finding_fields),
            _ => {}
        }
    }

    #[test]
    fn a_state_file_written_before_findings_were_typed_loads_and_is_written_back_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        fs::write(&path, V1_DEMO_STATE).unwrap();
        let store = StateStore::load(path).expect("the old state loads");
        let state = store.read_now(|s| s.clone());
        let findings: Vec<&Finding> = state.clusters.values().flat_map(|c| &c.report.findings).collect();
        assert!(findings.iter().any(|f| f.flow == Some(FlowName::Kubelet)), "{findings:?}");
        let episodes: usize = state.alerts.clusters.values().map(|c| c.open.len()).sum();
        assert_eq!((findings.len(), episodes), (4, 4));
        let mut old: serde_json::Value = serde_json::from_str(V1_DEMO_STATE).unwrap();
        with_new_finding_fields(&mut old);
        let new: serde_json::Value = serde_json::from_slice(&serialize(&state)).unwrap();
        assert_eq!(new, old);
    }

    #[test]
    fn a_state_file_from_a_newer_version_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        fs::write(&path, r#"{"version": 99}"#).unwrap();
        let err = StateStore::load(path).err().expect("newer state must be refused");
        assert_eq!(err.kind(), "version");
    }

    #[tokio::test]
    async fn an_unwritable_location_is_a_write_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("not-a-dir");
        fs::write(&blocker, "").unwrap();
        let path = blocker.join("state.json");
        let store = StateStore::with_state(path.clone(), PersistedState::default());
        let err = store.update(|s| s.clusters.len()).await.expect_err("the write must fail");
        assert_eq!(err.kind(), "write");
        assert!(err.to_string().contains(&path.display().to_string()));
    }
}
