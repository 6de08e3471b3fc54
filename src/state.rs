//! Persistent state: the current findings per cluster with their first-seen times, the last
//! success and error of each cluster's poll, and the alert episodes and outbox; written
//! atomically (temp file in the same directory, fsync, rename, fsync of the directory).
//!
//! Beside the state file, `<state file>.delivered` is an append-only journal of the outbox
//! entries delivered since the state file was last written: a delivery appends one line and
//! fsyncs it instead of rewriting the whole state (whose size grows with the fleet), and the next
//! full write folds the journal in and empties it. Loading applies it.
//!
//! The file is strict and versioned (`"version": N`). A missing file is a first start. Anything
//! else that is not a state this build reads — unknown keys, wrong shapes, `[]`, `{}`, an empty
//! file, a newer version — is refused with the file, what is wrong and what to do, and never
//! overwritten: discarding it would lose undelivered notifications and first-seen times and
//! re-alert every drift, so that takes the operator's `sgdrift run --reset-state`, which moves
//! it aside. Older versions are migrated forward on load (see [`migrate`]).

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::alert::AlertState;
use crate::export::report::{ClusterReport, Report, Stats};
use crate::model::ClusterId;

/// The version of the file format this build writes. 1: the outbox keyed by sink position
/// (`slack:0`); 2: keyed by sink name, the file strict.
pub const STATE_VERSION: u32 = 2;

/// What to do about a state file sgdrift refuses.
const WAY_OUT: &str = "restore it from a backup, or start once with `sgdrift run --reset-state` to move it aside \
     (queued alerts in it are then lost, and drift that is still present alerts again)";

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot read state file {path}: {source}")]
    Read { path: String, source: io::Error },
    #[error("state file {path} is not a sgdrift state: {message}; sgdrift does not overwrite it: {WAY_OUT}")]
    Corrupt { path: String, message: String },
    #[error("state file {path} has format version {found}, newer than this sgdrift reads ({STATE_VERSION}); run a newer sgdrift, or {WAY_OUT}")]
    Version { path: String, found: u64 },
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
#[serde(deny_unknown_fields)]
pub struct PersistedState {
    pub version: u32,
    /// Per cluster, keyed by [`cluster_key`]: the daemon's view, owned by the scheduler.
    pub clusters: BTreeMap<String, ClusterState>,
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
#[serde(deny_unknown_fields)]
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
#[serde(deny_unknown_fields)]
pub struct Origin {
    pub region: String,
    pub role_arn: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
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

/// The state in memory, the file it is persisted to and the journal of deliveries beside it.
/// Writers are serialized, so the files always hold the result of the last completed write.
pub struct StateStore {
    pub path: PathBuf,
    // A plain mutex, held only while a closure runs or the state is serialized: scrapes read it
    // synchronously from a prometheus `Collector`.
    inner: std::sync::Mutex<PersistedState>,
    writer: tokio::sync::Mutex<Journal>,
    /// The last write (full or journal) succeeded.
    writable: AtomicBool,
    /// Why the last write failed; `None` once a write succeeds (read by `/readyz`).
    write_error: std::sync::Mutex<Option<String>>,
}

/// `<state file>.delivered`: one JSON string (an outbox entry id) per line.
struct Journal {
    path: PathBuf,
    /// Lines appended since the state file was last written.
    lines: usize,
}

impl StateStore {
    /// Reads `path` and its journal; a missing file is an empty state. See the module docs for
    /// a file that is not a state this build reads.
    pub fn load(path: PathBuf) -> Result<Self, StateError> {
        let shown = path.display().to_string();
        let mut state = match fs::read_to_string(&path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => PersistedState::default(),
            Err(source) => return Err(StateError::Read { path: shown, source }),
            Ok(text) => parse(&text).map_err(|e| e.at(&shown))?,
        };
        let journal = journal_path(&path);
        let delivered = read_journal(&journal).map_err(|e| e.at(&journal.display().to_string()))?;
        let lines = delivered.len();
        if lines > 0 {
            state.alerts.outbox.retain(|e| !delivered.contains(&e.id));
        }
        Ok(StateStore {
            path,
            inner: std::sync::Mutex::new(state),
            writer: tokio::sync::Mutex::new(Journal { path: journal, lines }),
            writable: AtomicBool::new(true),
            write_error: std::sync::Mutex::new(None),
        })
    }

