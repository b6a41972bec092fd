"""The SLOs dashboard: each SLO's objective, attainment over 30 days, error budget left and
burn rates (the rules are slo_rules.py's)."""

from __future__ import annotations

from dashboards.boards.shared import lab_dashboard
from dashboards.grafana import (
    Dashboard,
    Row,
    stat,
    target,
    timeseries,
)
from dashboards.slo_rules import SLOS


def slos() -> Dashboard:
    sections = []
    for slo in SLOS:
        sel = f'{{slo="{slo.name}"}}'
        sections.append(
            Row(
                f"{slo.title}: {slo.description}",
                [
                    stat(
                        "Objective",
                        "Share of good events the SLO promises over 30 days.",
                        [target(f"slo:objective:ratio{sel}")],
                        unit="percentunit",
                        decimals=2,
                        w=4,
                        h=7,
                    ),
                    stat(
                        "Attained (30 days)",
                        "Share of good events over the last 30 days (or the data Prometheus has).",
                        [target(f"1 - slo:sli_error:ratio_rate30d{sel}")],
                        unit="percentunit",
                        decimals=3,
                        w=4,
                        h=7,
                    ),
                    stat(
                        "Error budget remaining",
                        "Share of the 30-day error budget not yet spent; below 0 the SLO is "
                        "missed.",
                        [target(f"slo:error_budget_remaining:ratio{sel}")],
                        unit="percentunit",
                        decimals=1,
                        thresholds=[("red", None), ("orange", 0), ("green", 0.25)],
                        w=4,
                        h=7,
                    ),
                    timeseries(
                        "Burn rate",
                        "Error ratio over the budget (1 = spending exactly the 30-day budget). "
                        "SLOErrorBudgetBurnFast pages when 1h and 5m both exceed 14.4, or 6h and "
                        "30m exceed 6; SLOErrorBudgetBurnSlow opens a ticket at 3 (1d and 2h) or "
                        "1 (3d and 6h).",
                        [
                            target(f"slo:sli_error:ratio_rate{w}{sel} / {slo.budget}", w)
                            for w in ("5m", "30m", "1h", "6h")
                        ],
                        thresholds=[("green", None), ("orange", 1), ("red", 6), ("dark-red", 14.4)],
                        legend_calcs=("lastNotNull", "max"),
                        w=12,
                        h=7,
                    ),
                ],
            )
        )
    return lab_dashboard(
        uid="perflab-slo",
        title="perflab / SLOs",
        description="Availability and latency SLOs of the gateway and the order pipeline: "
        "attainment, error budget and multi-window burn rates (rules in rules/slo.yml).",
        sections=sections,
        time_from="now-6h",
    )
