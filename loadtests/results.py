"""What a run leaves: its provenance (git revision, machine), every request as a line when
asked (``--raw``), and the results folder's files (summary.json, history, report.html)."""

from __future__ import annotations

import csv
import json
import logging
import os
import platform
import socket
import subprocess
from pathlib import Path
from typing import Any

import locust
from locust.env import Environment
from locust.html import get_html_report

log = logging.getLogger("loadtests")

REPO_ROOT = Path(__file__).resolve().parent.parent


def git_revision() -> dict[str, Any]:
    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(
                ["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=5
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    status = git("status", "--porcelain")
    return {
        "revision": git("rev-parse", "HEAD"),
        "dirty": bool(status) if status is not None else None,
    }


def machine() -> dict[str, Any]:
    return {
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "python": platform.python_version(),
        "locust": locust.__version__,
    }


class RawWriter:
    """Every request as one line, for the user's own analysis (k6's ``--out csv=`` /
    ``--out json=``): time (Unix seconds, when the request was sent), method, name, duration
    in ms, failed (0/1), bytes sent and received, scenario (the workload's name).
    ``.jsonl``/``.json``: JSON lines; else CSV."""

    FIELDS = ("time", "method", "name", "duration_ms", "failed", "sent", "received", "scenario")

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.file = path.open("w", newline="")
        self.json = path.suffix in (".jsonl", ".json")
        self.csv = None if self.json else csv.writer(self.file)
        if self.csv is not None:
            self.csv.writerow(self.FIELDS)

    def write(self, row: tuple[Any, ...]) -> None:
        if self.csv is not None:
            self.csv.writerow(row)
        else:
            self.file.write(json.dumps(dict(zip(self.FIELDS, row, strict=True))) + "\n")

    def close(self) -> None:
        self.file.close()


def write_artifacts(
    out: Path, summary: dict[str, Any], history: list[dict[str, Any]], env: Environment
) -> None:
    """summary.json, history.json/.csv (one row a second) and Locust's report.html."""
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    (out / "history.json").write_text(json.dumps(history, indent=1) + "\n")
    if history:
        with (out / "history.csv").open("w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(history[0]))
            writer.writeheader()
            writer.writerows(history)
    try:
        (out / "report.html").write_text(get_html_report(env, show_download_link=False))
    except Exception as exc:  # the report is a convenience; the run's verdict must not depend on it
        log.warning("HTML report not written: %s", exc)
