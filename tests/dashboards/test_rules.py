"""The Prometheus rules (deploy/helm/perflab/rules/*.yml): valid, lint-clean, and unit-tested with
`promtool test rules` (dashboards/tests/*.yml)."""

from __future__ import annotations

import shutil
import subprocess

import pytest
import yaml

from dashboards.queries import PACKAGE_DIR, RULES_DIR, load_rules

TESTS_DIR = PACKAGE_DIR / "tests"
RULE_FILES = sorted(RULES_DIR.glob("*.yml"))
TEST_FILES = sorted(TESTS_DIR.glob("*.yml"))

pytestmark = pytest.mark.skipif(
    not shutil.which("promtool"), reason="promtool not installed (scripts/install-infra.sh)"
)


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["promtool", *args], capture_output=True, text=True, timeout=120, cwd=PACKAGE_DIR
    )


def test_rules_check_and_lint_clean() -> None:
    result = promtool("check", "rules", *map(str, RULE_FILES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_rules_unit_tests_pass() -> None:
    assert TEST_FILES
    result = promtool("test", "rules", *map(str, TEST_FILES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(TEST_FILES)


def test_every_alert_and_rules_file_is_unit_tested() -> None:
    tested_files = set()
    alertnames = set()
    for path in TEST_FILES:
        spec = yaml.safe_load(path.read_text())
        tested_files |= {(path.parent / f).resolve() for f in spec["rule_files"]}
        for case in spec["tests"]:
            alertnames |= {t["alertname"] for t in case.get("alert_rule_test", [])}
    assert {p.resolve() for p in RULE_FILES} <= tested_files
    alerts = {r.name for r in load_rules() if r.kind == "alert"}
    assert alerts - alertnames == set(), "alerts without a promtool test"


def test_rule_files_are_prometheusrule_specs() -> None:
    """The chart ships each file as a PrometheusRule whose spec is the file: only `groups`, and
    unique group names across files (the operator merges them into one Prometheus)."""
    names = []
    for path in RULE_FILES:
        spec = yaml.safe_load(path.read_text())
        assert set(spec) == {"groups"}, path.name
        names += [g["name"] for g in spec["groups"]]
    assert len(names) == len(set(names))


def test_the_alerts_the_issue_asks_for_exist() -> None:
    alerts = {r.name for r in load_rules() if r.kind == "alert"}
    assert {
        "SLOErrorBudgetBurnFast",
        "SLOErrorBudgetBurnSlow",
        "KafkaConsumerLagGrowing",
        "HPAPinnedAtMaxReplicas",
        "PerflabTargetDown",
        "DeadLetterTopicReceivingMessages",
    } <= alerts
