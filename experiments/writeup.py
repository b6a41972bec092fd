"""report.md of one results folder (with plots.py's plots), from its raw files alone (meta.json,
phases.json, history.csv, stats.json), so a report can be regenerated at any time:
`python -m experiments report DIR`; and a run's reference section in the experiment's README."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

from experiments import stats
from experiments.noise import DEFAULT_BAND, noise_bands, save_noise_bands
from experiments.plots import (
    arm_labels,
    focus,
    plot_distributions,
    plot_over_time,
    plot_percentiles,
    plot_usl,
)
from experiments.records import failures

REPO = Path(__file__).resolve().parents[1]
SIGNIFICANCE = 0.05  # of the rank test, for metrics without a ratio
GENERIC_LIMITS = (
    "The load generator (Locust), the four services, PostgreSQL, Redis and Kafka share one "
    "machine; absolute figures describe this machine under this sharing, not a production "
    "deployment. Other work on the machine adds noise, which the A B B A alternation spreads "
    "over all arms and cancels within pairs of rounds, but does not remove.",
    "A ratio is the geometric mean of the per-round ratios (each round runs every arm once), "
    "with a 95 % t-interval on their logarithms; an arm's own figure is the median of its "
    "phases with their range [min, max]. A ratio whose interval includes 1 means 'no "
    "difference shown', not 'no difference'; one inside the noise band is within what two "
    "identical configurations produce on this machine.",
    "Latency percentiles are the load-test runner's (HDR histograms, 3 significant digits; "
    "request latency without the schedule lag, which is reported as iteration_start_delay); "
    "CPU per request counts the four services' processes only, not PostgreSQL, Redis or Kafka.",
)


def fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    v = float(value)
    if math.isnan(v):
        return "-"
    if math.isinf(v):
        return "inf"
    if v != 0 and abs(v) < 0.01:
        return f"{v:.2e}"
    if abs(v) < 10:
        return f"{v:.3g}"
    if abs(v) < 1000:
        return f"{v:.1f}"
    return f"{v:,.0f}"


def interval_text(entry: dict[str, Any]) -> str:
    if entry.get("n", 0) == 0:
        return "-"
    return f"{fmt(entry['value'])} [{fmt(entry['low'])}, {fmt(entry['high'])}]"


def load_folder(out: Path) -> dict[str, Any]:
    history = []
    if (out / "history.csv").exists():
        with (out / "history.csv").open() as f:
            history = list(csv.DictReader(f))
    return {
        "meta": json.loads((out / "meta.json").read_text()),
        "phases": json.loads((out / "phases.json").read_text()),
        "stats": json.loads((out / "stats.json").read_text()),
        "history": history,
    }


def _ratio(entry: dict[str, Any]) -> stats.Interval:
    return stats.Interval(
        entry.get("value", math.nan),
        entry.get("low", math.nan),
        entry.get("high", math.nan),
        entry.get("n", 0),
    )


def conclusion(data: dict[str, Any], headline: list[str], bands: dict[str, float]) -> list[str]:
    """The verdicts the numbers support. A figure **differs** only when the 95 % interval of its
    paired ratio excludes 1 AND the effect is larger than the metric's noise band; for a
    figure with no ratio (a baseline of 0) when the exact rank test gives p < 0.05. Smoke
    runs and A/A runs give no verdict."""
    meta, st = data["meta"], data["stats"]
    if meta.get("smoke_run"):
        return ["smoke run: no conclusion"]
    if meta.get("aa"):
        return [
            "A/A run: both arms are the same configuration, so no verdict. The noise band of "
            "each metric (how far from 1 the A/A ratio's interval reaches) is saved to "
            "`noise.json`; a later A/B run calls a difference only beyond it:",
            "",
            *(
                f"- {entry['label']}: ±{fmt(bands[key] * 100)} %"
                for key, entry in st["metrics"].items()
                if key in bands
            ),
        ]
    labels = arm_labels(meta)
    lines = []
    for arm in [a["key"] for a in meta["arms"]][1:]:
        shown: list[str] = []
        unshown: list[str] = []
        within: list[str] = []
        for key in headline:
            entry = st["metrics"].get(key)
            if not entry:
                continue
            ratio = entry["ratios"].get(arm, {})
            a = entry["arms"][st["baseline"]]["value"]
            b = entry["arms"][arm]["value"]
            if math.isnan(a) or math.isnan(b) or a == b == 0:
                continue  # nothing to compare (e.g. a hit ratio without a cache)
            if ratio.get("n", 0) < 2 or math.isnan(ratio.get("low", math.nan)):
                # no ratio (a zero baseline): the exact rank test on the phases
                p = ratio.get("rank_p", math.nan)
                text = f"{entry['label']}: {fmt(a)} → {fmt(b)} (rank test p = {fmt(p)})"
                (shown if p < SIGNIFICANCE else unshown).append(text)
                continue
            band = bands.get(key, DEFAULT_BAND)
            text = (
                f"{entry['label']}: {fmt(a)} → {fmt(b)}, ratio {fmt(ratio['value'])} "
                f"[{fmt(ratio['low'])}, {fmt(ratio['high'])}]"
            )
            interval = _ratio(ratio)
            if stats.exceeds(interval, band):
                shown.append(text)
            elif interval.excludes(1.0):
                within.append(f"{text}, band ±{fmt(band * 100)} %")
            else:
                unshown.append(text)
        lines.append(f"**{labels[arm]}** compared with **{labels[st['baseline']]}**:")
        lines += [f"- differs: {t}" for t in shown] or ["- no headline figure differs clearly."]
        if within:
            lines.append("- interval excludes 1 but within the noise band: " + "; ".join(within))
        if unshown:
            lines.append("- no difference shown (interval includes 1): " + "; ".join(unshown))
    return lines


def write(out: Path, headline: list[str] | None = None, limits: list[str] | None = None) -> Path:
    data = load_folder(out)
    meta, st = data["meta"], data["stats"]
    if headline is None or limits is None:
        from experiments.framework import load

        try:
            experiment = load(meta["experiment"])
            headline = headline or list(experiment.headline)
            limits = limits if limits is not None else list(experiment.limits)
        except SystemExit:
            headline, limits = headline or ["throughput_rps", "p95_ms"], limits or []
    plots = {
        "percentiles.png": plot_percentiles,
        "over_time.png": plot_over_time,
        "distributions.png": plot_distributions,
    }
    if "usl" in (st.get("analysis") or {}).get("figures", {}):
        plots["usl.png"] = plot_usl
    for name, plot in plots.items():
        plot(data, out / name)
    arms = [a["key"] for a in meta["arms"]]
    labels = arm_labels(meta)
    lines = [f"# {meta['experiment']}: {meta['title']}", ""]
    lines += _aborted(meta, data)
    if meta["smoke_run"]:
        lines += [
            "> **SMOKE RUN** (`--quick`): shortened phases and fewer repetitions, to check that",
            "> the experiment works. These numbers are not a result.",
            "",
        ]
    if meta.get("aa"):
        lines += [
            "> **A/A RUN** (`--aa`): both arms are the baseline configuration; the run measures",
            "> each metric's noise band on this machine.",
            "",
        ]
    lines += _profiled(meta)
    m = meta["machine"]
    lines += [
        f"- **Question**: {meta['question']}",
        f"- **Hypothesis**: {meta['hypothesis']}",
        f"- **The one change**: {meta['change']}",
        "- **Arms**: " + "; ".join(labels[a] for a in arms),
        f"- **Schedule**: {' '.join(meta['schedule'])} (alternated), {_phase_shape(meta)}",
        f"- **Measured**: {meta['started_at']} to {meta['ended_at']} on `{m['hostname']}` "
        f"({m['cpus']} CPUs, {m.get('cpu_model', '?')}, {m.get('memory_gb', '?')} GB; load "
        f"average at start {', '.join(f'{x:.2f}' for x in m['load_average_at_start'])}), "
        f"git {meta['git']['revision'][:10]}{' (dirty)' if meta['git']['dirty'] else ''}, "
        f"target {meta['target']} (isolated copy of the stack)",
        "",
        "## Results",
        "",
        f"Each arm: median of its phases [min, max]. Ratio = arm / {st['baseline']}: geometric"
        f" mean of the per-round ratios [95 % t-interval], {st.get('rounds', '?')} rounds."
        f" Endpoint measured: `{focus(data)}`.",
        "",
    ]
    header = ["metric", *[labels[a] for a in arms], *[f"{a}/{st['baseline']}" for a in arms[1:]]]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for key, entry in st["metrics"].items():
        if all(entry["arms"][a].get("n", 0) == 0 for a in arms):
            continue
        cells = [entry["label"] if entry["label"] != key else f"`{key}`"]
        cells += [interval_text(entry["arms"][a]) for a in arms]
        cells += [interval_text(entry["ratios"][a]) for a in arms[1:]]
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "Raw data: `phases.json` / `phases.csv` (one row per phase), `history.csv` "
        "(per second), `meta.json` (configuration, machine, git), `stats.json`, and each "
        "phase's load-test folder under `phases/`.",
        "",
    ]
    for p in data["phases"]:
        if "failures" not in p and p.get("loadtest_dir"):
            folder = Path(p["loadtest_dir"])
            p["failures"] = failures(folder if folder.is_absolute() else REPO / folder)
    invalid = [p for p in data["phases"] if p.get("loadgen_valid") is False]
    if invalid:
        lines += [
            "### Phases the load generator could not carry",
            "",
            "The generator was saturated (its own CPU or event-loop lag) in these phases; their "
            "latencies include its queueing. Read their figures with care:",
            "",
            *(
                f"- phase {p['index'] + 1} ({p['arm']}{p['rep']}): generator CPU "
                f"{fmt((p.get('loadgen_cpu') or math.nan) * 100)} % of a core, start delay p95 "
                f"{fmt(p.get('start_delay_p95_ms'))} ms"
                for p in invalid
            ),
            "",
        ]
    failed = [p for p in data["phases"] if p.get("failures")]
    if failed:
        lines += ["### Failed requests", ""]
        lines += [
            "Read them before the table: a burst in one phase (for example while other "
            "work restarted the shared PostgreSQL or Redis) is not the arm's doing.",
            "",
        ]
        for p in failed:
            for f in p["failures"]:
                lines.append(
                    f"- phase {p['index'] + 1} ({p['arm']}{p['rep']}): {f.get('Occurrences')} x "
                    f"`{f.get('Method')} {f.get('Name')}` {f.get('Error')}, "
                    f"{f.get('First Seen')} to {f.get('Last Seen')}"
                )
        lines.append("")
    lines += ["## Plots", ""] + [f"![{n}]({n})" for n in plots] + [""]
    lines += flame_graphs(meta, out)
    if st.get("analysis"):
        lines += ["## Analysis", "", st["analysis"]["markdown"], ""]
    extra = (meta.get("context") or {}).get("report_markdown")
    if extra:
        lines += [extra, ""]
    bands, source = noise_bands(meta["experiment"], meta["target"])
    if meta.get("aa") and not meta["smoke_run"] and not meta.get("aborted"):
        bands = save_noise_bands(data, out)
        source = "bands measured by this run"
    lines += ["## Conclusion", ""]
    if not meta["smoke_run"] and not meta.get("aa"):
        lines += [
            "Rule: a figure differs only when the 95 % interval of its ratio excludes 1 and the"
            " effect is larger than its noise band; " + source + ".",
            "",
        ]
    lines += [*conclusion(data, headline, bands), ""]
    lines += ["## Limits", ""] + [f"- {t}" for t in [*limits, *GENERIC_LIMITS]] + [""]
    path = out / "report.md"
    path.write_text("\n".join(lines))
    return path


def _profiled(meta: dict[str, Any]) -> list[str]:
    """The banner of a profiled run (`--profile`), in the report and in the README section."""
    if not meta.get("profiled"):
        return []
    return [
        "> **PROFILED RUN** (`--profile`): py-spy sampled every service during the measured",
        "> phases. It samples from outside the processes but takes CPU of its own on this",
        "> machine, so these figures are not comparable with an unprofiled run's.",
        "",
    ]


def flame_graphs(meta: dict[str, Any], out: Path) -> list[str]:
    """The section linking each phase's flame graphs (those whose file is in the folder)."""
    if not meta.get("profiled"):
        return []
    recorded: dict[str, dict[str, str]] = meta.get("profiles") or {}
    services = list(dict.fromkeys(s for phase in recorded.values() for s in phase))
    lines = [
        "## Flame graphs",
        "",
        f"py-spy at {meta.get('profile_rate_hz', '?')} Hz (`--nonblocking`), one per service "
        "during each phase's measured window (not the warm-up). Open them in a browser.",
        "",
    ]
    if services:
        lines += ["| phase | " + " | ".join(services) + " |", "|" + "---|" * (len(services) + 1)]
        for tag in sorted(recorded):
            cells = [
                f"[flame graph]({path})"
                if (path := recorded[tag].get(s)) and (out / path).exists()
                else "-"
                for s in services
            ]
            lines.append(f"| {tag} | " + " | ".join(cells) + " |")
    else:
        lines.append("No flame graph was recorded.")
    failures = meta.get("profile_failures") or []
    if failures:
        lines += ["", "Profiles that could not be recorded:", ""]
        lines += [f"- {reason}" for reason in failures]
    return [*lines, ""]