    /// As [`load`](Self::load); with `reset`, a state file that is refused (not one that cannot
    /// be read) is renamed to `<file>.refused-<time>` and the state starts empty. Returns where
    /// it was moved.
    pub fn load_or_reset(path: PathBuf, reset: bool) -> Result<(Self, Option<PathBuf>), StateError> {
        match Self::load(path.clone()) {
            Err(StateError::Corrupt { .. } | StateError::Version { .. }) if reset => {
                let mut aside = path.clone().into_os_string();
                aside.push(format!(".refused-{}", Utc::now().format("%Y%m%dT%H%M%SZ")));
                let aside = PathBuf::from(aside);
                let moved = fs::rename(&path, &aside).and_then(|()| match fs::remove_file(journal_path(&path)) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
                    _ => Ok(()),
                });
                moved.map_err(|source| StateError::Write { path: path.display().to_string(), source })?;
                Ok((Self::with_state(path, PersistedState::default()), Some(aside)))
            }
            other => other.map(|s| (s, None)),
        }
    }

    /// A store holding `state`, persisted to `path` from the next write on.
    pub fn with_state(path: PathBuf, state: PersistedState) -> Self {
        let journal = journal_path(&path);
        StateStore {
            path,
            inner: std::sync::Mutex::new(state),
            writer: tokio::sync::Mutex::new(Journal { path: journal, lines: 0 }),
            writable: AtomicBool::new(true),
            write_error: std::sync::Mutex::new(None),
        }
    }

    /// Did the last write succeed? Delivery holds while it did not: an alert sent that cannot
    /// be recorded as sent would be sent again after a restart.
    pub fn writable(&self) -> bool {
        self.writable.load(Ordering::Relaxed)
    }

    /// [`writable`](Self::writable) once any write in progress has finished: an update shows
    /// its change in memory before its write ends, so a reader that acts on what it sees
    /// (the outbox worker sending an entry) must wait for that write's verdict.
    pub async fn writable_settled(&self) -> bool {
        let _writer = self.writer.lock().await;
        self.writable()
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
        let mut journal = self.writer.lock().await;
        let (result, bytes) = {
            let mut guard = self.lock();
            let result = f(&mut guard);
            (result, serialize(&guard))
        };
        let written = self.write(bytes, &mut journal).await;
        (result, written)
    }

    /// Removes delivered outbox entries and records that in the journal (one small fsynced
    /// append), without rewriting the state file. `remaining` gets the outbox length while the
    /// writer is held, so gauges set from it by concurrent workers land in removal order.
    pub async fn outbox_delivered(&self, ids: &[String], remaining: impl FnOnce(usize)) -> Result<(), StateError> {
        let mut journal = self.writer.lock().await;
        let left = {
            let mut state = self.lock();
            state.alerts.outbox.retain(|e| !ids.contains(&e.id));
            state.alerts.outbox.len()
        };
        remaining(left);
        let mut text = String::new();
        for id in ids {
            text.push_str(&serde_json::Value::from(id.as_str()).to_string());
            text.push('\n');
        }
        let path = journal.path.clone();
        let appended = tokio::task::spawn_blocking(move || append_synced(&path, text.as_bytes()))
            .await
            .unwrap_or_else(|e| Err(io::Error::other(e.to_string())));
        self.record_write(&appended, &journal.path);
        appended.map_err(|source| StateError::Write { path: journal.path.display().to_string(), source })?;
        journal.lines += ids.len();
        Ok(())
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
        let mut journal = self.writer.lock().await;
        let bytes = serialize(&self.lock());
        self.write(bytes, &mut journal).await
    }

