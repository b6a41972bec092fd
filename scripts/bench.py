"""`make bench`: figures, not pass/fail, for the running local stack (`make local`).

Measures with wrk (closed loop, fixed connections) for each scenario: requests/s, p50/p95/p99
and the CPU the serving processes spent per request, each compared to a bare FastAPI endpoint
served the same way in the same run (and to the same endpoint after one redis-py GET: the
least any cached read can cost, the ceiling of P1). The product reads go to gateways this
script starts for the run (tracing off, sampled 10 %, sampled 100 %, cache off), so the
tracing overhead is measured in one run on one machine state. Orders go through the
`make local` gateway; then the order pipeline's throughput (created -> paid per second,
against the create rate), the created -> paid latency at half the create rate, and the memory
of the whole local stack. Prints the goals of issue 12 (P1-P4) beside the figures and the
change against the previous run; saves every run to results/bench/<timestamp>.json
(PROFILE=1: a flame graph per service and scenario beside it).
"""

import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import psutil

from perflab.dev import profiling
from perflab.dev.processes import SERVICES, Infra, Ports, StackConfig, free_port

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("PERFLAB_DATA", REPO / ".local"))
RESULTS = REPO / "results" / "bench"

READ_LUA = """
math.randomseed(os.time())
request = function()
  -- 80%% of reads go to 100 popular products, the rest anywhere in the catalog
  local id = math.random() < 0.8 and math.random(1, 100) or math.random(1, %(products)d)
  wrk.headers["X-Client-Id"] = "bench-" .. math.random(1, 1000)
  return wrk.format("GET", "/api/products/" .. id)
end
"""
ORDER_LUA = """
math.randomseed(os.time())
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
request = function()
  wrk.headers["X-Client-Id"] = "bench-" .. math.random(1, 1000)
  local body = string.format(
    '{"customer_id":"%(customer)s","items":[{"product_id":%%d,"quantity":1}]}',
    math.random(1, %(products)d))
  return wrk.format(nil, "/api/orders", nil, body)
end
"""
# Each connection waits this long between its requests: a paced load below saturation.
DELAY_LUA = """
delay = function() return %(ms)d end
"""
DONE_LUA = """
done = function(summary, latency, requests)
  io.write(string.format("JSON {\\"requests\\":%d,\\"seconds\\":%f,\\"errors\\":%d,"
    .. "\\"non2xx\\":%d,\\"p50\\":%f,\\"p95\\":%f,\\"p99\\":%f,\\"max\\":%f}\\n",
    summary.requests, summary.duration / 1e6,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.errors.status, latency:percentile(50) / 1e3, latency:percentile(95) / 1e3,
    latency:percentile(99) / 1e3, latency.max / 1e3))
end
"""

BARE = "bare FastAPI (ceiling)"
BARE_REDIS = "FastAPI + one Redis GET"
CACHED_OFF = "GET product, tracing off"
CACHED_10 = "GET product, sampled 10%"
CACHED_100 = "GET product, sampled 100%"
UNCACHED = "GET product, cache off, 10%"
ORDER = "POST order"
ORDER_PACED = "POST order, half rate"
MEMORY_GOAL_MIB = 1.6 * 1024


def wrk(url: str, lua: str, seconds: int, connections: int) -> dict[str, float]:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(lua + DONE_LUA)
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s", "-s", f.name, url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    os.unlink(f.name)
    match = re.search(r"^JSON (.*)$", out, re.M)
    if not match:
        raise RuntimeError(f"wrk printed no summary:\n{out}")
    figures: dict[str, float] = json.loads(match.group(1))
    figures["rps"] = figures["requests"] / figures["seconds"]
    return figures


