"""The Prometheus alert rules (docs/operations/alerts.yml): valid, unit-tested with promtool
(Debian's `prometheus` package; `make test` installs it), each with its runbook section, and
written over series the hub really exports."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

OPERATIONS = Path(__file__).resolve().parent.parent / "docs" / "operations"
RULES = OPERATIONS / "alerts.yml"


def promtool(*args: str) -> subprocess.CompletedProcess:
    binary = shutil.which("promtool")
    assert binary, "promtool is missing: run `make test` (it installs Debian's prometheus package)"
    return subprocess.run([binary, *args], cwd=OPERATIONS, capture_output=True, text=True, timeout=120)


def rules() -> list[dict]:
    return [rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]


def series_used(expr: str) -> set[str]:
    """The hub's metric names a PromQL expression reads (also tests/test_prometheus_scrape.py)."""
    return set(re.findall(r"\b(synchub_\w+)", expr))


def test_the_rules_are_valid_and_their_unit_tests_pass():
    checked = promtool("check", "rules", "alerts.yml")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = promtool("test", "rules", "alerts_test.yml")
    assert tested.returncode == 0 and "SUCCESS" in tested.stdout, tested.stdout + tested.stderr


def test_every_alert_is_tested_and_has_a_runbook_section():
    tested = set(re.findall(r"alertname: (\w+)", (OPERATIONS / "alerts_test.yml").read_text()))
    runbook = (OPERATIONS / "runbook.md").read_text()
    for rule in rules():
        assert rule["alert"] in tested, rule["alert"]
        assert f"## {rule['alert']}\n" in runbook, rule["alert"]
        assert rule["annotations"]["runbook"].endswith("#" + rule["alert"].lower())


@pytest.mark.django_db
def test_the_rules_use_series_the_hub_exports():
    from sync.metrics import render_metrics

    exported = render_metrics().decode()
    names = set(re.findall(r"^# TYPE (\w+) (\w+)", exported, re.M))
    series = {name for name, _ in names} | {f"{name}_total" for name, kind in names if kind == "counter"}
    series |= {f"{name}_count" for name, kind in names if kind == "histogram"}
    for rule in rules():
        used = series_used(rule["expr"])
        assert used and used <= series, (rule["alert"], used - series)


@pytest.mark.django_db
def test_the_grafana_dashboard_charts_series_the_hub_exports():
    import json

    from sync.metrics import render_metrics

    dashboard = json.loads((OPERATIONS / "grafana-dashboard.json").read_text())
    exported = render_metrics().decode()
    names = set(re.findall(r"^# TYPE (\w+) (\w+)", exported, re.M))
    series = {name for name, _ in names} | {f"{name}_total" for name, kind in names if kind == "counter"}
    series |= {f"{name}_{part}" for name, kind in names if kind == "histogram" for part in ("count", "bucket", "sum")}
    panels = dashboard["panels"]
    assert len({panel["id"] for panel in panels}) == len(panels) >= 10
    for panel in panels:
        for target in panel["targets"]:
            used = set(re.findall(r"\b(synchub_\w+)", target["expr"]))
            assert used and used <= series, (panel["title"], used - series)
