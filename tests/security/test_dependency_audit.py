"""`make audit` (scripts/audit.py): the pinned dependencies have no known vulnerability outside
the documented allow-list, and the verdict logic cannot be fooled by an audit that audited
nothing (pip-audit prints "No known vulnerabilities found" when it skipped every package).
Where pip-audit's services cannot be reached the audit runs on the offline database
(safety-db): the tests prove with it, for real, that a known vulnerable pin fails the audit."""

from pathlib import Path
from typing import Any

import pytest

from scripts import audit

ROOT = Path(__file__).resolve().parents[2]


def dep(name: str, *vulns: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "version": "1.0", "vulns": list(vulns)}


def vuln(vuln_id: str, *aliases: str) -> dict[str, Any]:
    return {"id": vuln_id, "aliases": list(aliases), "fix_versions": ["1.1"], "description": ""}


def skipped(name: str) -> dict[str, Any]:
    return {"name": name, "skip_reason": f"Dependency not found on PyPI: {name} (1.0)"}


def test_the_pinned_dependencies_have_no_known_vulnerability(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = audit.main([])
    output = capsys.readouterr().out
    if code == audit.UNAVAILABLE:
        pytest.skip(f"no vulnerability database reachable or installable: {output.strip()}")
    assert code == audit.OK, output


def test_a_known_vulnerable_pin_fails_the_offline_audit_unless_allow_listed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("Jinja2==2.10  # CVE-2020-28493 (ReDoS in urlize)\nsix==1.16.0\n")
    allow = tmp_path / "allow"
    allow.write_text("")
    args = ["--offline", "--requirements", str(requirements), "--allow-list", str(allow)]
    code = audit.main(args)
    output = capsys.readouterr().out
    assert code == audit.VULNERABLE, output
    assert "VULNERABLE  jinja2==2.10" in output and "CVE-2020-28493" in output
    assert "OFFLINE AUDIT" in output and "2 of 2 pinned packages audited: FAILED" in output
    allow.write_text("CVE-2020-28493  accepted on purpose by this test\n")
    assert audit.main(args) == audit.OK, capsys.readouterr().out


def test_a_known_vulnerability_fails_the_audit() -> None:
    report = {"dependencies": [dep("a"), dep("b", vuln("PYSEC-1", "CVE-1"))]}
    verdict = audit.judge(report, {})
    assert verdict.code == audit.VULNERABLE
    assert any("VULNERABLE" in line and "b==1.0" in line for line in verdict.lines)


def test_an_allow_listed_vulnerability_passes_by_id_or_alias() -> None:
    report = {"dependencies": [dep("a", vuln("PYSEC-1", "CVE-1")), dep("b", vuln("GHSA-2"))]}
    verdict = audit.judge(report, {"CVE-1": "not reachable", "GHSA-2": "dev tool only"})
    assert verdict.code == audit.OK, verdict.lines
    assert any("not reachable" in line for line in verdict.lines)


def test_a_stale_allow_list_entry_is_pointed_out() -> None:
    verdict = audit.judge({"dependencies": [dep("a")]}, {"GHSA-old": "fixed since"})
    assert verdict.code == audit.OK
    assert any("GHSA-old" in line and "remove" in line for line in verdict.lines)


def test_an_audit_that_audited_nothing_is_unavailable_not_a_pass() -> None:
    report = {"dependencies": [skipped("a"), skipped("b")]}
    assert audit.judge(report, {}).code == audit.UNAVAILABLE
    assert audit.judge({"dependencies": []}, {}).code == audit.UNAVAILABLE


def test_a_package_the_service_could_not_audit_fails_the_audit() -> None:
    verdict = audit.judge({"dependencies": [dep("a"), skipped("b")]}, {})
    assert verdict.code == audit.VULNERABLE
    assert any("NOT AUDITED" in line and "b" in line for line in verdict.lines)


def test_the_allow_list_needs_a_reason_per_entry(tmp_path: Path) -> None:
    good = tmp_path / "good"
    good.write_text("# comment\n\nGHSA-1  dev tool only # checked\nCVE-2\tnot reachable\n")
    assert audit.read_allow_list(good) == {"GHSA-1": "dev tool only", "CVE-2": "not reachable"}
    bad = tmp_path / "bad"
    bad.write_text("GHSA-1\n")
    with pytest.raises(ValueError, match="needs a reason"):
        audit.read_allow_list(bad)


def test_the_repository_allow_list_is_valid() -> None:
    audit.read_allow_list(ROOT / ".pip-audit-ignore")