    /// Why the last write of the state file failed, while it has not succeeded since.
    pub fn write_error(&self) -> Option<String> {
        self.write_error.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Remembers how the last write went, for delivery (`writable`) and `/readyz` (`write_error`).
    fn record_write(&self, result: &io::Result<()>, path: &Path) {
        self.writable.store(result.is_ok(), Ordering::Relaxed);
        let error = result.as_ref().err().map(|e| format!("cannot write state file {}: {e}", path.display()));
        *self.write_error.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = error;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PersistedState> {
        // A panic in an update closure leaves the state as it was changed so far; still usable.
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The full state, then an empty journal: the state file now holds every delivery.
    async fn write(&self, bytes: Vec<u8>, journal: &mut Journal) -> Result<(), StateError> {
        let path = self.path.clone();
        let journal_file = (journal.lines > 0).then(|| journal.path.clone());
        // fsync can take long; keep it off the async workers.
        let result = tokio::task::spawn_blocking(move || {
            write_atomic(&path, &bytes)?;
            match journal_file.map(fs::remove_file) {
                Some(Err(e)) if e.kind() != io::ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            }
        })
        .await
        .unwrap_or_else(|e| Err(io::Error::other(e.to_string())));
        self.record_write(&result, &self.path);
        result.map_err(|source| StateError::Write { path: self.path.display().to_string(), source })?;
        journal.lines = 0;
        Ok(())
    }
}

fn journal_path(state: &Path) -> PathBuf {
    let mut p = state.as_os_str().to_owned();
    p.push(".delivered");
    PathBuf::from(p)
}

/// A refusal before the file is named.
struct Refusal(String, Option<u64>);

impl Refusal {
    fn at(self, path: &str) -> StateError {
        match self.1 {
            Some(found) => StateError::Version { path: path.to_string(), found },
            None => StateError::Corrupt { path: path.to_string(), message: self.0 },
        }
    }
}

/// The state in `text`, migrated forward from an older version; strict about everything else.
fn parse(text: &str) -> Result<PersistedState, Refusal> {
    let refuse = |m: String| Refusal(m, None);
    if text.trim().is_empty() {
        return Err(refuse("the file is empty".into()));
    }
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| refuse(json_message(&e)))?;
    let serde_json::Value::Object(map) = &value else {
        return Err(refuse(format!(
            "expected a JSON object with version, clusters and alerts, found {}",
            kind_of(&value)
        )));
    };
    let version = match map.get("version") {
        // sgdrift before the format was versioned wrote the version-1 shape.
        None => 1,
        Some(v) => v.as_u64().ok_or_else(|| refuse(format!("`version` must be a whole number, found {v}")))?,
    };
    if version > u64::from(STATE_VERSION) {
        return Err(Refusal(String::new(), Some(version)));
    }
    if version == u64::from(STATE_VERSION) {
        // From the text, so a shape error names its line and column.
        return serde_json::from_str(text).map_err(|e| refuse(json_message(&e)));
    }
    let migrated = migrate(value, version).map_err(refuse)?;
    serde_json::from_value(migrated).map_err(|e| refuse(format!("after migrating from version {version}: {e}")))
}

/// Carries a state of `version` forward to [`STATE_VERSION`], one version at a time.
///
/// 1 → 2: outbox entries keyed by sink position (`slack:0`, `webhook:1`) are rekeyed
/// `legacy:slack:0`; the dispatcher maps such a key to a configured sink only where that is
/// unambiguous, and otherwise keeps the entry in quarantine (see `alert::outbox`).
pub fn migrate(mut value: serde_json::Value, version: u64) -> Result<serde_json::Value, String> {
    if version == 0 {
        return Err("`version` 0 was never written by sgdrift".into());
    }
    if version < 2 {
        let outbox = value.pointer_mut("/alerts/outbox").and_then(|o| o.as_array_mut());
        for entry in outbox.into_iter().flatten() {
            let Some(sink) = entry.get("sink").and_then(|s| s.as_str()).map(str::to_string) else {
                return Err("an outbox entry has no `sink`".into());
            };
            let legacy = crate::alert::SinkName::legacy(&sink).to_string();
            let id = entry.get("id").and_then(|s| s.as_str()).unwrap_or_default();
            let id = format!("{}@{legacy}", id.rsplit_once('@').map_or(id, |(n, _)| n));
            entry["sink"] = legacy.into();
            entry["id"] = id.into();
        }
    }
    value["version"] = STATE_VERSION.into();
    Ok(value)
}

fn json_message(e: &serde_json::Error) -> String {
    let message = e.to_string();
    let message = message.split(" at line ").next().unwrap_or_default();
    format!("line {}, column {}: {message}", e.line(), e.column())
}

fn kind_of(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// The ids in the journal. A last line without its newline is an append a crash cut short:
/// its delivery was never acknowledged, so it is ignored (the entry is sent again).
fn read_journal(path: &Path) -> Result<std::collections::HashSet<String>, Refusal> {
    let text = match fs::read_to_string(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Default::default()),
        Err(e) => return Err(Refusal(format!("cannot read it: {e}"), None)),
        Ok(text) => text,
    };
    let complete = text.rfind('\n').map_or("", |end| &text[..end]);
    complete
        .lines()
        .enumerate()
        .map(|(i, line)| {
            serde_json::from_str::<String>(line)
                .map_err(|_| Refusal(format!("line {} is not a quoted outbox entry id", i + 1), None))
        })
        .collect()
}

/// Appends `bytes` to `path` and fsyncs it.
fn append_synced(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut options = OpenOptions::new();
    options.append(true).create(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let created = !path.exists();
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    if created {
        // A new file's directory entry is durable only once the directory is.
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            File::open(dir)?.sync_all()?;
        }
    }
    Ok(())
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
                owned: Vec::new(),
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
        old.as_object_mut().unwrap().remove("version");
        with_new_finding_fields(&mut old);
        let mut new: serde_json::Value = serde_json::from_slice(&serialize(&state)).unwrap();
        // What later versions added on purpose: the format version, each report's `owned`, and the
        // findings' first_seen, changed_by and remediation (null until known).
        assert_eq!(new.as_object_mut().unwrap().remove("version"), Some(serde_json::json!(STATE_VERSION)));
        for cluster in new["clusters"].as_object_mut().unwrap().values_mut() {
            assert_eq!(cluster["report"].as_object_mut().unwrap().remove("owned"), Some(serde_json::json!([])));
        }
        assert_eq!(new, old, "the findings and episodes are written back as they were");
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

    #[test]
    fn anything_that_is_not_a_state_is_refused_with_the_file_and_the_way_out() {
        let cases = [
            ("", "the file is empty"),
            ("  \n", "the file is empty"),
            ("[]", "expected a JSON object with version, clusters and alerts, found an array"),
            ("null", "found null"),
            ("{}", "missing field `clusters`"),
            (r#"{"version": 2}"#, "missing field `clusters`"),
            (r#"{"version": 2, "clusters": {}, "alerts": {}, "outboxx": []}"#, "unknown field `outboxx`"),
            (r#"{"version": 2, "clusters": {}, "alerts": {"outboxx": []}}"#, "unknown field `outboxx`"),
            (r#"{"version": 2, "clusters": [], "alerts": {}}"#, "invalid type: sequence"),
            (r#"{"version": "2", "clusters": {}, "alerts": {}}"#, "`version` must be a whole number"),
            (r#"{"clusters": {}, "alerts": {}, "extra": 1}"#, "after migrating from version 1: unknown field `extra`"),
        ];
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        for (text, want) in cases {
            fs::write(&path, text).unwrap();
            let err = StateStore::load(path.clone()).err().unwrap_or_else(|| panic!("{text:?} was accepted"));
            let message = err.to_string();
            assert_eq!(err.kind(), "corrupt", "{text:?}: {message}");
            assert!(message.contains(want), "{text:?}: {message}");
            assert!(message.contains(&path.display().to_string()) && message.contains("--reset-state"), "{message}");
            assert_eq!(fs::read_to_string(&path).unwrap(), text, "a refused file is left untouched");
        }
    }

    /// The shape sgdrift 0.1 wrote: version 1, the outbox keyed by sink position.
    fn version_1(sinks: &[&str]) -> String {
        let entries: Vec<String> = sinks
            .iter()
            .enumerate()
            .map(|(i, sink)| {
                format!(
                    r#"{{"id": "n{i}@{sink}", "sink": "{sink}", "enqueued_at": "2026-11-28T10:00:00Z",
                        "notification": {{"id": "n{i}", "created_at": "2026-11-28T10:00:00Z",
                          "cluster": {{"account_id": "111122223333", "region": "eu-west-1", "name": "prod"}},
                          "events": [], "open": {{}}}}}}"#
                )
            })
            .collect();
        format!(
            r#"{{"version": 1, "clusters": {{}}, "alerts": {{"clusters": {{}}, "outbox": [{}]}}}}"#,
            entries.join(",")
        )
    }

    #[tokio::test]
    async fn a_version_1_file_is_migrated_with_its_position_keys_set_apart_and_written_back_as_version_2() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        fs::write(&path, version_1(&["slack:0", "webhook:1", "log"])).unwrap();
        let store = StateStore::load(path.clone()).unwrap();
        let keys =
            store.read_now(|s| s.alerts.outbox.iter().map(|e| (e.id.clone(), e.sink.to_string())).collect::<Vec<_>>());
        assert_eq!(
            keys,
            vec![
                ("n0@legacy:slack:0".to_string(), "legacy:slack:0".to_string()),
                ("n1@legacy:webhook:1".to_string(), "legacy:webhook:1".to_string()),
                ("n2@legacy:log".to_string(), "legacy:log".to_string()),
            ]
        );
        store.flush().await.unwrap();
        let written: serde_json::Value = serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(written["version"], STATE_VERSION);
        assert_eq!(StateStore::load(path).unwrap().read_now(|s| s.alerts.outbox.len()), 3);
    }

    #[tokio::test]
    async fn a_delivery_appends_to_the_journal_and_the_next_full_write_folds_it_in() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        fs::write(&path, version_1(&["slack:0", "slack:0", "slack:0"])).unwrap();
        let store = StateStore::load(path.clone()).unwrap();
        store.flush().await.unwrap();
        let before = fs::read_to_string(&path).unwrap();
        store.outbox_delivered(&["n0@legacy:slack:0".to_string()], |_| ()).await.unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), before, "a delivery does not rewrite the state file");
        assert_eq!(fs::read_to_string(journal_path(&path)).unwrap(), "\"n0@legacy:slack:0\"\n");
        // A crash here: the next load applies the journal, and a torn last append is ignored.
        let mut journal = OpenOptions::new().append(true).open(journal_path(&path)).unwrap();
        journal.write_all(b"\"n1@legac").unwrap();
        let reloaded = StateStore::load(path.clone()).unwrap();
        let ids = reloaded.read_now(|s| s.alerts.outbox.iter().map(|e| e.id.clone()).collect::<Vec<_>>());
        assert_eq!(ids, vec!["n1@legacy:slack:0", "n2@legacy:slack:0"]);
        reloaded.flush().await.unwrap();
        assert!(!journal_path(&path).exists(), "a full write empties the journal");
        assert_eq!(StateStore::load(path).unwrap().read_now(|s| s.alerts.outbox.len()), 2);
    }

    #[test]
    fn a_journal_line_that_is_not_an_id_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        fs::write(journal_path(&path), "\"ok\"\nnot json\n").unwrap();
        let err = StateStore::load(path.clone()).err().expect("a broken journal is refused");
        assert!(err.to_string().contains("state.json.delivered") && err.to_string().contains("line 2"), "{err}");
    }

    #[test]
    fn reset_moves_a_refused_file_aside_and_starts_empty_but_never_touches_a_good_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        fs::write(&path, "[]").unwrap();
        assert!(StateStore::load_or_reset(path.clone(), false).is_err());
        let (store, aside) = StateStore::load_or_reset(path.clone(), true).unwrap();
        let aside = aside.expect("the refused file was moved");
        assert_eq!(fs::read_to_string(&aside).unwrap(), "[]");
        assert!(!path.exists() && store.read_now(|s| s.clusters.is_empty()));
        fs::write(&path, version_1(&[])).unwrap();
        let (_, aside) = StateStore::load_or_reset(path.clone(), true).unwrap();
        assert_eq!(aside, None, "a readable state is kept");
    }
}
