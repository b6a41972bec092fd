"""The end-of-run summary: a k6-like text table rendered from the same dict that is saved as
summary.json, so what a person reads and what later tooling compares cannot disagree.

Pure Python (no Locust).
"""

from __future__ import annotations

from typing import Any

PASS, FAIL = "PASS", "FAIL"


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    if value >= 10000:
        return f"{value / 1000:.1f}s"
    if value >= 1000:
        return f"{value / 1000:.2f}s"
    return f"{value:.0f}ms" if value >= 10 else f"{value:.1f}ms"


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

    headers = ["endpoint", "reqs", "rate/s", "failed", "p50", "p90", "p95", "p99", "max"]
    rows = []
    for row in [*summary["endpoints"], summary["total"]]:
        label = "TOTAL" if row is summary["total"] else f"{row['method']} {row['name']}"
        rows.append(
            [
                label,
                str(row["requests"]),
                f"{row['rate']:.1f}",
                f"{row['failure_rate'] * 100:.2f}%",
                *(_ms(row[k]) for k in ("p50", "p90", "p95", "p99", "max")),
            ]
        )
    out += ["  " + line for line in _table(headers, rows, right=set(range(1, 9)))]
    out.append("")

    iterations = (
        f"  iterations {load['iterations']} ({load['iterations_per_s']:.2f}/s)"
        f"  dropped {load['dropped_iterations']}  interrupted {load['interrupted_iterations']}"
        f"  VUs max {load['vus_max_used']}"
    )
    if load.get("target_peak") is not None:
        iterations += f"  peak target {load['target_peak']:g} {load['unit']}"
    out.append(iterations)
    for check in summary["checks"]:
        total = check["passes"] + check["fails"]
        mark = "ok  " if check["fails"] == 0 else "FAIL"
        out.append(f"  check {mark} {check['name']}: {check['passes']}/{total} passed")

    if summary.get("breaking_point"):
        bp = summary["breaking_point"]
        out += [
            "",
            f"  breaking point at {bp['elapsed_s']:.0f}s, stage {bp['stage']}:"
            f" target {bp['target']:.1f} {bp['unit']},"
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
    if failed:
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
