"""Checks deploy/kubernetes for tests/ops_kubernetes.rs.

Every manifest is validated with kubernetes-validate (strict) against the Kubernetes versions
below; the Prometheus Operator kinds, which it has no schema for, get a check of their required
fields here. Then the objects are checked against each other (selectors, ports, names, mounts)
and against the daemon's config in the ConfigMap, and the PrometheusRule against the rule file.

Usage: check_k8s.py REPO [--extract DIR]
  --extract DIR  also write the ConfigMap's files under DIR as the pod sees them below their
                 mount path (DIR/sgdrift.toml, DIR/baselines/site.toml), for the Rust side.
Prints one line per problem and exits 1 if there is any.
"""

import os
import re
import sys
import tomllib

import kubernetes_validate
import yaml

# The oldest and a recent Kubernetes minor shipped by kubernetes-validate (EKS standard support).
VERSIONS = ["1.30.0", "1.35.0"]
NAMESPACE = "sgdrift"
CRD_KINDS = {("monitoring.coreos.com/v1", "ServiceMonitor"), ("monitoring.coreos.com/v1", "PrometheusRule")}
# Prometheus duration: what the operator's CRDs accept for interval, scrapeTimeout and for.
DURATION = re.compile(r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$")
SERVICEMONITOR_SPEC_KEYS = {
    "attachMetadata", "bodySizeLimit", "endpoints", "fallbackScrapeProtocol", "jobLabel",
    "keepDroppedTargets", "labelLimit", "labelNameLengthLimit", "labelValueLengthLimit",
    "namespaceSelector", "podTargetLabels", "sampleLimit", "scrapeClass", "scrapeProtocols",
    "selector", "selectorMechanism", "targetLabels", "targetLimit",
}
ENDPOINT_KEYS = {
    "authorization", "basicAuth", "bearerTokenFile", "bearerTokenSecret", "enableHttp2",
    "filterRunning", "followRedirects", "honorLabels", "honorTimestamps", "interval",
    "metricRelabelings", "noProxy", "oauth2", "params", "path", "port", "proxyConnectHeader",
    "proxyFromEnvironment", "proxyUrl", "relabelings", "scheme", "scrapeTimeout", "targetPort",
    "tlsConfig", "trackTimestampsStaleness",
}
RULE_KEYS = {"alert", "record", "expr", "for", "keep_firing_for", "labels", "annotations"}
GROUP_KEYS = {"name", "interval", "rules", "limit", "partial_response_strategy", "query_offset", "labels"}

problems = []


def problem(where, message):
    problems.append(f"{where}: {message}")


def seconds(duration):
    total = 0
    for n, unit in re.findall(r"([0-9]+)(ms|y|w|d|h|m|s)", duration):
        total += int(n) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}[unit]
    return total


def check_duration(where, value):
    if not isinstance(value, str) or not DURATION.match(value) or value == "":
        problem(where, f"`{value}` is not a Prometheus duration such as 30s or 5m")


def check_string_map(where, value):
    if value is None:
        return
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        problem(where, "must be a map of strings to strings")


def check_servicemonitor(where, doc):
    spec = doc.get("spec") or {}
    for key in set(spec) - SERVICEMONITOR_SPEC_KEYS:
        problem(where, f"spec.{key} is not a ServiceMonitor field")
    selector = spec.get("selector")
    if not isinstance(selector, dict) or not (selector.get("matchLabels") or selector.get("matchExpressions")):
        problem(where, "spec.selector needs matchLabels or matchExpressions")
    endpoints = spec.get("endpoints")
    if not isinstance(endpoints, list) or not endpoints:
        problem(where, "spec.endpoints must list at least one endpoint")
        return
    for i, ep in enumerate(endpoints):
        at = f"{where} spec.endpoints[{i}]"
        for key in set(ep) - ENDPOINT_KEYS:
            problem(at, f"{key} is not an endpoint field")
        if "port" not in ep and "targetPort" not in ep:
            problem(at, "needs port (a Service port name) or targetPort")
        if not str(ep.get("path", "/metrics")).startswith("/"):
            problem(at, "path must start with /")
        for key in ("interval", "scrapeTimeout"):
            if key in ep:
                check_duration(f"{at}.{key}", ep[key])
        if "interval" in ep and "scrapeTimeout" in ep and seconds(ep["scrapeTimeout"]) > seconds(ep["interval"]):
            problem(at, "scrapeTimeout must not exceed interval")


