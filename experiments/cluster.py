"""`--target kind`: an experiment against the lab `make up` installed on the kind cluster.

Unlike `--target local` there is no isolated copy: the experiment works on the release itself
(`perflab` in the `perflab` namespace), so it records what it changes and puts it back at the
end, even after a failure or Ctrl-C: each deployment's environment (changed with `kubectl set
env`, which rolls the pods), the fault switches (reset to 0) and the HPAs it patched.

What it reads and does, all through kubectl and the URLs `make up` publishes on localhost:
  - load: the gateway at http://localhost:8080;
  - metrics: Prometheus at http://localhost:9090 (every series of each service's job, summed
    over its pods; counter deltas are as fine as the 10 s scrape interval);
  - SQL: a short Python program run inside the orders pod with its own DATABASE_URL (asyncpg
    is in the image), so statements take parameters like the local target's;
  - faults and the cache: `python -m perflab.common.faults` / redis-py inside the gateway pod.
Not available on the cluster: the per-second pg_stat_activity sample (lock waiters) and
PostgreSQL's CPU from the host's process table; those figures are nan.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from experiments.framework import Experiment
from experiments.phase_metrics import Samples, Snapshot
from experiments.postgres import pg_counters
from experiments.scraper import SERIES
from perflab.dev.processes import SERVICES  # in start order

RELEASE = "perflab"
SCRAPE_INTERVAL_S = 10  # the ServiceMonitors' interval (deploy/helm/perflab/values.yaml)
# The pod label stays: a counter is followed pod by pod, so a replaced or restarted pod
# counts from zero instead of making the sum go down (PhaseMetrics.delta).
DROPPED_LABELS = ("instance", "namespace", "container", "endpoint", "job", "service")

# Runs one statement in the orders pod: argv = statement, JSON list of parameters.
_SQL = """
import asyncio, json, os, sys
import asyncpg
async def main():
    url = os.environ["DATABASE_URL"].replace("postgresql+asyncpg://", "postgresql://", 1)
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(sys.argv[1], *json.loads(sys.argv[2]), timeout=600)
    finally:
        await conn.close()
    print(json.dumps([dict(r) for r in rows], default=str))
asyncio.run(main())
"""
# Deletes the gateway's cache keys (its own REDIS_KEY_PREFIX); prints how many.
_FLUSH = """
import os, redis
client = redis.Redis.from_url(os.environ["REDIS_URL"])
keys = list(client.scan_iter(match=os.environ.get("REDIS_KEY_PREFIX", "") + "cache:*"))
for i in range(0, len(keys), 500):
    client.delete(*keys[i : i + 500])
print(len(keys))
"""


# kubectl exec errors of a container that is restarting or not yet started.
_TRANSIENT = re.compile(
    r"container not found|unable to upgrade connection|is not running|"
    r"does not have a host assigned|container .* is waiting to start"
)


class Kube:
    """kubectl on the lab's context and namespace."""

    def __init__(self, kubectl: str, context: str, namespace: str, release: str = RELEASE):
        self.kubectl = kubectl
        self.context = context
        self.namespace = namespace
        self.release = release

    def __call__(self, *args: str, timeout: float = 900) -> str:
        command = [self.kubectl, "--context", self.context, "--namespace", self.namespace, *args]
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command[:8])} ...: {done.stderr.strip()[-800:]}")
        return done.stdout

    def name(self, service: str) -> str:
        return f"{self.release}-{service}"

    def exec(self, service: str, *command: str, patience: float = 120) -> str:
        """`command` in one of the service's pods. A spike may get a container restarted by
        its liveness probe (the autoscaling experiment's fixed replica is saturated on
        purpose): then kubectl cannot reach it for a while, and this waits for it."""
        deadline = time.monotonic() + patience
        while True:
            try:
                return self("exec", f"deploy/{self.name(service)}", "-c", service, "--", *command)
            except RuntimeError as error:
                if not _TRANSIENT.search(str(error)) or time.monotonic() > deadline:
                    raise
                time.sleep(3)

    def env(self, service: str) -> dict[str, str]:
        """The deployment's literal environment variables (secret references left out)."""
        spec = json.loads(self("get", "deployment", self.name(service), "-o", "json"))
        (container,) = [
            c for c in spec["spec"]["template"]["spec"]["containers"] if c["name"] == service
        ]
        return {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}

    def set_env(self, service: str, changes: dict[str, str | None]) -> None:
        """Sets (or, for None, removes) variables, then waits for the rollout."""
        if not changes:
            return
        assignments = [f"{k}={v}" if v is not None else f"{k}-" for k, v in changes.items()]
        self("set", "env", f"deployment/{self.name(service)}", "-c", service, *assignments)
        self("rollout", "status", f"deployment/{self.name(service)}", "--timeout", "5m")

    def hpa(self, service: str) -> dict[str, int]:
        spec = json.loads(self("get", "hpa", self.name(service), "-o", "json"))["spec"]
        return {"minReplicas": spec.get("minReplicas", 1), "maxReplicas": spec["maxReplicas"]}

    def patch_hpa(self, service: str, min_replicas: int, max_replicas: int) -> None:
        patch = json.dumps({"spec": {"minReplicas": min_replicas, "maxReplicas": max_replicas}})
        self("patch", "hpa", self.name(service), "--type", "merge", "-p", patch)

    def replicas(self, service: str) -> int:
        return int(
            self("get", "deployment", self.name(service), "-o", "jsonpath={.status.readyReplicas}")
            or 0
        )