def wait_http(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(url)


def start(cmd: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        cmd, env={**os.environ, **(env or {})}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


def local_pids() -> dict[str, int]:
    """The services `make local` runs, by name."""
    pids = {}
    for service in SERVICES:
        with contextlib.suppress(OSError, ValueError):
            pids[service] = int((DATA / "run" / f"{service}.pid").read_text())
    return pids


def stack_memory_mib() -> dict[str, float]:
    """Memory of everything `make local` started (processes and their children): the sum of
    their RSS, which counts PostgreSQL's shared buffers once per backend, and of their PSS
    (shared pages split between the processes sharing them), the stack's real footprint."""
    rss = pss = 0
    for pid_file in (DATA / "run").glob("*.pid"):
        try:
            root = psutil.Process(int(pid_file.read_text()))
            procs = [root, *root.children(recursive=True)]
        except (psutil.Error, ValueError):
            continue
        for p in procs:
            with contextlib.suppress(psutil.Error):  # it may have exited meanwhile
                info = p.memory_full_info()
                rss += info.rss
                pss += getattr(info, "pss", info.rss)
    return {"rss": rss / 2**20, "pss": pss / 2**20}


def cpu_seconds(pid: int) -> float:
    try:
        t = psutil.Process(pid).cpu_times()
    except psutil.Error:
        return float("nan")
    return float(t.user + t.system)


@contextlib.contextmanager
def cpu_per_request(pids: dict[str, int], figures: dict[str, float]) -> Iterator[None]:
    """Adds `cpu_ms_<name>`: CPU milliseconds each process spent per request of the scenario."""
    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    yield
    for name, pid in pids.items():
        figures[f"cpu_ms_{name}"] = (cpu_seconds(pid) - before[name]) * 1000 / figures["requests"]


@contextlib.contextmanager
def profiles(enabled: bool, pids: dict[str, int], seconds: int, folder: Path) -> Iterator[None]:
    """PROFILE=1: a flame graph of each process while the scenario runs."""
    if not enabled:
        yield
        return
    running = {
        name: profiling.record(pid, seconds, folder / f"{name}.svg") for name, pid in pids.items()
    }
    yield
    for name, process in running.items():
        profiling.finish(process, folder / f"{name}.svg")


async def orders_db() -> asyncpg.Connection:
    infra = Infra()
    return await asyncpg.connect(
        host=infra.host, port=int(infra.postgres), user="perflab", database="orders"
    )


async def pipeline(customer: str, timeout: float = 300) -> dict[str, float]:
    """Waits until the customer's orders are final; their throughput and created -> paid time."""
    pg = await orders_db()
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and await pg.fetchval(
            "SELECT count(*) FROM orders WHERE customer_id = $1 AND status = 'PENDING'", customer
        ):
            await asyncio.sleep(0.5)
        row = await pg.fetchrow(
            "SELECT count(*) AS n, count(*) FILTER (WHERE status <> 'PENDING') AS done, "
            "extract(epoch FROM max(updated_at) - min(created_at)) AS span, "
            "extract(epoch FROM max(created_at) - min(created_at)) AS created_span, "
            "percentile_cont(ARRAY[0.5, 0.99]) WITHIN GROUP "
            "  (ORDER BY extract(epoch FROM updated_at - created_at)) "
            "  FILTER (WHERE status <> 'PENDING') AS latency "
            "FROM orders WHERE customer_id = $1",
            customer,
        )
    finally:
        await pg.close()
    span, created_span = float(row["span"] or 0), float(row["created_span"] or 0)
    latency = row["latency"] or [0.0, 0.0]
    return {
        "orders": row["n"],
        "final": row["done"],
        "per_second": row["done"] / span if span else 0,
        "created_per_second": row["n"] / created_span if created_span else 0,
        "p50_ms": latency[0] * 1000,
        "p99_ms": latency[1] * 1000,
    }


@dataclass
class Goal:
    name: str
    text: str
    value: Callable[[dict[str, object]], float]
    target: float
    higher_is_better: bool = True

    def check(self, run: dict[str, object]) -> tuple[float, bool]:
        v = self.value(run)
        return v, (v >= self.target) if self.higher_is_better else (v <= self.target)


def _s(run: dict[str, object], name: str, key: str) -> float:
    return float(run["scenarios"][name][key])  # type: ignore[index]


def _ratio(a: str, b: str) -> Callable[[dict[str, object]], float]:
    return lambda run: _s(run, a, "rps") / _s(run, b, "rps")


def _f(run: dict[str, object], key: str) -> float:
    return float(run[key])  # type: ignore[arg-type]


def _pipeline_ratio(run: dict[str, object]) -> float:
    flow: dict[str, float] = run["pipeline"]  # type: ignore[assignment]
    return flow["per_second"] / flow["created_per_second"]


GOALS = [
    Goal("P1", "cached read (10%) / bare FastAPI", _ratio(CACHED_10, BARE), 0.4),
    Goal("P1", "cached read (10%) p99 ms", lambda r: _s(r, CACHED_10, "p99"), 30, False),
    Goal("P1", "cache on / cache off", _ratio(CACHED_10, UNCACHED), 3),
    Goal("P1", "(ceiling: FastAPI + 1 Redis GET / bare)", _ratio(BARE_REDIS, BARE), 0.4),
    Goal("P2", "sampled 10% / tracing off", _ratio(CACHED_10, CACHED_OFF), 0.9),
    Goal("P2", "sampled 100% / tracing off", _ratio(CACHED_100, CACHED_OFF), 0.6),
    Goal("P3", "POST order req/s", lambda r: _s(r, ORDER, "rps"), 600),
    Goal("P3", "POST order p99 ms", lambda r: _s(r, ORDER, "p99"), 100, False),
    Goal("P3", "orders CPU ms per order", lambda r: _s(r, ORDER, "cpu_ms_orders"), 1.5, False),
    Goal("P3b", "pipeline / create rate", _pipeline_ratio, 0.9),
    Goal(
        "P3b",
        "created->paid p99 ms, half rate",
        lambda r: float(r["paced"]["p99_ms"]),  # type: ignore[index]
        250,
        False,
    ),
    Goal(
        "P4", "local stack memory (PSS) MiB", lambda r: float(r["pss_mib"]), MEMORY_GOAL_MIB, False
    ),  # type: ignore[arg-type]
]


def previous_run() -> dict[str, object] | None:
    runs = sorted(RESULTS.glob("*.json"))
    if not runs:
        return None
    with contextlib.suppress(ValueError, OSError):
        return json.loads(runs[-1].read_text())  # type: ignore[no-any-return]
    return None


def report(run: dict[str, object], before: dict[str, object] | None) -> None:
    scenarios: dict[str, dict[str, float]] = run["scenarios"]  # type: ignore[assignment]
    ceiling = scenarios[BARE]
    prev: dict[str, dict[str, float]] = (before or {}).get("scenarios", {})  # type: ignore[assignment]
    print(
        f"\n{'scenario':28} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'errors':>6} "
        f"{'/bare':>6} {'CPU ms/req':>22} {'req/s vs prev':>14} {'p99 vs prev':>12}"
    )
    for name, r in scenarios.items():
        cpu = " ".join(
            f"{k.removeprefix('cpu_ms_')[:4]} {v:.2f}"
            for k, v in r.items()
            if k.startswith("cpu_ms_")
        )
        old = prev.get(name)
        delta_rps = f"{r['rps'] / old['rps'] - 1:+.0%}" if old and old["rps"] else "-"
        delta_p99 = f"{r['p99'] / old['p99'] - 1:+.0%}" if old and old["p99"] else "-"
        print(
            f"{name:28} {r['rps']:7.0f} {r['p50']:7.1f} {r['p99']:7.1f} "
            f"{int(r['errors'] + r['non2xx']):6d} {r['rps'] / ceiling['rps']:6.2f} {cpu:>22} "
            f"{delta_rps:>14} {delta_p99:>12}"
        )
    flow: dict[str, float] = run["pipeline"]  # type: ignore[assignment]
    paced: dict[str, float] = run["paced"]  # type: ignore[assignment]
    print(
        f"\norder pipeline at full create rate: {flow['final']}/{flow['orders']} orders final, "
        f"created {flow['created_per_second']:.0f}/s, paid {flow['per_second']:.0f}/s, "
        f"created->paid p50 {flow['p50_ms']:.0f} ms p99 {flow['p99_ms']:.0f} ms"
    )
    print(
        f"order pipeline at half rate ({paced['created_per_second']:.0f}/s): "
        f"{paced['final']}/{paced['orders']} final, created->paid p50 {paced['p50_ms']:.0f} ms "
        f"p99 {paced['p99_ms']:.0f} ms"
    )
    print(
        f"local stack memory: PSS {run['pss_mib']:.0f} MiB "
        f"(sum of RSS {run['rss_mib']:.0f} MiB counts shared memory once per process)"
    )
    print(f"\n{'goal':5} {'figure':36} {'now':>9} {'target':>9}  {'met':5} {'previous':>9}")
    for goal in GOALS:
        value, met = goal.check(run)
        old = "-"
        if before is not None:
            with contextlib.suppress(KeyError, TypeError, ZeroDivisionError, ValueError):
                old = f"{goal.check(before)[0]:9.2f}"
        sign = ">=" if goal.higher_is_better else "<="
        print(
            f"{goal.name:5} {goal.text:36} {value:9.2f} {sign}{goal.target:7.4g}  "
            f"{'yes' if met else 'NO':5} {old:>9}"
        )
    meta: dict[str, object] = run["meta"]  # type: ignore[assignment]
    print(
        f"\n({meta['connections']} connections, {meta['seconds']}s per scenario, "
        f"{meta['cpus']} CPUs, load average {meta['load_before']} before the run; "
        f"make local samples {meta['stack_sampling']} of traces; commit {meta['commit']})"
    )
    if before is not None:
        print(f"'vs prev': against the run of {before.get('meta', {}).get('run', '?')}")  # type: ignore[union-attr]


def git_commit() -> str:
    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=REPO, capture_output=True, text=True, check=False
        ).stdout.strip()

    return git("rev-parse", "--short", "HEAD") + ("+dirty" if git("status", "--porcelain") else "")


def stack_sampling(pid: int) -> str:
    try:
        env = psutil.Process(pid).environ()
    except psutil.Error:
        return "?"
    if env.get("TRACING_ENABLED", "true").lower() == "false":
        return "none"
    return env.get("OTEL_TRACES_SAMPLER_ARG", "all") if "OTEL_TRACES_SAMPLER" in env else "all"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=15, help="per scenario (default 15)")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--products", type=int, default=10_000)
    parser.add_argument("--profile", action="store_true", help="flame graphs (py-spy)")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install wrk (make bench does it)")
    if args.profile:
        try:
            profiling.py_spy()
        except profiling.ProfileFailed as missing:
            sys.exit(str(missing))
    gateway = f"http://127.0.0.1:{Ports().gateway}"
    try:
        wait_http(f"{gateway}/readyz", timeout=3)
    except TimeoutError:
        sys.exit("the local stack is not running: start it with `make local`")
    local = local_pids()
    run = time.strftime("%Y%m%d-%H%M%S")
    folder = RESULTS / run
    before = previous_run()
    meta = {
        "run": run,
        "commit": git_commit(),
        "connections": args.connections,
        "seconds": args.seconds,
        "cpus": os.cpu_count(),
        "load_before": " ".join(f"{x:.1f}" for x in os.getloadavg()),
        "stack_sampling": stack_sampling(local["gateway"]) if "gateway" in local else "?",
    }

    # Gateways of this run, beside the local one: same code, one variable changed each.
    variants = {
        CACHED_OFF: {"TRACING_ENABLED": "false"},
        CACHED_10: {"OTEL_TRACES_SAMPLER_ARG": "0.1"},
        CACHED_100: {"OTEL_TRACES_SAMPLER_ARG": "1.0"},
        UNCACHED: {"OTEL_TRACES_SAMPLER_ARG": "0.1", "CACHE_ENABLED": "false"},
    }
    bare_port = free_port()
    bare = [sys.executable, str(REPO / "scripts" / "bench_bare.py"), str(bare_port)]
    redis_port = free_port()
    bare_redis = [*bare[:2], str(redis_port), "--redis", Infra().redis_url]
    helpers = {BARE: start(bare), BARE_REDIS: start(bare_redis)}
    urls = {BARE: f"http://127.0.0.1:{bare_port}", BARE_REDIS: f"http://127.0.0.1:{redis_port}"}
    for name, env in variants.items():
        port = free_port()
        config = StackConfig(ports=Ports(gateway=port))
        helpers[name] = start(
            [sys.executable, "-m", "perflab.gateway"],
            {**config.env("gateway"), "ADMIN_PORT": "0", "SERVICE_NAME": "gateway-bench", **env},
        )
        urls[name] = f"http://127.0.0.1:{port}"
    results: dict[str, dict[str, float]] = {}
    lua_read = READ_LUA % {"products": args.products}
    order_pids = {k: v for k, v in local.items() if k in ("gateway", "orders")}
    try:
        for name in (BARE, BARE_REDIS):
            wait_http(f"{urls[name]}/api/products/1")
        for name in variants:
            wait_http(f"{urls[name]}/readyz")
        for name in (BARE, BARE_REDIS, *variants):
            print(f"running {name!r} for {args.seconds}s ...", file=sys.stderr, flush=True)
            wrk(urls[name], lua_read, 2, args.connections)  # warm-up, not counted
            figures: dict[str, float] = {}
            pids = {"gateway": helpers[name].pid, "orders": local["orders"]}
            tag = re.sub(r"\W+", "-", name).strip("-")
            with (
                profiles(args.profile and name == CACHED_10, pids, args.seconds, folder / tag),
                cpu_per_request(pids, figures),
            ):
                figures |= wrk(urls[name], lua_read, args.seconds, args.connections)
            results[name] = figures
    finally:
        for p in helpers.values():
            p.terminate()
            p.wait(10)

    customer = f"bench-{run}"
    lua_order = ORDER_LUA % {"products": args.products, "customer": customer}
    print(f"running {ORDER!r} for {args.seconds}s ...", file=sys.stderr, flush=True)
    figures = {}
    with (
        profiles(args.profile, local, args.seconds, folder / "POST-order"),
        cpu_per_request(order_pids, figures),
    ):
        figures |= wrk(gateway, lua_order, args.seconds, args.connections)
    results[ORDER] = figures
    print("waiting for the order pipeline to drain ...", file=sys.stderr, flush=True)
    flow = asyncio.run(pipeline(customer))

    # Half the create rate, paced: each of 8 connections waits between its requests.
    paced_customer = f"{customer}-paced"
    connections = 8
    rate = max(1.0, flow["created_per_second"] / 2)
    lua_paced = ORDER_LUA % {"products": args.products, "customer": paced_customer}
    lua_paced += DELAY_LUA % {"ms": 1000 * connections / rate}
    print(f"running {ORDER_PACED!r} (~{rate:.0f}/s) ...", file=sys.stderr, flush=True)
    figures = {}
    with cpu_per_request(order_pids, figures):
        figures |= wrk(gateway, lua_paced, args.seconds, connections)
    results[ORDER_PACED] = figures
    paced = asyncio.run(pipeline(paced_customer))

    outcome: dict[str, object] = {
        "meta": meta,
        "scenarios": results,
        "pipeline": flow,
        "paced": paced,
        **{f"{k}_mib": v for k, v in stack_memory_mib().items()},
        "args": vars(args),
    }
    report(outcome, before)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"{run}.json"
    out.write_text(json.dumps(outcome, indent=1))
    print(f"figures saved to {out}" + (f"; flame graphs in {folder}" if args.profile else ""))


if __name__ == "__main__":
    main()
