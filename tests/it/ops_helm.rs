//! The Helm chart (deploy/helm/sgdrift), with the real `helm` (scripts/setup-test-deps puts it
//! in .tools/bin): it lints; with the default, IRSA and Pod Identity value sets it renders
//! manifests that kubernetes-validate accepts strictly and whose objects fit together
//! (tests/ops/check_helm.py); the config it renders passes `sgdrift config check`; its alert
//! rules are the rule file's; and values that cannot work are refused, naming the key.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::ops_common::{python, read, repo, run, run_ok, tool, venv_tool};

const CHART: &str = "deploy/helm/sgdrift";
/// The Kubernetes versions EKS supports that kubernetes-validate ships (as check_k8s.py).
const KUBERNETES_VERSIONS: [&str; 2] = ["1.30.0", "1.35.0"];
/// Where the pod sees the sinks' Secrets; the config check puts them under a temp dir instead.
const SECRETS_MOUNT: &str = "/var/run/secrets/sgdrift/";

/// The value sets every check runs with: a name and the values file (none: the chart defaults).
fn value_sets() -> Vec<(&'static str, Option<PathBuf>)> {
    vec![
        ("default", None),
        ("irsa", Some(repo().join(CHART).join("ci/irsa-values.yaml"))),
        ("pod-identity", Some(repo().join(CHART).join("ci/pod-identity-values.yaml"))),
    ]
}

/// `helm template` of the chart as release `sgdrift` in namespace `sgdrift`.
fn helm_template(values: Option<&Path>, extra: &[&str]) -> Command {
    let mut cmd = Command::new(tool("helm"));
    cmd.args(["template", "sgdrift"]).arg(repo().join(CHART)).args(["--namespace", "sgdrift"]);
    if let Some(values) = values {
        cmd.arg("--values").arg(values);
    }
    cmd.args(extra);
    cmd
}

/// The manifests of one value set, written to `dir/rendered.yaml`.
fn render(name: &str, values: Option<&Path>, dir: &Path) -> PathBuf {
    let out = run_ok(&mut helm_template(values, &[]));
    let path = dir.join("rendered.yaml");
    std::fs::write(&path, &out.stdout).unwrap_or_else(|e| panic!("{name}: cannot write {}: {e}", path.display()));
    path
}

#[test]
fn helm_lint_passes_strictly_with_every_value_set() {
    for (name, values) in value_sets() {
        let mut cmd = Command::new(tool("helm"));
        cmd.args(["lint", "--strict"]).arg(repo().join(CHART));
        if let Some(values) = &values {
            cmd.arg("--values").arg(values);
        }
        let out = run_ok(&mut cmd);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("1 chart(s) linted, 0 chart(s) failed"), "{name}: helm lint said:\n{text}");
    }
}

#[test]
fn every_value_set_renders_manifests_that_kubernetes_validate_accepts_strictly() {
    for (name, values) in value_sets() {
        let dir = tempfile::tempdir().expect("temp dir");
        let rendered = render(name, values.as_deref(), dir.path());
        for version in KUBERNETES_VERSIONS {
            let out = run(Command::new(venv_tool("kubernetes-validate"))
                .args(["--strict", "--kubernetes-version", version])
                .arg(&rendered));
            let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
            assert!(
                out.status.success() && !text.contains("ERROR"),
                "{name}: kubernetes-validate --strict for {version} failed:\n{text}"
            );
            // Only the Prometheus Operator kinds may lack a schema; check_helm.py checks them.
            for line in text.lines().filter(|l| l.contains("Couldn't find schema")) {
                assert!(
                    line.contains("monitoring.coreos.com/v1"),
                    "{name}: a kind kubernetes-validate cannot check: {line}"
                );
            }
            assert!(
                text.contains("passed for resource deployment/sgdrift"),
                "{name}: the Deployment was not validated for {version}:\n{text}"
            );
        }
    }
}

