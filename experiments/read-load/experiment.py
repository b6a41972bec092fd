"""read-load: catalog reads against rising concurrency; fit of the Universal Scalability Law."""

import math
from typing import Any

from experiments import stats
from experiments.framework import Arm, Experiment, LoadProfile
from experiments.writeup import fmt

LEVELS = (1, 2, 4, 8, 16, 32)
SERVICES = ("gateway", "orders")


def cores(record: dict[str, Any], service: str) -> float:
    seconds = float(record["ended_at"]) - float(record["started_at"])
    used = (record.get("cpu_seconds_by_service") or {}).get(service)
    return float(used) / seconds if used is not None and seconds > 0 else math.nan


def closed_loop(vus: int) -> LoadProfile:
    return LoadProfile(
        journeys={"product": 1},
        executor="constant-vus",
        vus=vus,
        duration_s=20,
        warmup_s=3,
        focus="/api/products/{id}",
    )


def analysis(result: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    records = result["records"]
    n = [float(r["x"]) for r in records]
    x = [float(r["throughput_rps"] or math.nan) for r in records]
    lines = []
    figures: dict[str, Any] = {}
    try:
        fit = stats.fit_usl(n, x)
    except ValueError as exc:
        return f"No USL fit: {exc}.", figures
    figures["usl"] = {"n": n, "x": x, **fit.as_dict()}
    peak_n, peak_x = fit.peak_concurrency, fit.peak_throughput
    lines.append(
        f"USL fit on {len(n)} phases: lambda = {fmt(fit.lambda_)} req/s per client, "
        f"sigma (contention) = {fit.sigma:.4f}, kappa (coherency) = {fit.kappa:.2e}, "
        f"R² = {fit.r2:.3f}."
    )
    if math.isinf(peak_n) or peak_n > 1e4:
        lines.append(
            f"No retrograde region (kappa about 0): throughput approaches lambda/sigma = "
            f"{fmt(peak_x)} req/s as clients are added, without a peak."
        )
    else:
        lines.append(
            f"Predicted peak: {fmt(peak_x)} req/s at N ≈ {fmt(peak_n)} concurrent clients"
            + (" (beyond the measured range: an extrapolation)." if peak_n > max(n) else ".")
        )
    if fit.r2 < 0.8:
        lines.append(
            f"**The fit is poor (R² {fit.r2:.2f})**: the USL does not describe these "
            "measurements well (noise from other work on the machine, or a load generator "
            "short of CPU); its parameters and peak are not reliable."
        )
    lines += [
        "",
        "| VUs | throughput req/s (median) | p95 ms (median) | host CPU % (median) "
        "| gateway cores | orders cores |",
        "|---|---|---|---|---|---|",
    ]
    base_p95 = None
    breaks = None
    top_gateway = 0.0
    for level in sorted(set(n)):
        rows = [r for r in records if float(r["x"]) == level]
        p95 = stats.percentile([r["p95_ms"] for r in rows], 50)
        thr = stats.percentile([r["throughput_rps"] for r in rows], 50)
        cpu = stats.percentile([r["host_cpu_percent"] for r in rows], 50)
        gateway, orders = (stats.percentile([cores(r, s) for r in rows], 50) for s in SERVICES)
        top_gateway = max(top_gateway, gateway)
        base_p95 = p95 if base_p95 is None else base_p95
        if breaks is None and base_p95 and p95 > 3 * base_p95:
            breaks = level
        lines.append(
            f"| {int(level)} | {fmt(thr)} | {fmt(p95)} | {fmt(cpu)} | {fmt(gateway)} "
            f"| {fmt(orders)} |"
        )
    lines.append("")
    lines.append(
        f"p95 first exceeds 3x its single-client value at {int(breaks)} VUs."
        if breaks
        else "p95 stays within 3x its single-client value over the measured range."
    )
    if top_gateway > 0.6:
        lines.append(
            f"The gateway reaches {fmt(top_gateway)} cores: it is one Python process (one event "
            "loop) and cannot use more than one core, so with most reads served from Redis it "
            "is the first ceiling, even while the host still has idle CPU. A second gateway "
            "replica (the HPA on the cluster) raises it; the load generator is one process too "
            "and shares the same two cores."
        )
    lines.append(
        "Why: when the host CPU column approaches 100 % the machine (services, Redis, "
        "PostgreSQL and the load generator together) is the limit, and added clients only "
        "queue: that is the contention term sigma; a positive kappa (retrograde throughput) "
        "points at crosstalk such as lock or cache-line contention, or scheduler thrash."
    )
    return "\n".join(lines), figures


EXPERIMENT = Experiment(
    name="read-load",
    targets=("local", "kind"),
    title="catalog reads under rising concurrency (USL)",
    question="How far do product reads scale with concurrent clients before latency breaks, "
    "where does throughput peak, and why?",
    hypothesis="Throughput rises almost linearly at low concurrency and flattens once the "
    "2 CPUs are busy (sigma > 0); latency then grows with every added client (Little's law).",
    change="the number of closed-loop clients (1, 2, 4, 8, 16, 32); same configuration",
    arms=[Arm(f"N{v}", f"{v} VUs", load=closed_loop(v), x=v) for v in LEVELS],
    services=("orders", "gateway"),  # reads only: no Kafka, worker or payments
    base_env={"gateway": {"RATE_LIMIT_ENABLED": "false"}},
    load=closed_loop(1),
    quick_load=LoadProfile(
        journeys={"product": 1},
        executor="constant-vus",
        duration_s=8,
        warmup_s=2,
        focus="/api/products/{id}",
    ),
    analysis=analysis,
    headline=("throughput_rps", "p50_ms", "p95_ms"),
    limits=(
        "Closed loop without think time: each client sends its next request as soon as the "
        "previous one returns; that is right for throughput vs concurrency, but its latencies "
        "are not what users at a given arrival rate see.",
        "The load generator runs on the same 2 CPUs and takes a growing share of them as "
        "concurrency rises: the fitted peak is the peak of this machine with its generator.",
        "The cache is on (the default): the measured path is gateway + Redis for most reads.",
    ),
)
