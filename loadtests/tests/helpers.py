"""Helpers for the load-test tests (imported by tests and conftest alike).

Locust monkey-patches the whole process with gevent when imported, so nothing here imports it:
every load-test run is a ``python -m loadtests run`` subprocess, and the systems under test are
uvicorn subprocesses. The unit tests import only the pure modules.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


@contextmanager
def serve(app: str, env: dict[str, str] | None = None) -> Iterator[str]:
    """Serve an ASGI app (``module:attribute``) with uvicorn in a subprocess; yield its URL."""
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            app,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        cwd=REPO,
        env={**os.environ, **(env or {})},
    )
    try:
        wait_for_port(port)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@dataclass
class Run:
    returncode: int
    output: str
    out_dir: Path

    @property
    def summary(self) -> dict[str, Any]:
        return json.loads((self.out_dir / "summary.json").read_text())


def run_loadtest(
    scenario: str | Path, target: str, out_dir: Path, *args: str, timeout: float = 90
) -> Run:
    """``python -m loadtests run`` in a subprocess, as ``make`` would run it."""
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "loadtests",
            "run",
            str(scenario),
            "--target",
            target,
            "--out",
            str(out_dir),
            "--progress-every",
            "2",
            *args,
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "LOADTEST_METRICS": "off"},
    )
    return Run(proc.returncode, proc.stdout + proc.stderr, out_dir)


def run_distributed(
    scenario: Path, target: str, out_dir: Path, workers: int = 2
) -> subprocess.CompletedProcess[str]:
    """A Locust master (headless) with `workers` worker processes on this machine, as
    ``make load WORKERS=n`` runs them; the summary lands in `out_dir`."""
    port = str(free_port())
    env = {
        **os.environ,
        "SCENARIO": str(scenario),
        "LOADTEST_METRICS": "off",
        "LOADTEST_RESULTS": str(out_dir),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    locust = [sys.executable, "-m", "locust", "-f", "loadtests/locustfile.py"]
    processes = [
        subprocess.Popen(
            [*locust, "--worker", "--master-port", port],
            cwd=REPO,
            env=env,
            stdout=(out_dir / f"worker{i}.log").open("w"),
            stderr=subprocess.STDOUT,
        )
        for i in range(workers)
    ]
    try:
        return subprocess.run(
            [
                *locust,
                *("--master", "--headless", "--expect-workers", str(workers)),
                *("--master-bind-port", port, "--host", target, "--only-summary"),
            ],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=90,
        )
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=10)
