"""`make audit`: known vulnerabilities in the pinned dependencies (constraints.txt), found by
pip-audit against PyPI's vulnerability data (`--service osv` for OSV.dev).

When neither can be reached (a machine without general internet access, like the one the lab
is built on), the audit falls back to an offline database: PyUp's `safety-db` package from
PyPI, read by the `safety` tool, both pinned and installed into their own virtualenv in the
cache (~/.cache/perflab/). That database stopped at OFFLINE_DB_DATE: it knows no
vulnerability disclosed later, and the audit says so every time it uses it. `--offline`
goes straight to it.

Vulnerabilities accepted for now are listed in `.pip-audit-ignore`, one per line with the
reason. The audit ends with one of:

  0  no known vulnerability, apart from allow-listed ones
  1  known vulnerabilities (or packages the service could not audit): they are listed
  2  the audit failed for another reason (its output is shown)
  3  nothing could be audited: the vulnerability service is unreachable, or it knows none of
     the pinned versions (pip-audit itself would then report "No known vulnerabilities"),
     and the offline database could not be installed either

`--report FILE` judges an existing `pip-audit --format json` report instead of running it.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import venv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SAFETY_VERSION = "1.10.3"  # the last release that reads a local database without an account
OFFLINE_DB_VERSION = "2021.7.17"
OFFLINE_DB_DATE = "2021-07-01"  # the database's own timestamp ($meta)
CACHE = Path(os.environ.get("PERFLAB_CACHE", Path.home() / ".cache" / "perflab"))
_CVE = re.compile(r"CVE-\d{4}-\d{4,}")
OK, VULNERABLE, ERROR, UNAVAILABLE = 0, 1, 2, 3
_UNREACHABLE = re.compile(
    r"ConnectionError|Max retries exceeded|Name or service not known|Temporary failure in "
    r"name resolution|timed out|Connection refused|Network is unreachable"
)


@dataclass
class Verdict:
    code: int
    lines: list[str] = field(default_factory=list)


def read_allow_list(path: Path) -> dict[str, str]:
    """`ID reason...` per line; `#` starts a comment. A line without a reason is an error."""
    allowed: dict[str, str] = {}
    if not path.exists():
        return allowed
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        vuln_id, *reason = line.split(None, 1)
        if not reason:
            raise ValueError(f"{path.name}:{number}: {vuln_id} needs a reason after the id")
        allowed[vuln_id] = reason[0]
    return allowed


def judge(report: dict[str, Any], allowed: dict[str, str]) -> Verdict:
    """The verdict on a pip-audit JSON report, given the allow-list."""
    deps = report.get("dependencies", [])
    skipped = [d for d in deps if "skip_reason" in d]
    if not deps or len(skipped) == len(deps):
        sample = skipped[0]["skip_reason"] if skipped else "the report lists no dependency"
        return Verdict(
            UNAVAILABLE,
            [
                f"could not audit: the vulnerability service answered for none of the {len(deps)} "
                f"pinned packages (e.g. {sample!r})"
            ],
        )
    verdict = Verdict(OK)
    used: set[str] = set()
    for dep in deps:
        for vuln in dep.get("vulns", []):
            ids = [vuln["id"], *vuln.get("aliases", [])]
            accepted = next((i for i in ids if i in allowed), None)
            fixes = ", ".join(vuln.get("fix_versions", [])) or "no fix yet"
            where = f"{dep['name']}=={dep['version']}: {' / '.join(ids)} (fixed in: {fixes})"
            if accepted:
                used.add(accepted)
                verdict.lines.append(f"allowed  {where}: {allowed[accepted]}")
            else:
                verdict.code = VULNERABLE
                verdict.lines.append(f"VULNERABLE  {where}")
    for dep in skipped:
        verdict.code = VULNERABLE
        verdict.lines.append(f"NOT AUDITED  {dep['name']}: {dep['skip_reason']}")
    for stale in sorted(allowed.keys() - used):
        verdict.lines.append(f"note: {stale} is allow-listed but no longer found; remove it")
    audited = len(deps) - len(skipped)
    summary = "no known vulnerabilities" if verdict.code == OK else "FAILED"
    verdict.lines.append(f"{audited} of {len(deps)} pinned packages audited: {summary}")
    return verdict


def run_pip_audit(requirements: Path, service: str) -> tuple[dict[str, Any] | None, Verdict]:
    with tempfile.TemporaryDirectory() as tmp:
        output = Path(tmp) / "report.json"
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "pip_audit",
                "--requirement",
                str(requirements),
                "--no-deps",  # constraints.txt pins every package, transitive ones included
                "--disable-pip",
                "--vulnerability-service",
                service,
                "--progress-spinner",
                "off",
                "--format",
                "json",
                "--output",
                str(output),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if output.exists() and output.stat().st_size:
            return json.loads(output.read_text()), Verdict(OK)
    tail = result.stderr.strip().splitlines()[-1:] or ["(no output)"]
    if _UNREACHABLE.search(result.stderr):
        return None, Verdict(UNAVAILABLE, [f"could not audit: {service} is unreachable: {tail[0]}"])
    return None, Verdict(ERROR, [f"pip-audit exited with {result.returncode}:", result.stderr])


def offline_tool() -> tuple[Path, Path]:
    """The `safety` executable and the database directory, installed once per version."""
    home = CACHE / f"safety-{SAFETY_VERSION}-db-{OFFLINE_DB_VERSION}"
    safety = home / "bin" / "safety"
    if not safety.exists():
        print(f"installing safety {SAFETY_VERSION} and safety-db {OFFLINE_DB_VERSION} into {home}")
        venv.create(home, with_pip=True, clear=True)
        subprocess.run(
            [
                str(home / "bin" / "python"),
                "-m",
                "pip",
                "install",
                "--quiet",
                f"safety=={SAFETY_VERSION}",
                f"safety-db=={OFFLINE_DB_VERSION}",
            ],
            check=True,
        )
    found = subprocess.run(
        [
            str(home / "bin" / "python"),
            "-c",
            "import importlib.util; print(importlib.util.find_spec('safety_db').origin)",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return safety, Path(found.stdout.strip()).parent


def pinned(requirements: Path) -> dict[str, str]:
    """name -> version of every `name==version` line (comments and markers ignored)."""
    pins = {}
    for raw in requirements.read_text().splitlines():
        line = raw.split("#", 1)[0].split(";", 1)[0].strip()
        if "==" in line:
            name, version = line.split("==", 1)
            pins[re.sub(r"\[.*\]", "", name).strip().lower().replace("_", "-")] = version.strip()
    return pins


def run_offline(requirements: Path) -> tuple[dict[str, Any] | None, Verdict]:
    """The offline audit, as a pip-audit-shaped report so that `judge` applies unchanged."""
    try:
        safety, database = offline_tool()
    except (subprocess.CalledProcessError, OSError) as exc:
        return None, Verdict(UNAVAILABLE, [f"could not install the offline database: {exc}"])
    result = subprocess.run(
        [str(safety), "check", "--db", str(database), "--json", "-r", str(requirements)],
        capture_output=True,
        text=True,
        check=False,
    )
    try:
        found = json.loads(result.stdout)
    except ValueError:
        return None, Verdict(ERROR, [f"safety exited with {result.returncode}:", result.stderr])
    vulns: dict[str, list[dict[str, Any]]] = {}
    for name, spec, _version, advisory, vuln_id, *_ in found:
        vulns.setdefault(name.lower().replace("_", "-"), []).append(
            {
                "id": f"pyup.io-{vuln_id}",
                "aliases": sorted(set(_CVE.findall(advisory))),
                "fix_versions": [f"any outside {spec}"],
                "description": advisory,
            }
        )
    report = {
        "dependencies": [
            {"name": name, "version": version, "vulns": vulns.get(name, [])}
            for name, version in sorted(pinned(requirements).items())
        ]
    }
    return report, Verdict(OK)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requirements", type=Path, default=ROOT / "constraints.txt")
    parser.add_argument("--allow-list", type=Path, default=ROOT / ".pip-audit-ignore")
    parser.add_argument("--service", choices=["pypi", "osv"], default="pypi")
    parser.add_argument("--report", type=Path, help="judge this pip-audit JSON report")
    parser.add_argument(
        "--offline",
        action="store_true",
        help=f"use the offline database only (safety-db, up to {OFFLINE_DB_DATE})",
    )
    args = parser.parse_args(argv)

    try:
        allowed = read_allow_list(args.allow_list)
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return ERROR
    if args.report:
        verdict = judge(json.loads(args.report.read_text()), allowed)
    else:
        verdict = Verdict(UNAVAILABLE, ["--offline: the offline database only"])
        if not args.offline:
            report, verdict = run_pip_audit(args.requirements, args.service)
            if report is not None:
                verdict = judge(report, allowed)
        if verdict.code == UNAVAILABLE:
            for line in verdict.lines:
                print(line)
            print(
                f"OFFLINE AUDIT with safety-db {OFFLINE_DB_VERSION}: it knows only "
                f"vulnerabilities disclosed before {OFFLINE_DB_DATE}; run `make audit` where "
                "pypi.org or osv.dev can be reached for a current verdict"
            )
            report, verdict = run_offline(args.requirements)
            if report is not None:
                verdict = judge(report, allowed)
    for line in verdict.lines:
        print(line)
    return verdict.code


if __name__ == "__main__":
    sys.exit(main())
