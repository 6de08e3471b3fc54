//! The systemd unit: `systemd-analyze verify` accepts it (on a copy whose ExecStart names the
//! binary built here, since /usr/local/bin/sgdrift is not installed on the test machine), its
//! hardening is in place, and `systemd-analyze security` rates its exposure OK.

use std::path::PathBuf;
use std::process::Command;

use crate::ops_common::{read, run, run_ok, tool};

const UNIT: &str = "deploy/systemd/sgdrift.service";
const INSTALLED_BINARY: &str = "/usr/local/bin/sgdrift";

/// A copy of the unit under its own name in a temp dir, with ExecStart on the built binary.
fn unit_copy() -> (tempfile::TempDir, PathBuf) {
    let text = read(UNIT);
    assert!(
        text.contains(&format!("ExecStart={INSTALLED_BINARY} ")),
        "{UNIT}: ExecStart should run {INSTALLED_BINARY}"
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("sgdrift.service");
    let built = env!("CARGO_BIN_EXE_sgdrift");
    std::fs::write(&path, text.replace(&format!("ExecStart={INSTALLED_BINARY} "), &format!("ExecStart={built} ")))
        .expect("write unit");
    (dir, path)
}

/// The `Key=value` settings of the unit's [Service] section, in order.
fn service_settings() -> Vec<(String, String)> {
    let text = read(UNIT);
    let mut in_service = false;
    let mut out = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            in_service = line == "[Service]";
        } else if in_service && !line.is_empty() && !line.starts_with('#') {
            let (k, v) = line.split_once('=').unwrap_or_else(|| panic!("{UNIT}: `{line}` is not Key=value"));
            out.push((k.to_string(), v.to_string()));
        }
    }
    out
}

#[test]
fn systemd_analyze_verifies_the_unit() {
    let (_dir, path) = unit_copy();
    let out = run_ok(Command::new(tool("systemd-analyze")).arg("verify").arg(&path));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.trim().is_empty(), "systemd-analyze verify warned:\n{stderr}");
}

#[test]
fn the_unit_runs_unprivileged_with_a_state_directory_and_reloads_on_sighup() {
    let settings = service_settings();
    let get = |key: &str| -> Vec<&str> { settings.iter().filter(|(k, _)| k == key).map(|(_, v)| v.as_str()).collect() };
    for (key, value) in [
        ("DynamicUser", "yes"),
        ("StateDirectory", "sgdrift"),
        ("NoNewPrivileges", "yes"),
        ("CapabilityBoundingSet", ""),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("PrivateDevices", "yes"),
        ("SystemCallFilter", "@system-service"),
        ("SystemCallArchitectures", "native"),
        ("RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX AF_NETLINK"),
        ("ExecReload", "/bin/kill -HUP $MAINPID"),
    ] {
        assert!(get(key).contains(&value), "{UNIT}: expected {key}={value}, found {:?}", get(key));
    }
    // The config's default state file must be where StateDirectory puts it.
    let config = sgdrift::config::AlertsConfig::default();
    assert_eq!(
        config.state_file,
        PathBuf::from("/var/lib/sgdrift/state.json"),
        "the default state_file is not under StateDirectory"
    );
}

#[test]
fn the_units_open_files_limit_covers_the_default_connection_cap_and_the_reserve() {
    let settings = service_settings();
    let limit: u64 = settings
        .iter()
        .find(|(k, _)| k == "LimitNOFILE")
        .unwrap_or_else(|| panic!("{UNIT}: no LimitNOFILE (systemd's default soft limit is 1024)"))
        .1
        .parse()
        .expect("LimitNOFILE is a number");
    let server = sgdrift::config::ServerConfig::default();
    let (fitted, lowered) = server.limits().fit(Some(limit));
    assert!(lowered.is_none(), "{UNIT}: LimitNOFILE={limit} lowers the connection cap: {lowered:?}");
    assert_eq!(fitted.max_connections, server.max_connections);
}

#[test]
fn systemd_analyze_rates_the_units_exposure_ok() {
    let (_dir, path) = unit_copy();
    let out = run(Command::new(tool("systemd-analyze"))
        .args(["security", "--offline=true", "--threshold=20", "--no-pager"])
        .arg(&path));
    let text = String::from_utf8_lossy(&out.stdout);
    let overall = text.lines().find(|l| l.contains("Overall exposure level")).unwrap_or("(no overall line)");
    assert!(out.status.success(), "exposure above 2.0: {overall}\n{text}");
}
