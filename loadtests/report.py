"""The end-of-run summary: a k6-like text table rendered from the same dict that is saved as
summary.json, so what a person reads and what later tooling compares cannot disagree.

Pure Python (no Locust).
"""

from __future__ import annotations

from typing import Any

PASS, FAIL = "PASS", "FAIL"


RED, RESET = "\033[31m", "\033[0m"


def ms(value: float | None) -> str:
    """A duration in milliseconds, short."""
    if value is None:
        return "-"
    if value >= 10000:
        return f"{value / 1000:.1f}s"
    if value >= 1000:
        return f"{value / 1000:.2f}s"
    return f"{value:.0f}ms" if value >= 10 else f"{value:.1f}ms"


def _bytes(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:.0f}{unit}" if unit == "B" else f"{n:.1f}{unit}"
        n /= 1000
    return f"{n:.1f}GB"


def _table(headers: list[str], rows: list[list[str]], right: set[int]) -> list[str]:
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=True)]

    def line(cells: list[str]) -> str:
        return "  ".join(
            str(cell).rjust(width) if index in right else str(cell).ljust(width)
            for index, (cell, width) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    return [line(headers), line(["-" * w for w in widths]), *(line(row) for row in rows)]


def render(summary: dict[str, Any]) -> str:
    """The summary table printed at the end of a run."""
    scenario, run, load = summary["scenario"], summary["run"], summary["load"]
    title = scenario["name"] + (f" ({scenario['variant']})" if scenario.get("variant") else "")
    out = [
        "",
        f"  scenario   {title}  [{scenario['executor']}]  {scenario['source']}",
        f"  target     {summary['target']}",
        f"  duration   {run['duration_s']:.1f}s"
        + (f"  ABORTED: {run['abort_reason']}" if run.get("aborted") else ""),
        "",
    ]

    trend_keys = ("min", "med", "avg", "p90", "p95", "p99", "max")
    headers = ["endpoint", "reqs", "rate/s", "failed", *trend_keys]
    rows = []
    for row in [*summary["endpoints"], summary["total"]]:
        label = "TOTAL" if row is summary["total"] else f"{row['method']} {row['name']}"
        rows.append(
            [
                label,
                str(row["requests"]),
                f"{row['rate']:.1f}",
                f"{row['failure_rate'] * 100:.2f}%",
                *(ms(row.get(k)) for k in trend_keys),
            ]
        )
    out += ["  " + line for line in _table(headers, rows, right=set(range(1, len(headers))))]
    out.append("")

    scenarios = summary.get("scenarios") or []
    if len(scenarios) > 1:
        headers = ["scenario", "executor", "start", "for", "iters", "iters/s", "dropped", "reqs"]
        headers += ["failed", "med", "p95", "p99", "max"]
        rows = [
            [
                w["name"],
                w["executor"],
                f"{w['start_s']:g}s",
                f"{w['duration_s']:g}s",
                str(w["iterations"]),
                f"{w['iterations_per_s']:.1f}",
                str(w["dropped_iterations"]),
                str(w["total"]["requests"]),
                f"{w['total']['failure_rate'] * 100:.2f}%",
                *(ms(w["total"].get(k)) for k in ("med", "p95", "p99", "max")),
            ]
            for w in scenarios
        ]
        out += ["  " + line for line in _table(headers, rows, right=set(range(2, len(headers))))]
        out.append("")

    iterations = (
        f"  iterations {load['iterations']} ({load['iterations_per_s']:.2f}/s)"
        f"  dropped {load['dropped_iterations']}  interrupted {load['interrupted_iterations']}"
        f"  VUs max {load['vus_max_used']}"
    )
    if load.get("target_peak") is not None:
        iterations += f"  peak target {load['target_peak']:g} {load['unit']}"
    out.append(iterations)
    for label, key in (
        ("iteration_duration", "iteration_duration"),
        ("iteration_start_delay", "iteration_start_delay"),
    ):
        t = load.get(key) or {}
        if t.get("max") is not None:
            out.append(
                f"  {label:<21} med {ms(t['med'])}  p95 {ms(t['p95'])}  p99 {ms(t['p99'])}"
                f"  max {ms(t['max'])}"
            )
    drain = summary.get("drain")
    if drain:
        out.append(
            f"  schedule   {run.get('schedule_s', run['duration_s']):.1f}s (rates are over it)"
            f"  drain {drain['seconds']:.1f}s: {drain['requests']} requests,"
            f" {drain['iterations_finished']} iterations finished"
        )
    data = summary.get("data")
    if data:
        out.append(
            f"  data_sent  {_bytes(data['sent'])} ({_bytes(data['sent_per_s'])}/s)"
            f"  data_received {_bytes(data['received'])} ({_bytes(data['received_per_s'])}/s)"
        )
    generator = summary.get("generator")
    if generator and generator.get("cpu_avg") is not None:
        out.append(
            f"  generator  CPU avg {generator['cpu_avg']:.0%} max {generator['cpu_max']:.0%}"
            f" of a core, saturated {generator['saturated_s']:.0f}/{generator['seconds']:.0f}s,"
            f" event-loop lag p50 {ms(generator['loop_lag_p50_ms'])}"
            f" p99 {ms(generator['loop_lag_p99_ms'])} max {ms(generator['loop_lag_max_ms'])}"
        )
    for check in summary["checks"]:
        total = check["passes"] + check["fails"]
        mark = "ok  " if check["fails"] == 0 else "FAIL"
        out.append(f"  check {mark} {check['name']}: {check['passes']}/{total} passed")

    if summary.get("breaking_point"):
        bp = summary["breaking_point"]
        where = (
            f", stage {bp['stage']}: target {bp['target']:.1f} {bp['unit']},"
            if bp.get("stage") is not None
            else ":"
        )
        out += [
            "",
            f"  breaking point at {bp['elapsed_s']:.0f}s{where}"
            f" achieved {bp['achieved_iterations_per_s']:.1f} iters/s,"
            f" {bp['requests_per_s']:.1f} req/s"
            f" ({bp['threshold']} was {bp['observed']})",
        ]

    out += ["", "  thresholds"]
    if not summary["thresholds"]:
        out.append("    (none)")
    for result in summary["thresholds"]:
        verdict = PASS if result["ok"] else FAIL
        abort = " (abortOnFail)" if result["abort_on_fail"] else ""
        out.append(
            f"    {verdict}  {result['metric']}  {result['condition']}"
            f"  observed {result['observed']}{abort}"
        )
    failed = sum(not r["ok"] for r in summary["thresholds"])
    if generator and not generator["valid"]:
        out += [
            "",
            f"  {RED}INVALID: the load generator was saturated ({generator['rule']});"
            f" its latencies include its own queueing. Use more generator processes"
            f" (Locust workers) or a lower rate.{RESET}",
        ]
    if generator and not generator["valid"]:
        verdict = "INVALID (generator saturated)"
    elif failed:
        verdict = f"FAILED: {failed} threshold(s) crossed"
    elif run.get("aborted"):
        verdict = "ABORTED"
    else:
        verdict = "PASSED"
    out += ["", f"  result     {verdict}"]
    if summary.get("artifacts", {}).get("dir"):
        out.append(f"  results    {summary['artifacts']['dir']}")
    out.append("")
    return "\n".join(out)
