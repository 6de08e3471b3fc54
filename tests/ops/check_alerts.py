"""Checks deploy/prometheus/sgdrift-alerts.yaml for tests/ops_prometheus_rules.rs.

Every alert carries a `severity` label (critical, warning or info) and the annotations
`summary`, `description` and `runbook_url`; the runbook URL ends in the anchor of a section of
docs/runbooks.md named after the alert; the promtool tests beside the rules show every alert
both firing and staying quiet.

Usage: check_alerts.py REPO. Prints one line per problem and exits 1 if there is any.
"""

import os
import re
import sys

import yaml

SEVERITIES = {"critical", "warning", "info"}


def github_anchor(heading):
    """The anchor GitHub gives a Markdown heading."""
    slug = heading.strip().lower()
    slug = re.sub(r"[^\w\- ]", "", slug)
    return slug.replace(" ", "-")


def main():
    repo = sys.argv[1]
    problems = []
    rules_path = os.path.join(repo, "deploy", "prometheus", "sgdrift-alerts.yaml")
    tests_path = os.path.join(repo, "deploy", "prometheus", "sgdrift-alerts.test.yaml")
    with open(rules_path) as f:
        rules = yaml.safe_load(f)
    with open(tests_path) as f:
        tests = yaml.safe_load(f)
    with open(os.path.join(repo, "docs", "runbooks.md")) as f:
        headings = {github_anchor(m.group(1)) for m in re.finditer(r"^#{1,6} (.+)$", f.read(), re.M)}

    alerts = [r for g in rules["groups"] for r in g["rules"] if "alert" in r]
    if not alerts:
        problems.append("sgdrift-alerts.yaml defines no alert")
    names = [a["alert"] for a in alerts]
    for name in {n for n in names if names.count(n) > 1}:
        problems.append(f"{name}: defined more than once")

    firing, quiet = set(), set()
    for case in tests.get("tests") or []:
        for t in case.get("alert_rule_test") or []:
            (firing if t.get("exp_alerts") else quiet).add(t["alertname"])

    for a in alerts:
        name = a["alert"]
        if not re.fullmatch(r"SgDrift[A-Z][A-Za-z]+", name):
            problems.append(f"{name}: alert names are CamelCase and start with SgDrift")
        severity = (a.get("labels") or {}).get("severity")
        if severity not in SEVERITIES:
            problems.append(f"{name}: label severity is {severity!r}, not one of {sorted(SEVERITIES)}")
        ann = a.get("annotations") or {}
        for key in ("summary", "description", "runbook_url"):
            if not str(ann.get(key, "")).strip():
                problems.append(f"{name}: annotation {key} is missing")
        if "{{" in ann.get("summary", ""):
            problems.append(f"{name}: summary must not be templated (it is shared by every instance of the alert)")
        url = ann.get("runbook_url", "")
        if not url.startswith("https://") or "#" not in url:
            problems.append(f"{name}: runbook_url {url!r} is not an https URL with an anchor")
        else:
            page, anchor = url.rsplit("#", 1)
            if not page.endswith("/docs/runbooks.md"):
                problems.append(f"{name}: runbook_url {url} does not point at docs/runbooks.md")
            if anchor != name.lower():
                problems.append(f"{name}: runbook_url anchor #{anchor} should be #{name.lower()}")
            if anchor not in headings:
                problems.append(f"{name}: docs/runbooks.md has no section with anchor #{anchor}")
        if name not in firing:
            problems.append(f"{name}: no promtool test shows it firing")
        if name not in quiet:
            problems.append(f"{name}: no promtool test shows it staying quiet")

    for p in problems:
        print(p)
    print(f"checked {len(alerts)} alerts; {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
