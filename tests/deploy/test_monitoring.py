"""Alert rules and dashboard: promtool (when installed) or an equivalent parse; metric names real.

With promtool on PATH (Debian's ``prometheus`` package) the rules are checked and unit-tested
by it (``deploy/prometheus/alerts_test.yml``), the compose Prometheus config too, and every
dashboard query is parsed by it as a recording rule. Without it, the same files go through the
structural parse of ``tests.deploy.promql``. Either way every ``streamal_*`` metric named in the
rules and the dashboard must exist in streamal's registry with the labels used on it.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from streamal.metrics import ROUTES
from tests.deploy import DEPLOY, ROOT
from tests.deploy.promql import (
    Selector,
    exposed,
    expr_errors,
    rule_file_errors,
    selectors,
    substitute,
)

ALERTS = DEPLOY / "prometheus" / "alerts.yml"
ALERT_TESTS = DEPLOY / "prometheus" / "alerts_test.yml"
PROMETHEUS = DEPLOY / "prometheus" / "prometheus.yml"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "streamal.json"
PROMTOOL = shutil.which("promtool")

# Metrics from elsewhere that the rules and the dashboard may read.
EXTERNAL = {
    "up": {"job", "instance"},  # Prometheus itself
    "kafka_consumergroup_lag": {"consumergroup", "topic", "partition"},  # kafka_exporter
}
TARGET_LABELS = {"job", "instance", "namespace", "pod", "service", "container", "endpoint"}
# The alert the issue asks for -> the rule that implements it.
REQUIRED_ALERTS = {
    "consumer lag rising": "StreamalConsumerLagRising",
    "label rate over budget": "StreamalLabelRateOverBudget",
    "dead-letter rate": "StreamalDeadLetters",
    "drift detected": "StreamalDriftDetected",
    "training failing": "StreamalTrainingFailing",
    "no new model for too long": "StreamalNoNewModel",
    "daemon down": "StreamalDown",
}


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def rules() -> list[dict[str, Any]]:
    return [rule for group in load(ALERTS)["groups"] for rule in group["rules"]]


def dashboard_queries() -> list[tuple[str, str]]:
    """(panel title, expr) of every query of the dashboard, nested rows included."""
    found = []

    def walk(panels: list[dict[str, Any]]) -> None:
        for panel in panels:
            found.extend((panel["title"], t["expr"]) for t in panel.get("targets", []))
            walk(panel.get("panels", []))

    walk(json.loads(DASHBOARD.read_text(encoding="utf-8"))["panels"])
    return found


def promtool(*args: str | Path) -> str:
    assert PROMTOOL is not None
    done = subprocess.run(
        [PROMTOOL, *map(str, args)], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert done.returncode == 0, f"promtool {' '.join(map(str, args))}:\n{done.stdout}{done.stderr}"
    return done.stdout


# -- the rules ----------------------------------------------------------------------------


def test_every_alert_the_issue_asks_for_is_there_with_a_severity_and_a_summary() -> None:
    by_name = {rule.get("alert"): rule for rule in rules()}
    for wanted, name in REQUIRED_ALERTS.items():
        assert name in by_name, f"no alert for {wanted}"
    for rule in rules():
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]


def test_the_alert_rules_pass_promtool_or_the_equivalent_parse() -> None:
    assert rule_file_errors(load(ALERTS)) == []
    if PROMTOOL:
        assert "SUCCESS" in promtool("check", "rules", ALERTS)
        assert "SUCCESS" in promtool("test", "rules", ALERT_TESTS)
        assert "SUCCESS" in promtool("check", "config", "--syntax-only", PROMETHEUS)


def test_every_alert_has_a_unit_test_where_it_fires() -> None:
    cases = load(ALERT_TESTS)
    assert cases["rule_files"] == [ALERTS.name]
    fired = {
        check["alertname"]
        for test in cases["tests"]
        for check in test.get("alert_rule_test", [])
        if check.get("exp_alerts")
    }
    quiet = {
        check["alertname"]
        for test in cases["tests"]
        for check in test.get("alert_rule_test", [])
        if not check.get("exp_alerts")
    }
    names = {rule["alert"] for rule in rules()}
    assert names - fired == set(), "alerts without a case where they fire"
    assert names - quiet == set(), "alerts without a case where they stay quiet"


def one_group(*rules: dict[str, Any]) -> dict[str, Any]:
    return {"groups": [{"name": "g", "rules": list(rules)}]}


@pytest.mark.parametrize(
    ("broken", "error"),
    [
        (one_group({"alert": "A", "expr": ""}), "expr must be"),
        (one_group({"alert": "A", "expr": "sum(x"}), "unbalanced"),
        (one_group({"alert": "A", "expr": "x", "for": "5 min"}), "bad for"),
        (one_group({"expr": "x"}), "exactly one of"),
        (one_group({"alert": "A", "expr": "x", "labls": {}}), "unknown keys"),
        (one_group({"alert": "A", "expr": 'x{a="b}'}), "unclosed quote"),
        (one_group({"alert": "A", "expr": "x", "labels": {"a": 1}}), "labels must"),
        (one_group({"alert": "A", "expr": "x"}, {"alert": "A", "expr": "y"}), "duplicate alert"),
        (one_group({"alert": "A", "expr": "x", "annotations": {"s": "{{ $value"}}), "template"),
        (one_group(), "needs rules"),
        ({"rules": []}, "list of groups"),
    ],
)
def test_the_fallback_parse_rejects_broken_rule_files(broken: dict[str, Any], error: str) -> None:
    errors = rule_file_errors(broken)
    assert errors and any(error in e for e in errors), errors


def test_the_kubernetes_prometheus_rule_holds_the_same_groups() -> None:
    rule = load(DEPLOY / "kubernetes" / "prometheusrule.yaml")
    assert rule["kind"] == "PrometheusRule"
    assert rule["spec"]["groups"] == load(ALERTS)["groups"]


# -- the dashboard ------------------------------------------------------------------------


def test_the_dashboard_is_grafana_json_with_a_datasource_variable_and_unique_ids() -> None:
    board = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert board["uid"] == "streamal" and board["title"]
    [variable] = [v for v in board["templating"]["list"] if v["type"] == "datasource"]
    assert variable["query"] == "prometheus"
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids))
    for panel in board["panels"]:
        assert set(panel["gridPos"]) == {"h", "w", "x", "y"}
        assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24
        if panel["type"] != "row":
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
            assert panel["targets"] and panel["description"]
            refs = [t["refId"] for t in panel["targets"]]
            assert len(refs) == len(set(refs))


def test_every_dashboard_query_parses(tmp_path: Path) -> None:
    queries = dashboard_queries()
    assert queries
    for title, expr in queries:
        assert expr_errors(expr) == [], title
    if PROMTOOL:  # promtool parses them for real, as recording rules
        records = [
            {"record": f"dashboard:query_{n}", "expr": substitute(expr)}
            for n, (_, expr) in enumerate(queries)
        ]
        path = tmp_path / "dashboard-rules.yml"
        path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": records}]}))
        assert "SUCCESS" in promtool("check", "rules", path)


def test_the_dashboard_shows_every_metric_streamal_exports() -> None:
    shown = {s.metric for _, expr in dashboard_queries() for s in selectors(expr)}
    names = exposed()
    families = {names[name].family for name in shown if name in names}
    assert families == {e.family for e in names.values()}


# -- metric names: the cross-check ----------------------------------------------------------


def all_selectors() -> list[tuple[str, Selector]]:
    found = [(f"alert {rule['alert']}", s) for rule in rules() for s in selectors(rule["expr"])]
    found += [
        (f"panel {title!r}", s) for title, expr in dashboard_queries() for s in selectors(expr)
    ]
    return found


def trainer_outcomes() -> set[str]:
    """The outcomes the trainer counts: the first argument of each ``self._count(...)`` call."""
    source = (ROOT / "streamal" / "training" / "trainer.py").read_text(encoding="utf-8")
    return set(re.findall(r'self\._count\(\s*"(\w+)"', source))


def test_every_metric_in_the_rules_and_dashboard_exists_with_its_labels() -> None:
    names = exposed()
    label_values = {"route": set(ROUTES), "outcome": trainer_outcomes()}
    assert {"published", "rejected"} <= label_values["outcome"]
    problems = []
    for where, selector in all_selectors():
        if selector.metric.startswith("streamal_"):
            if selector.metric not in names:
                problems.append(f"{where}: {selector.metric} is not exported by streamal")
                continue
            allowed = names[selector.metric].labels | TARGET_LABELS
        elif selector.metric in EXTERNAL:
            allowed = EXTERNAL[selector.metric] | TARGET_LABELS
        else:
            problems.append(f"{where}: unknown metric {selector.metric}")
            continue
        for label, op, value in selector.matchers:
            if label not in allowed:
                problems.append(f"{where}: {selector.metric} has no label {label}")
            elif label in label_values and op in {"=", "!="} and value not in label_values[label]:
                problems.append(f"{where}: {label}={value!r} never occurs")
    assert problems == []


def test_the_cross_check_catches_a_misspelt_metric_or_label() -> None:
    names = exposed()
    assert "streamal_samples_total" in names and "streamal_samples" not in names
    assert "streamal_training_seconds_bucket" in names
    assert names["streamal_samples_total"].labels == {"route"}
    assert names["streamal_predict_seconds_bucket"].labels == {"le"}
    assert [s.metric for s in selectors("rate(streamal_sample_total[5m])")] == [
        "streamal_sample_total"
    ]
    assert "streamal_sample_total" not in names