def check_rule_groups(where, groups):
    if not isinstance(groups, list) or not groups:
        problem(where, "groups must list at least one group")
        return
    names = set()
    for g, group in enumerate(groups):
        at = f"{where} groups[{g}]"
        for key in set(group) - GROUP_KEYS:
            problem(at, f"{key} is not a rule group field")
        if not group.get("name"):
            problem(at, "needs a name")
        elif group["name"] in names:
            problem(at, f"group name {group['name']} is used twice")
        names.add(group.get("name"))
        rules = group.get("rules")
        if not isinstance(rules, list) or not rules:
            problem(at, "rules must list at least one rule")
            continue
        for r, rule in enumerate(rules):
            rat = f"{at}.rules[{r}]"
            for key in set(rule) - RULE_KEYS:
                problem(rat, f"{key} is not a rule field")
            if ("alert" in rule) == ("record" in rule):
                problem(rat, "needs exactly one of alert or record")
            if not isinstance(rule.get("expr"), str) or not rule["expr"].strip():
                problem(rat, "needs an expr")
            for key in ("for", "keep_firing_for"):
                if key in rule:
                    check_duration(f"{rat}.{key}", rule[key])
            check_string_map(f"{rat}.labels", rule.get("labels"))
            check_string_map(f"{rat}.annotations", rule.get("annotations"))


def check_prometheusrule(where, doc, rule_file):
    spec = doc.get("spec") or {}
    for key in set(spec) - {"groups"}:
        problem(where, f"spec.{key} is not a PrometheusRule field")
    check_rule_groups(where, spec.get("groups"))
    if spec != rule_file:
        problem(where, "spec differs from deploy/prometheus/sgdrift-alerts.yaml: run scripts/gen-prometheusrule")


def selects(selector, labels):
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def main():
    repo = sys.argv[1]
    extract = sys.argv[sys.argv.index("--extract") + 1] if "--extract" in sys.argv else None
    kdir = os.path.join(repo, "deploy", "kubernetes")
    with open(os.path.join(repo, "deploy", "prometheus", "sgdrift-alerts.yaml")) as f:
        rule_file = yaml.safe_load(f)

    with open(os.path.join(kdir, "kustomization.yaml")) as f:
        kustomization = yaml.safe_load(f)
    listed = kustomization.get("resources") or []
    present = sorted(n for n in os.listdir(kdir) if n.endswith((".yaml", ".yml")) and n != "kustomization.yaml")
    for name in sorted(set(present) - set(listed)):
        problem(name, "is not listed in kustomization.yaml resources")
    for name in sorted(set(listed) - set(present)):
        problem("kustomization.yaml", f"lists {name}, which does not exist")
    if kustomization.get("namespace") != NAMESPACE:
        problem("kustomization.yaml", f"namespace should be {NAMESPACE}")

    objects = {}
    for name in listed:
        path = os.path.join(kdir, name)
        if not os.path.exists(path):
            continue
        with open(path) as f:
            docs = [d for d in yaml.safe_load_all(f) if d is not None]
        if not docs:
            problem(name, "holds no object")
        for doc in docs:
            kind, api = doc.get("kind"), doc.get("apiVersion")
            meta = doc.get("metadata") or {}
            where = f"{name} {kind}/{meta.get('name')}"
            if (api, kind) in CRD_KINDS:
                if not meta.get("name"):
                    problem(where, "metadata.name is required")
                if kind == "ServiceMonitor":
                    check_servicemonitor(where, doc)
                else:
                    check_prometheusrule(where, doc, rule_file)
            else:
                for version in VERSIONS:
                    try:
                        kubernetes_validate.validate(doc, version, strict=True)
                    except kubernetes_validate.ValidationError as e:
                        problem(where, f"invalid for Kubernetes {version}: {'.'.join(map(str, e.path))}: {e.message}")
                    except kubernetes_validate.SchemaNotFoundError:
                        problem(where, f"{api} {kind} is neither a Kubernetes {version} kind nor one checked here")
            if kind != "Namespace" and meta.get("namespace") != NAMESPACE:
                problem(where, f"metadata.namespace should be {NAMESPACE}")
            if (meta.get("labels") or {}).get("app.kubernetes.io/name") != "sgdrift":
                problem(where, "lacks the label app.kubernetes.io/name: sgdrift")
            objects.setdefault(kind, {})[meta.get("name")] = doc

    check_references(objects, extract)

    for p in problems:
        print(p)
    print(f"checked {sum(len(v) for v in objects.values())} objects in {len(listed)} files; {len(problems)} problem(s)")
    return 1 if problems else 0


