"""`make bench`: figures, not pass/fail, for the running local stack (`make local`).

Measures with wrk (closed loop, fixed connections) for each scenario: requests/s and
p50/p95/p99, each compared to a bare FastAPI endpoint served the same way in the same run.
Then the order pipeline's throughput (created -> paid per second) and the resident memory of
the whole local stack. Writes the figures to .local/bench/<timestamp>.json as well.
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
from pathlib import Path

import asyncpg
import psutil

from perflab.common.localstack import Infra, Ports, StackConfig, free_port

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("PERFLAB_DATA", REPO / ".local"))

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
    '{"customer_id":"bench-%(run)s","items":[{"product_id":%%d,"quantity":1}]}',
    math.random(1, %(products)d))
  return wrk.format(nil, "/api/orders", nil, body)
end
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


def stack_rss_mib() -> float:
    """Resident memory of everything `make local` started (processes and their children)."""
    total = 0
    for pid_file in (DATA / "run").glob("*.pid"):
        try:
            root = psutil.Process(int(pid_file.read_text()))
            procs = [root, *root.children(recursive=True)]
        except (psutil.Error, ValueError):
            continue
        for p in procs:
            with contextlib.suppress(psutil.Error):  # it may have exited meanwhile
                total += p.memory_info().rss
    return total / 2**20


async def pipeline(run: str, timeout: float = 120) -> dict[str, float]:
    infra = Infra()
    pg = await asyncpg.connect(
        host=infra.host, port=int(infra.postgres), user="perflab", database="orders"
    )
    try:
        deadline = time.monotonic() + timeout
        customer = f"bench-{run}"
        while time.monotonic() < deadline and await pg.fetchval(
            "SELECT count(*) FROM orders WHERE customer_id = $1 AND status = 'PENDING'", customer
        ):
            await asyncio.sleep(0.5)
        row = await pg.fetchrow(
            "SELECT count(*) AS n, count(*) FILTER (WHERE status <> 'PENDING') AS done, "
            "extract(epoch FROM max(updated_at) - min(created_at)) AS span "
            "FROM orders WHERE customer_id = $1",
            customer,
        )
    finally:
        await pg.close()
    span = float(row["span"] or 0)
    return {
        "orders": row["n"],
        "final": row["done"],
        "per_second": row["done"] / span if span else 0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=15, help="per scenario (default 15)")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--products", type=int, default=10_000)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install wrk (make bench does it)")
    ports = Ports()
    gateway = f"http://127.0.0.1:{ports.gateway}"
    try:
        wait_http(f"{gateway}/readyz", timeout=3)
    except TimeoutError:
        sys.exit("the local stack is not running: start it with `make local`")

    run = time.strftime("%Y%m%d%H%M%S")
    bare_port, nocache_port = free_port(), free_port()
    config = StackConfig(ports=Ports(gateway=nocache_port))
    helpers = [
        start([sys.executable, str(REPO / "scripts" / "bench_bare.py"), str(bare_port)]),
        start(
            [sys.executable, "-m", "perflab.gateway"],
            {**config.env("gateway"), "CACHE_ENABLED": "false", "SERVICE_NAME": "gateway-nocache"},
        ),
    ]
    results: dict[str, dict[str, float]] = {}
    try:
        wait_http(f"http://127.0.0.1:{bare_port}/api/products/1")
        wait_http(f"http://127.0.0.1:{nocache_port}/readyz")
        lua_read = READ_LUA % {"products": args.products}
        scenarios = [
            ("bare FastAPI (ceiling)", f"http://127.0.0.1:{bare_port}", lua_read),
            ("GET product, cache on", gateway, lua_read),
            ("GET product, cache off", f"http://127.0.0.1:{nocache_port}", lua_read),
            ("POST order", gateway, ORDER_LUA % {"products": args.products, "run": run}),
        ]
        for name, url, lua in scenarios:
            print(f"running {name!r} for {args.seconds}s ...", file=sys.stderr, flush=True)
            wrk(url, lua, 2, args.connections)  # warm-up, not counted
            results[name] = wrk(url, lua, args.seconds, args.connections)
    finally:
        for p in helpers:
            p.terminate()
            p.wait(10)

    print("waiting for the order pipeline to drain ...", file=sys.stderr, flush=True)
    flow = asyncio.run(pipeline(run))
    ceiling = results["bare FastAPI (ceiling)"]
    print(
        f"\n{'scenario':26} {'req/s':>8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} "
        f"{'errors':>7} {'rps/bare':>9} {'p99/bare':>9}"
    )
    for name, r in results.items():
        print(
            f"{name:26} {r['rps']:8.0f} {r['p50']:8.1f} {r['p95']:8.1f} {r['p99']:8.1f} "
            f"{int(r['errors'] + r['non2xx']):7d} {r['rps'] / ceiling['rps']:9.2f} "
            f"{r['p99'] / ceiling['p99']:9.1f}"
        )
    print(
        f"\norder pipeline: {flow['final']}/{flow['orders']} orders final, "
        f"{flow['per_second']:.0f} created->paid per second"
    )
    rss = stack_rss_mib()
    print(f"local stack resident memory: {rss:.0f} MiB")
    print(f"({args.connections} connections, {args.seconds}s per scenario, {os.cpu_count()} CPUs)")
    out = DATA / "bench" / f"{run}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps({"scenarios": results, "pipeline": flow, "rss_mib": rss, "args": vars(args)})
    )
    print(f"figures saved to {out}")


if __name__ == "__main__":
    main()
