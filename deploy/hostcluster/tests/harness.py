"""What the host-cluster tests share: where the lab answers, kubectl, the host snapshot, the
rows of the final table."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[3]
HOSTCLUSTER = REPO / "deploy/hostcluster/hostcluster.sh"
RESULTS = REPO / "results/hostcluster"
NAMESPACE = "perflab"
CONTEXT = "perflab-host"
STATE = Path(os.environ.get("HOSTCLUSTER_STATE", "/var/lib/perflab-hostcluster"))
KUBECONFIG = STATE / "admin.kubeconfig"
KUBECTL = STATE / "bin/kubectl"
# NodePorts on 127.0.0.1: the same on every host (the localhost:8080-style forwards are a
# convenience that a busy port may disable).
GATEWAY = "http://127.0.0.1:30080"
PROMETHEUS = "http://127.0.0.1:30090"
JAEGER = "http://127.0.0.1:30686"

ROWS: list[tuple[str, str, str]] = []
# Wall time and memory of the whole run, filled in when the cluster is gone.
TOTALS: dict[str, float] = {}


def record(check: str, passed: bool, figures: str) -> None:
    """One row of the final table."""
    ROWS.append((check, "PASS" if passed else "FAIL", figures))


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def run(command: list[str], timeout: float, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """Runs a command with its output streamed to the terminal (long steps show progress)."""
    say("$ " + " ".join(command))
    return subprocess.run(command, cwd=REPO, timeout=timeout, text=True, check=False, **kwargs)


def kubectl(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(KUBECTL), "--kubeconfig", str(KUBECONFIG), "--context", CONTEXT, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def kubectl_json(*args: str) -> Any:
    result = kubectl(*args, "-o", "json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def snapshot() -> list[str]:
    """The host state `make down PROVIDER=host` must restore (hostcluster.sh snapshot)."""
    out = subprocess.run(
        [str(HOSTCLUSTER), "snapshot"], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    return out.splitlines()


class MemoryPeak:
    """Peak of the host's used memory (MemTotal - MemAvailable) while it runs, sampled every
    second, minus what was used before."""

    def __init__(self) -> None:
        self.baseline = self.used()
        self.peak = self.baseline
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    @staticmethod
    def used() -> int:
        info = dict(
            (line.split(":")[0], int(line.split()[1]))
            for line in Path("/proc/meminfo").read_text().splitlines()
        )
        return (info["MemTotal"] - info["MemAvailable"]) * 1024

    def _sample(self) -> None:
        while not self._stop.wait(1.0):
            self.peak = max(self.peak, self.used())

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak - self.baseline


@dataclass
class Lab:
    """What the tests share: timings and state of the one cluster of this run."""

    before: list[str]
    memory: MemoryPeak
    timings: dict[str, float] = field(default_factory=dict)
    down: bool = False
