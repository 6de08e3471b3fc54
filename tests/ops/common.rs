//! Helpers shared by the `tests/ops_*.rs` tests: the repository, the external tools (each one
//! missing is a failure that says how to install it, never a skip), and small text scanners.

#![allow(dead_code)] // each test binary uses its own subset

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn read(relative: &str) -> String {
    let path = repo().join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

pub fn read_json(relative: &str) -> serde_json::Value {
    let text = read(relative);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{relative}:{}:{}: {e}", e.line(), e.column()))
}

/// The absolute path of a tool on `PATH` or in `<repo>/.tools/bin` (where scripts/setup-test-deps
/// puts what Debian does not ship, such as helm), or a failure naming the script that installs it.
pub fn tool(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(std::iter::once(repo().join(".tools/bin")))
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!("`{name}` is not installed (not on PATH nor in .tools/bin): run scripts/setup-test-deps")
        })
}

/// A command-line tool of the test virtualenv (beside [`python`]), such as kubernetes-validate.
pub fn venv_tool(name: &str) -> PathBuf {
    let python = python();
    let candidate = python.with_file_name(name);
    assert!(candidate.is_file(), "{} does not exist: run scripts/setup-test-deps", candidate.display());
    candidate
}

/// The Python of the test virtualenv (`SGDRIFT_PYTHON`, default `<repo>/.venv/bin/python`),
/// checked to have PyYAML and kubernetes-validate.
pub fn python() -> PathBuf {
    let python =
        std::env::var_os("SGDRIFT_PYTHON").map(PathBuf::from).unwrap_or_else(|| repo().join(".venv/bin/python"));
    assert!(
        python.exists(),
        "{} does not exist: run scripts/setup-test-deps (or set SGDRIFT_PYTHON)",
        python.display()
    );
    let probe = Command::new(&python).args(["-c", "import yaml, kubernetes_validate"]).output();
    match probe {
        Ok(out) if out.status.success() => python,
        Ok(out) => panic!(
            "{} lacks PyYAML or kubernetes-validate: run scripts/setup-test-deps\n{}",
            python.display(),
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => panic!("cannot run {}: {e}: run scripts/setup-test-deps", python.display()),
    }
}

/// Runs `cmd` and returns its output; a failure to start it fails the test.
pub fn run(cmd: &mut Command) -> Output {
    cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

/// Runs `cmd` and fails the test, showing everything it printed, unless it exits 0.
pub fn run_ok(cmd: &mut Command) -> Output {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Every `sgdrift_…` identifier in `text`.
pub fn sgdrift_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(offset) = text[i..].find("sgdrift_") {
        let start = i + offset;
        let boundary = start == 0 || !is_ident(bytes[start - 1]);
        let mut end = start + "sgdrift_".len();
        while end < bytes.len() && is_ident(bytes[end]) {
            end += 1;
        }
        if boundary && end > start + "sgdrift_".len() {
            names.insert(text[start..end].to_string());
        }
        i = end;
    }
    names
}

/// Every string literal in Rust source `text` that starts with `sgdrift_` (the whole literal).
pub fn sgdrift_string_literals(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(offset) = rest.find("\"sgdrift_") {
        let after = &rest[offset + 1..];
        let end = after.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(after.len());
        if after[end..].starts_with('"') {
            names.insert(after[..end].to_string());
        }
        rest = &after[end..];
    }
    names
}

fn is_ident(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// All `.rs` files at `path` (a file) or below it (a directory), sorted.
pub fn rust_files(path: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if path.is_file() {
        out.push(path.to_path_buf());
    } else if path.is_dir() {
        let mut entries: Vec<_> = std::fs::read_dir(path)
            .unwrap_or_else(|e| panic!("cannot list {}: {e}", path.display()))
            .map(|e| e.expect("directory entry").path())
            .collect();
        entries.sort();
        for entry in entries {
            out.extend(rust_files(&entry));
        }
    }
    out
}

/// Rust source without `//` comments, so documentation that names a call is not a call.
pub fn strip_line_comments(source: &str) -> String {
    source
        .lines()
        .map(|line| {
            let mut in_string = false;
            let bytes = line.as_bytes();
            for i in 0..bytes.len() {
                match bytes[i] {
                    b'"' if i == 0 || bytes[i - 1] != b'\\' => in_string = !in_string,
                    b'/' if !in_string && bytes.get(i + 1) == Some(&b'/') => return &line[..i],
                    _ => {}
                }
            }
            line
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every panel of a dashboard, rows' nested panels included, rows excluded.
pub fn dashboard_panels(dashboard: &serde_json::Value) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    for panel in dashboard["panels"].as_array().expect("dashboard has a panels array") {
        if panel["type"] == "row" {
            out.extend(panel["panels"].as_array().cloned().unwrap_or_default());
        } else {
            out.push(panel.clone());
        }
    }
    out
}

/// Every PromQL expression of a dashboard's panels, with the panel's title.
pub fn dashboard_queries(dashboard: &serde_json::Value) -> Vec<(String, String)> {
    dashboard_panels(dashboard)
        .iter()
        .flat_map(|panel| {
            let title = panel["title"].as_str().unwrap_or("(untitled)").to_string();
            panel["targets"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(move |t| (title.clone(), t["expr"].as_str().unwrap_or_default().to_string()))
        })
        .collect()
}

/// A query variable's query text (classic string or the newer `{query: …}` object).
pub fn variable_query(var: &serde_json::Value) -> String {
    match &var["query"] {
        serde_json::Value::String(s) => s.clone(),
        other => other["query"].as_str().unwrap_or_default().to_string(),
    }
}
