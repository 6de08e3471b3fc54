"""Checks the objects `helm template` rendered from deploy/helm/sgdrift, for tests/ops_helm.rs.

The Kubernetes kinds are validated by the kubernetes-validate CLI in the Rust test; this adds
what it cannot see, with the checks of check_k8s.py: the Prometheus Operator kinds' fields, the
PrometheusRule against the rule file, the labels and namespace of every object, and the objects
against each other and against the daemon's config (selectors, ports, mounts, secrets, probes,
hardening). Render with release name and namespace `sgdrift`.

Usage: check_helm.py REPO RENDERED.yaml [--extract DIR]
  --extract DIR  write the ConfigMap's files under DIR as the pod sees them (DIR/sgdrift.toml,
                 DIR/baselines/<name>.toml), for `sgdrift config check`.
Prints one line per problem, then a summary, and exits 1 if there is any.
"""

import os
import sys

import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import check_k8s  # noqa: E402  (the checks shared with deploy/kubernetes)


def main():
    repo, rendered = sys.argv[1], sys.argv[2]
    extract = sys.argv[sys.argv.index("--extract") + 1] if "--extract" in sys.argv else None
    with open(os.path.join(repo, "deploy", "prometheus", "sgdrift-alerts.yaml")) as f:
        rule_file = yaml.safe_load(f)
    with open(rendered) as f:
        docs = [d for d in yaml.safe_load_all(f) if d is not None]
    if not docs:
        check_k8s.problem(rendered, "holds no object")

    objects = {}
    for doc in docs:
        kind, api = doc.get("kind"), doc.get("apiVersion")
        meta = doc.get("metadata") or {}
        where = f"{kind}/{meta.get('name')}"
        if (api, kind) in check_k8s.CRD_KINDS:
            if kind == "ServiceMonitor":
                check_k8s.check_servicemonitor(where, doc)
            else:
                check_k8s.check_prometheusrule(where, doc, rule_file)
        if meta.get("namespace") != check_k8s.NAMESPACE:
            check_k8s.problem(where, f"metadata.namespace should be the release namespace {check_k8s.NAMESPACE}")
        labels = meta.get("labels") or {}
        for key in ("app.kubernetes.io/name", "app.kubernetes.io/instance", "helm.sh/chart"):
            if not labels.get(key):
                check_k8s.problem(where, f"lacks the label {key}")
        if meta.get("name") in objects.get(kind, {}):
            check_k8s.problem(where, "is rendered twice")
        objects.setdefault(kind, {})[meta.get("name")] = doc

    check_k8s.check_references(objects, extract)
    for p in check_k8s.problems:
        print(p)
    kinds = ", ".join(sorted(objects))
    print(f"checked {len(docs)} objects ({kinds}); {len(check_k8s.problems)} problem(s)")
    return 1 if check_k8s.problems else 0


if __name__ == "__main__":
    sys.exit(main())