def _aborted(meta: dict[str, Any], data: dict[str, Any]) -> list[str]:
    """The banner of a run that stopped early, in the report and in the README section."""
    if not meta.get("aborted"):
        return []
    return [
        f"> **ABORTED** after {len(data['phases'])} of {len(meta['schedule'])} phases: "
        f"{meta['aborted']}. Partial data; not a result.",
        "",
    ]


def _phase_shape(meta: dict[str, Any]) -> str:
    shapes = []
    for arm in meta["arms"]:
        load = arm["load"]
        if load["executor"] == "constant-arrival-rate":
            shape = f"open loop {load['rate']:g} it/s for {load['duration']}"
        else:
            shape = f"closed loop {load['vus']} VUs for {load['duration']}"
        if shape not in shapes:
            shapes.append(shape)
    warmups = {arm.get("warmup_s") for arm in meta["arms"]}
    if warmups == {0} or warmups == {0.0}:
        return "each phase " + ", ".join(shapes) + ", without warm-up (a cold start)"
    return "each phase " + ", ".join(shapes) + ", after an unmeasured warm-up"


# --- README reference section -------------------------------------------------------------

START, END = "<!-- reference-run:start -->", "<!-- reference-run:end -->"


def reference_section(out: Path, readme_dir: Path) -> str:
    data = load_folder(out)
    meta = data["meta"]
    report_md = (out / "report.md").read_text()
    results = report_md.split("## Results", 1)[1].split("## Plots", 1)[0].strip()
    results = results.split("\n\nRaw data:", 1)[0]
    conclusion_md = report_md.split("## Conclusion", 1)[1].split("## Limits", 1)[0].strip()
    if "## Analysis" in report_md:
        analysis = report_md.split("## Analysis", 1)[1].split("\n## ", 1)[0].strip()
        conclusion_md = f"{analysis}\n\n{conclusion_md}"
    rel = out.relative_to(readme_dir) if out.is_relative_to(readme_dir) else out
    m = meta["machine"]
    lines = [
        START,
        "<!-- generated by `python -m experiments refresh-readme "
        f"{meta['experiment']}`; do not edit by hand -->",
        "",
    ]
    lines += _aborted(meta, data)
    lines += _profiled(meta)
    if meta["smoke_run"]:
        lines += [
            "> **SMOKE RUN** (`--quick`): the only run so far is a shortened one; these "
            "figures show the experiment works, they are not a result.",
            "",
        ]
    lines += [
        f"Measured {meta['started_at']} on `{m['hostname']}` ({m['cpus']} CPUs, "
        f"{m.get('cpu_model', '?')}, load average at start "
        f"{', '.join(f'{x:.2f}' for x in m['load_average_at_start'])}), git "
        f"{meta['git']['revision'][:10]}{' (dirty)' if meta['git']['dirty'] else ''}; "
        f"schedule {' '.join(meta['schedule'])}, {_phase_shape(meta)}. Full report: "
        f"`{rel}/report.md` (results folders are not committed).",
        "",
        results,
        "",
        conclusion_md,
        "",
        END,
    ]
    return "\n".join(lines)


def refresh_readme(readme: Path, out: Path) -> None:
    text = readme.read_text()
    section = reference_section(out, readme.parent)
    if START in text and END in text:
        head, rest = text.split(START, 1)
        tail = rest.split(END, 1)[1]
        text = head + section + tail
    else:
        text = text.rstrip() + "\n\n## Reference run\n\n" + section + "\n"
    readme.write_text(text)
