//! The Kubernetes manifests: valid for the Kubernetes versions EKS runs (kubernetes-validate,
//! strict), the Prometheus Operator kinds checked for their required fields, the objects
//! consistent with each other, and the ConfigMap's config accepted by the daemon's own loader.

use std::process::Command;

use crate::ops_common::{python, repo, run_ok};

#[test]
fn every_manifest_validates_and_its_references_resolve() {
    let out = run_ok(Command::new(python()).arg(repo().join("tests/ops/check_k8s.py")).arg(repo()));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("; 0 problem(s)"), "check_k8s.py said:\n{text}");
}

#[test]
fn the_configmap_config_loads_with_the_daemons_own_loader() {
    let dir = tempfile::tempdir().expect("temp dir");
    run_ok(
        Command::new(python()).arg(repo().join("tests/ops/check_k8s.py")).arg(repo()).arg("--extract").arg(dir.path()),
    );
    let config = dir.path().join("sgdrift.toml");
    let settings =
        sgdrift::config::load(&config).unwrap_or_else(|e| panic!("the ConfigMap's sgdrift.toml is rejected: {e}"));
    assert_eq!(settings.config.server.listen, "0.0.0.0:9787", "the container port and probes use 9787");
    assert_eq!(settings.config.source.kind, sgdrift::config::SourceKind::Aws);
    assert_eq!(
        settings.config.alerts.state_file,
        std::path::PathBuf::from("/var/lib/sgdrift/state.json"),
        "the state file must be on the sgdrift-state volume"
    );
    assert!(!settings.targets.is_empty(), "the ConfigMap configures no target");
}