def check_references(objects, extract):
    deployments = list((objects.get("Deployment") or {}).values())
    if len(deployments) != 1:
        problem("deploy/kubernetes", "expected exactly one Deployment")
        return
    dep = deployments[0]
    where = f"Deployment/{dep['metadata']['name']}"
    pod = dep["spec"]["template"]
    pod_labels = pod["metadata"].get("labels") or {}
    pod_spec = pod["spec"]
    if not selects(dep["spec"]["selector"].get("matchLabels"), pod_labels):
        problem(where, "selector does not match the pod template labels")
    if dep["spec"].get("replicas", 1) != 1:
        problem(where, "must run one replica: more would double AWS calls and notifications")

    sa = pod_spec.get("serviceAccountName")
    if sa not in (objects.get("ServiceAccount") or {}):
        problem(where, f"serviceAccountName {sa} is not defined")

    psc = pod_spec.get("securityContext") or {}
    containers = pod_spec.get("containers") or []
    if len(containers) != 1:
        problem(where, "expected one container")
        return
    c = containers[0]
    csc = c.get("securityContext") or {}
    if not (csc.get("runAsNonRoot") or psc.get("runAsNonRoot")):
        problem(where, "runAsNonRoot must be true")
    if csc.get("runAsUser", psc.get("runAsUser")) in (None, 0):
        problem(where, "runAsUser must be a non-zero UID")
    if csc.get("readOnlyRootFilesystem") is not True:
        problem(where, "readOnlyRootFilesystem must be true")
    if csc.get("allowPrivilegeEscalation") is not False:
        problem(where, "allowPrivilegeEscalation must be false")
    if "ALL" not in ((csc.get("capabilities") or {}).get("drop") or []):
        problem(where, "capabilities.drop must contain ALL")
    seccomp = (csc.get("seccompProfile") or psc.get("seccompProfile") or {}).get("type")
    if seccomp != "RuntimeDefault":
        problem(where, "seccompProfile must be RuntimeDefault")
    res = c.get("resources") or {}
    for part in ("requests", "limits"):
        for r in ("cpu", "memory"):
            if r not in (res.get(part) or {}):
                problem(where, f"resources.{part}.{r} is not set")

    ports = {p.get("name"): p["containerPort"] for p in c.get("ports") or []}
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        get = (c.get(probe) or {}).get("httpGet") or {}
        if get.get("path") != path:
            problem(where, f"{probe} must GET {path}")
        port = ports.get(get.get("port"), get.get("port"))
        if port != 9787:
            problem(where, f"{probe} must probe port 9787, not {port}")

    volumes = {v["name"]: v for v in pod_spec.get("volumes") or []}
    mounts = {m["name"]: m for m in c.get("volumeMounts") or []}
    for name in sorted(set(volumes) ^ set(mounts)):
        problem(where, f"volume {name} is declared or mounted but not both")
    configmaps = objects.get("ConfigMap") or {}
    for v in volumes.values():
        if "configMap" in v:
            cm = configmaps.get(v["configMap"]["name"])
            if cm is None:
                problem(where, f"volume {v['name']} names ConfigMap {v['configMap']['name']}, which is not defined")
                continue
            for item in v["configMap"].get("items") or []:
                if item["key"] not in (cm.get("data") or {}):
                    problem(where, f"volume {v['name']} mounts key {item['key']}, which the ConfigMap lacks")
        if "persistentVolumeClaim" in v:
            claim = v["persistentVolumeClaim"]["claimName"]
            if claim not in (objects.get("PersistentVolumeClaim") or {}):
                problem(where, f"volume {v['name']} claims {claim}, which is not defined")

    # The daemon's own config, as mounted: its port, state file and secrets must fit the pod.
    config_volume = next((v for v in volumes.values() if "configMap" in v), None)
    if config_volume is None:
        problem(where, "mounts no ConfigMap with the daemon's config")
        return
    cm = configmaps.get(config_volume["configMap"]["name"]) or {}
    mount_path = mounts.get(config_volume["name"], {}).get("mountPath", "")
    files = {i["path"]: cm.get("data", {}).get(i["key"], "") for i in config_volume["configMap"].get("items") or []}
    arg_config = c.get("args", [])[c.get("args", []).index("--config") + 1] if "--config" in c.get("args", []) else None
    if arg_config is None or os.path.dirname(arg_config) != mount_path.rstrip("/"):
        problem(where, f"--config {arg_config} is not in the config mount {mount_path}")
        return
    text = files.get(os.path.basename(arg_config))
    if text is None:
        problem(where, f"the config mount has no {os.path.basename(arg_config)}")
        return
    try:
        config = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        problem("ConfigMap sgdrift.toml", str(e))
        return
    listen = (config.get("server") or {}).get("listen", "0.0.0.0:9787")
    if not listen.startswith("0.0.0.0:") or int(listen.rsplit(":", 1)[1]) != 9787:
        problem("ConfigMap sgdrift.toml", f"server.listen {listen} should be 0.0.0.0:9787, the container port")
    state_dir = os.path.dirname((config.get("alerts") or {}).get("state_file", "/var/lib/sgdrift/state.json"))
    writable = [m for m in mounts.values() if m["mountPath"].rstrip("/") == state_dir and not m.get("readOnly")]
    if not writable:
        problem(where, f"nothing writable is mounted at {state_dir}, the state file's directory")
    elif not any(k in volumes[writable[0]["name"]] for k in ("persistentVolumeClaim", "emptyDir")):
        problem(where, f"the state volume at {state_dir} must be a PVC or an emptyDir")
    for target in config.get("targets") or []:
        baseline = target.get("baseline", "")
        if (baseline.endswith(".toml") or "/" in baseline) and baseline not in files:
            problem("ConfigMap sgdrift.toml", f"baseline {baseline} is not mounted beside the config")
    for sink in (config.get("alerts") or {}).get("slack") or []:
        path = sink.get("webhook_url_file")
        if path and not any(path.startswith(m["mountPath"].rstrip("/") + "/") for m in mounts.values()):
            problem("ConfigMap sgdrift.toml", f"webhook_url_file {path} is on no mounted volume")

    for svc in (objects.get("Service") or {}).values():
        swhere = f"Service/{svc['metadata']['name']}"
        if not selects(svc["spec"].get("selector"), pod_labels):
            problem(swhere, "selector does not match the Deployment's pods")
        for p in svc["spec"].get("ports") or []:
            target = p.get("targetPort")
            if (ports.get(target, target)) != 9787:
                problem(swhere, f"port {p.get('name')} does not reach the container port 9787")
    services = list((objects.get("Service") or {}).values())
    for sm in (objects.get("ServiceMonitor") or {}).values():
        mwhere = f"ServiceMonitor/{sm['metadata']['name']}"
        matched = [s for s in services if selects(sm["spec"]["selector"].get("matchLabels"), s["metadata"].get("labels") or {})]
        if not matched:
            problem(mwhere, "selects no Service")
        names = (sm["spec"].get("namespaceSelector") or {}).get("matchNames") or []
        if names and NAMESPACE not in names:
            problem(mwhere, f"namespaceSelector does not include {NAMESPACE}")
        for ep in sm["spec"]["endpoints"]:
            if ep.get("port") and not any(ep["port"] == p.get("name") for s in matched for p in s["spec"]["ports"]):
                problem(mwhere, f"endpoint port {ep['port']} is not a port name of the selected Service")
        if matched and matched[0]["metadata"]["name"] != "sgdrift":
            problem(mwhere, "the job label (the Service name) must be sgdrift, as SgDriftDown expects")

    if extract:
        for path, text in files.items():
            out = os.path.join(extract, path)
            os.makedirs(os.path.dirname(out), exist_ok=True)
            with open(out, "w") as f:
                f.write(text)


if __name__ == "__main__":
    sys.exit(main())
