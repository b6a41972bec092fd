"""The SLOs (SLI = bad events over all events) and the Prometheus rules made from them:
the error ratio over the burn-rate alerts' windows, the 30-day attainment and error budget,
and multi-window, multi-burn-rate alerts."""

from __future__ import annotations

from dataclasses import dataclass

from dashboards.promql import with_zero


@dataclass(frozen=True)
class Slo:
    """An SLO whose SLI is bad events over all events. `errors` and `total` are PromQL rates with
    `$w` for the window."""

    name: str
    title: str
    objective: float
    description: str
    errors: str
    total: str

    @property
    def budget(self) -> float:
        return round(1 - self.objective, 10)


def availability(selector: str, bad: str) -> tuple[str, str]:
    """(errors, total) for `selector` events of which `bad` (extra matchers) are errors."""
    base = selector.rstrip("}")
    total = f"sum(rate({selector}[$w]))"
    return with_zero(f"sum(rate({base}, {bad}}}[$w]))", total), total


def latency(histogram: str, matchers: str, le: str) -> tuple[str, str]:
    """(errors, total) for events of `histogram` slower than the bucket `le`."""
    total = f"sum(rate({histogram}_count{{{matchers}}}[$w]))"
    return f'({total} - sum(rate({histogram}_bucket{{{matchers}, le="{le}"}}[$w])))', total


SLOS = [
    Slo(
        "gateway-availability",
        "Gateway availability",
        0.995,
        "99.5% of API requests answer without a server error (5xx).",
        *availability('http_requests_total{job="gateway"}', 'status=~"5.."'),
    ),
    Slo(
        "gateway-latency",
        "Gateway latency",
        0.99,
        "99% of API requests are answered within 250 ms.",
        *latency("http_request_duration_highr_seconds", 'job="gateway"', "0.25"),
    ),
    Slo(
        "pipeline-availability",
        "Order pipeline availability",
        0.995,
        "99.5% of order events are processed, not dead-lettered.",
        # A dead-lettered message was consumed too: errors over consumed.
        with_zero(
            'sum(rate(messages_dead_lettered_total{job="worker"}[$w]))',
            'sum(rate(messaging_client_consumed_messages_total{job="worker"}[$w]))',
        ),
        'sum(rate(messaging_client_consumed_messages_total{job="worker"}[$w]))',
    ),
    Slo(
        "pipeline-latency",
        "Order pipeline latency",
        0.99,
        "99% of orders reach a final status (PAID or PAYMENT_FAILED) within 5 s of creation.",
        *latency("order_completion_duration_seconds", 'job="orders"', "5.0"),
    ),
]
# Multi-window, multi-burn-rate alerts (Google SRE workbook, "Alerting on SLOs", table 5-8):
# (severity, long window, short window, burn rate) for a 30-day budget.
BURN_ALERTS: dict[str, tuple[str, str, list[tuple[str, str, float]]]] = {
    "SLOErrorBudgetBurnFast": ("page", "2m", [("1h", "5m", 14.4), ("6h", "30m", 6)]),
    "SLOErrorBudgetBurnSlow": ("ticket", "15m", [("1d", "2h", 3), ("3d", "6h", 1)]),
}
WINDOWS = ("5m", "30m", "1h", "2h", "6h", "1d", "3d")


def slo_rules() -> dict:
    groups = []
    for slo in SLOS:
        label = {"slo": slo.name}
        sel = f'{{slo="{slo.name}"}}'
        rules: list[dict] = [
            {"record": "slo:objective:ratio", "expr": f"vector({slo.objective})", "labels": label},
            {
                "record": "slo:sli_errors:rate5m",
                "expr": slo.errors.replace("$w", "5m"),
                "labels": label,
            },
            {
                "record": "slo:sli_requests:rate5m",
                "expr": slo.total.replace("$w", "5m"),
                "labels": label,
            },
        ]
        for w in WINDOWS:
            expr = f"{slo.errors.replace('$w', w)}\n/\n{slo.total.replace('$w', w)}"
            rules.append({"record": f"slo:sli_error:ratio_rate{w}", "expr": expr, "labels": label})
        rules += [
            {
                "record": "slo:sli_error:ratio_rate30d",
                "expr": f"sum_over_time(slo:sli_errors:rate5m{sel}[30d])\n"
                f"/\nsum_over_time(slo:sli_requests:rate5m{sel}[30d])",
                "labels": label,
            },
            {
                "record": "slo:error_budget_remaining:ratio",
                "expr": f"1 - slo:sli_error:ratio_rate30d{sel} / {slo.budget}",
                "labels": label,
            },
        ]
        for alert, (severity, for_, pairs) in BURN_ALERTS.items():
            conditions = [
                f"(\n  slo:sli_error:ratio_rate{long}{sel} > {burn} * {slo.budget}\n"
                f"  and\n  slo:sli_error:ratio_rate{short}{sel} > {burn} * {slo.budget}\n)"
                for long, short, burn in pairs
            ]
            windows = " or ".join(
                f"{burn} over both {long} and {short}" for long, short, burn in pairs
            )
            rules.append(
                {
                    "alert": alert,
                    "expr": "\nor\n".join(conditions),
                    "for": for_,
                    "labels": {"severity": severity, **label},
                    "annotations": {
                        "summary": f"{slo.title}: error budget burning ({severity})",
                        "description": f"SLO: {slo.description} The error ratio is "
                        "{{ $value | humanizePercentage }}; the burn rate (error ratio over the "
                        f"{slo.budget:.1%} budget) exceeds {windows}.",
                    },
                }
            )
        groups.append({"name": f"perflab-slo-{slo.name}", "interval": "30s", "rules": rules})
    return {"groups": groups}
