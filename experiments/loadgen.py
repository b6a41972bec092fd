"""One phase of load: a scenario file written for the phase, run by the project's load-test
runner (`python -m loadtests run`, Locust, open-loop executors) in a subprocess; its
summary.json and history.csv are what the experiment keeps."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from experiments.framework import LoadProfile

REPO = Path(__file__).resolve().parents[1]


@dataclass
class LoadResult:
    summary: dict[str, Any]
    history: list[dict[str, Any]]
    exit_code: int
    out: Path

    def endpoint(self, name: str) -> dict[str, Any]:
        if not name:
            return dict(self.summary.get("total") or {})
        for row in self.summary.get("endpoints", []):
            if row["name"] == name:
                return dict(row)
        return {}


def run_load(
    profile: LoadProfile,
    target: str,
    out: Path,
    name: str,
    duration_s: float,
    env: dict[str, str] | None = None,
    echo: bool = True,
) -> LoadResult:
    out.mkdir(parents=True, exist_ok=True)
    scenario = out / "scenario.yaml"
    scenario.write_text(yaml.safe_dump(profile.scenario(name, duration_s), sort_keys=False))
    command = [
        sys.executable,
        "-m",
        "loadtests",
        "run",
        str(scenario),
        "--target",
        target,
        "--out",
        str(out),
        "--metrics",
        "off",
        "--progress-every",
        "5",
    ]
    with (out / "loadtest.log").open("w") as logf:
        process = subprocess.Popen(
            command,
            cwd=REPO,
            env={**os.environ, **(env or {})},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert process.stdout is not None
        for line in process.stdout:
            logf.write(line)
            if echo and line.startswith("[") and " stage " in line:
                print(f"      {line.rstrip()}", flush=True)
        code = process.wait()
    summary_path = out / "summary.json"
    if not summary_path.exists():
        tail = (out / "loadtest.log").read_text()[-2000:]
        raise RuntimeError(f"load run failed (exit {code}), no summary.json:\n{tail}")
    summary = json.loads(summary_path.read_text())
    history: list[dict[str, Any]] = []
    if (out / "history.csv").exists():
        with (out / "history.csv").open() as f:
            history = [dict(row) for row in csv.DictReader(f)]
    return LoadResult(summary, history, code, out)