class PromScraper:
    """The services' metrics from the cluster's Prometheus, as Snapshots like the local
    scraper's, so the experiments' `resources` work unchanged. Each service is its `job`;
    its pods' series are kept apart (by `pod`) and summed when read. The deployments' ready
    replicas (kube-state-metrics) are the pseudo-service `kube`:
    `kube_deployment_status_replicas_ready{deployment=...}`."""

    def __init__(self, url: str, services: tuple[str, ...], namespace: str, interval: float = 5):
        self.url = url.rstrip("/")
        self.services = services
        self.namespace = namespace
        self.interval = interval
        self.series: list[Snapshot] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def query(self, promql: str) -> list[dict[str, Any]]:
        address = f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        with urllib.request.urlopen(address, timeout=30) as response:
            body = json.loads(response.read())
        if body.get("status") != "success":
            raise RuntimeError(f"Prometheus refused {promql!r}: {body}")
        return list(body["data"]["result"])

    def _samples(self, selector: str, keep: tuple[str, ...] = ()) -> Samples:
        samples: Samples = {}
        for item in self.query(selector):
            labels = dict(item["metric"])
            name = labels.pop("__name__", "")
            for drop in DROPPED_LABELS:
                if drop not in keep:
                    labels.pop(drop, None)
            key = (name, frozenset(labels.items()))
            samples[key] = samples.get(key, 0.0) + float(item["value"][1])
        return samples

    def snapshot(self, names: tuple[str, ...] | None = None) -> Snapshot:
        services: dict[str, Samples] = {}
        for service in self.services:
            selector = f'{{job="{service}"}}'
            if names is not None:
                selector = f'{{job="{service}", __name__=~"{"|".join(names)}"}}'
            services[service] = self._samples(selector)
        services["kube"] = self._samples(
            f'kube_deployment_status_replicas_ready{{namespace="{self.namespace}"}}',
            keep=("deployment",),
        )
        return Snapshot(time.time(), services)

    def __enter__(self) -> PromScraper:
        self.series = []
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            with contextlib.suppress(OSError, RuntimeError, ValueError):
                self.series.append(self.snapshot(SERIES))

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(35)
        # the phase's last seconds reach Prometheus with its next scrape (every 10 s)
        time.sleep(SCRAPE_INTERVAL_S + 1)