#[test]
fn every_value_set_renders_objects_that_fit_together() {
    for (name, values) in value_sets() {
        let dir = tempfile::tempdir().expect("temp dir");
        let rendered = render(name, values.as_deref(), dir.path());
        let out = run(Command::new(python()).arg(repo().join("tests/ops/check_helm.py")).arg(repo()).arg(&rendered));
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && text.contains("; 0 problem(s)"),
            "{name}: check_helm.py said:\n{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn the_config_every_value_set_renders_passes_sgdrift_config_check() {
    for (name, values) in value_sets() {
        let dir = tempfile::tempdir().expect("temp dir");
        let rendered = render(name, values.as_deref(), dir.path());
        let mounted = dir.path().join("etc-sgdrift");
        run_ok(
            Command::new(python())
                .arg(repo().join("tests/ops/check_helm.py"))
                .arg(repo())
                .arg(&rendered)
                .arg("--extract")
                .arg(&mounted),
        );
        let config = mounted.join("sgdrift.toml");
        place_secrets(&config, &dir.path().join("secrets"));
        let out = run(Command::new(env!("CARGO_BIN_EXE_sgdrift"))
            .args(["config", "check", "--config"])
            .arg(&config)
            .env_remove("SGDRIFT_CONFIG"));
        assert!(
            out.status.success(),
            "{name}: sgdrift config check rejects the rendered config:\n{}\n--- sgdrift.toml\n{}",
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(&config).unwrap_or_default()
        );
    }
}

/// Points the config's secret files at `secrets` (as the pod's Secret mounts would hold them)
/// and writes a URL into each, so the config check finds what the pod would.
fn place_secrets(config: &Path, secrets: &Path) {
    let text = std::fs::read_to_string(config).expect("read the rendered config");
    let mut rest = text.as_str();
    while let Some(start) = rest.find(SECRETS_MOUNT) {
        let tail = &rest[start + SECRETS_MOUNT.len()..];
        let end = tail.find('"').expect("a secret path ends with its string");
        let file = secrets.join(&tail[..end]);
        std::fs::create_dir_all(file.parent().expect("a secret file has a directory"))
            .expect("create the secret directory");
        std::fs::write(&file, "https://hooks.slack.com/services/T0000/B0000/XXXXXXXX\n")
            .expect("write the secret file");
        rest = &tail[end..];
    }
    let moved = text.replace(SECRETS_MOUNT, &format!("{}/", secrets.display()));
    std::fs::write(config, moved).expect("rewrite the rendered config");
}

#[test]
fn the_rule_file_in_the_chart_is_the_one_promtool_tests() {
    assert_eq!(
        read("deploy/helm/sgdrift/files/sgdrift-alerts.yaml"),
        read("deploy/prometheus/sgdrift-alerts.yaml"),
        "the chart's copy of the alert rules differs: run scripts/gen-prometheusrule"
    );
}

#[test]
fn irsa_annotates_the_service_account_and_pod_identity_opens_the_agent_instead() {
    let [_, (_, irsa), (_, pod_identity)] = <[_; 3]>::try_from(value_sets()).expect("three sets");
    let irsa = String::from_utf8_lossy(&run_ok(&mut helm_template(irsa.as_deref(), &[])).stdout).into_owned();
    let pod_identity =
        String::from_utf8_lossy(&run_ok(&mut helm_template(pod_identity.as_deref(), &[])).stdout).into_owned();
    assert!(irsa.contains("eks.amazonaws.com/role-arn: arn:aws:iam::111122223333:role/sgdrift"));
    assert!(!irsa.contains("169.254.170.23/32"), "IRSA needs no Pod Identity agent egress");
    assert!(!pod_identity.contains("eks.amazonaws.com/role-arn"), "Pod Identity puts no role on the ServiceAccount");
    assert!(pod_identity.contains("cidr: 169.254.170.23/32"), "Pod Identity must reach the agent");
    assert!(pod_identity.contains("emptyDir:"), "persistence.enabled=false uses an emptyDir");
}

#[test]
fn values_that_cannot_work_are_refused_naming_the_key() {
    let cases: [(&[&str], &str); 5] = [
        (&["--set", "aws.identity=irsa"], "aws.roleArn"),
        (&["--set", "aws.identity=kiam"], "aws.identity"),
        (&["--set", "config.server.listen=127.0.0.1:1"], "config.server.listen"),
        (&["--set", "replicas=2"], "replicas"),
        (&["--set", "slack[0].min_severity=high"], "slack.0"),
    ];
    for (args, key) in cases {
        let out = run(&mut helm_template(None, args));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} was accepted");
        assert!(stderr.contains(key), "{args:?}: the error does not name {key}:\n{stderr}");
    }
}