class ClusterContext:
    """What the runner's hooks get on kind: the same methods as the local target's LocalContext."""

    def __init__(self, experiment: Experiment, quick: bool, out_dir: Path, kube: Kube):
        self.experiment = experiment
        self.quick = quick
        self.out_dir = out_dir
        self.kube = kube
        self.data: dict[str, Any] = {}
        self.gateway_url = os.environ.get("KIND_GATEWAY_URL", "http://localhost:8080")
        prometheus = os.environ.get("KIND_PROMETHEUS_URL", "http://localhost:9090")
        self.scraper = PromScraper(prometheus, tuple(experiment.services), kube.namespace)
        self.original_env: dict[str, dict[str, str]] = {}
        self.original_hpa: dict[str, dict[str, int]] = {}
        self.current: dict[str, dict[str, str]] = {}

    def sql(self, statement: str, *args: Any, database: str = "orders") -> list[dict[str, Any]]:
        service = "orders" if database == "orders" else "payments"
        out = self.kube.exec(service, "python", "-c", _SQL, statement, json.dumps(list(args)))
        rows: list[dict[str, Any]] = json.loads(out)
        return rows

    def set_fault(self, name: str, value: float) -> None:
        self.kube.exec("gateway", "python", "-m", "perflab.common.faults", "set", name, str(value))

    def flush_cache(self) -> int:
        return int(self.kube.exec("gateway", "python", "-c", _FLUSH).strip() or 0)

    def pids(self) -> dict[str, int]:
        """LocalContext's process ids: none here, the services run in pods (so --profile is
        refused on kind, experiments.profiles.local_only)."""
        return {}

    def apply_env(self, env: dict[str, dict[str, str]]) -> list[str]:
        """Sets each service's experiment variables on its deployment (the pods roll);
        variables a previous arm set and this one does not are put back as they were."""
        changed = []
        for service in SERVICES:
            if service not in self.experiment.services:
                continue
            wanted = env.get(service, {})
            previous = self.current.get(service, {})
            if wanted == previous:
                continue
            original = self.original_env.setdefault(service, self.kube.env(service))
            changes: dict[str, str | None] = dict(wanted)
            for key in previous.keys() - wanted.keys():
                changes[key] = original.get(key)  # None removes a variable the chart never set
            self.kube.set_env(service, changes)
            self.current[service] = dict(wanted)
            changed.append(service)
        return changed

    def restore(self) -> None:
        """Puts back what the experiment changed: environment, HPAs, faults."""
        for service, previous in self.current.items():
            original = self.original_env.get(service, {})
            self.kube.set_env(service, {k: original.get(k) for k in previous})
        self.current = {}
        for service, spec in self.original_hpa.items():
            self.kube.patch_hpa(service, spec["minReplicas"], spec["maxReplicas"])
        self.kube.exec("gateway", "python", "-m", "perflab.common.faults", "reset")

    def pg_stats(self) -> dict[str, float]:
        figures = pg_counters(self.sql)
        figures["postgres_cpu_seconds"] = math.nan  # the host's process table is not the pod's
        return figures

    def scale_limits(self, service: str, min_replicas: int, max_replicas: int) -> None:
        """Patches the service's HPA (remembered first, restored at the end)."""
        self.original_hpa.setdefault(service, self.kube.hpa(service))
        self.kube.patch_hpa(service, min_replicas, max_replicas)

    def original_max_replicas(self, service: str) -> int:
        return self.original_hpa.get(service, self.kube.hpa(service))["maxReplicas"]

    def wait_replicas(self, service: str, count: int, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while self.kube.replicas(service) != count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{service} did not reach {count} ready replicas")
            time.sleep(3)


@contextlib.contextmanager
def cluster_context(experiment: Experiment, quick: bool, out: Path) -> Iterator[ClusterContext]:
    kube = Kube(
        os.environ.get("KUBECTL", "bin/kubectl"),
        os.environ.get("KUBE_CONTEXT", f"kind-{os.environ.get('CLUSTER', 'perflab')}"),
        os.environ.get("NAMESPACE", "perflab"),
    )
    try:
        kube("get", "deployment", kube.name("gateway"), "-o", "name", timeout=30)
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
        raise SystemExit(
            f"the kind lab is not reachable ({exc}); start it with make up, or use TARGET=local"
        ) from exc
    ctx = ClusterContext(experiment, quick, out, kube)
    try:
        if experiment.pin_replicas:  # the arms must differ only in the one change
            for service in experiment.services:
                ctx.scale_limits(service, 1, 1)
        yield ctx
    finally:
        ctx.restore()
