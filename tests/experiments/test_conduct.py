"""One experiment conducted against a fake target and a fake load generator (no stack): the
order of the phases, when the hooks, environments and faults are applied, what the run
leaves in its folder, and its flame graphs with --profile (a fake py-spy)."""

import contextlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from experiments import __main__ as cli
from experiments import conduct, framework
from experiments.framework import Arm, Experiment, LoadProfile, Target
from experiments.loadgen import LoadResult
from experiments.phase_metrics import Snapshot
from experiments.profiles import Profiler
from perflab.dev.profiling import ProfileFailed

P95_MS = {"A": 100.0, "B": 50.0}  # what the fake load generator measures in each arm


class FakeScraper:
    def __init__(self) -> None:
        self.series: list[Snapshot] = []
        self.cpu = 0.0

    def snapshot(self) -> Snapshot:
        self.cpu += 1.0
        return Snapshot(
            time.time(), {"gateway": {("process_cpu_seconds_total", frozenset()): self.cpu}}
        )

    def __enter__(self) -> "FakeScraper":
        return self

    def __exit__(self, *exc: object) -> None:
        pass


class FakeTarget:
    """What a target offers the run, recording what was done to it."""

    gateway_url = "http://gateway.invalid"

    def __init__(self, experiment: Experiment, quick: bool, out_dir: Path) -> None:
        self.experiment = experiment
        self.quick = quick
        self.out_dir = out_dir
        self.data: dict[str, Any] = {}
        self.scraper = FakeScraper()
        self.env: dict[str, dict[str, str]] = {}
        self.calls: list[tuple[Any, ...]] = []

    def sql(self, statement: str, *args: Any, database: str = "orders") -> list[dict[str, Any]]:
        return [{"n": 0}]

    def set_fault(self, name: str, value: float) -> None:
        self.calls.append(("fault", name, value))

    def flush_cache(self) -> int:
        return 0

    def apply_env(self, env: dict[str, dict[str, str]]) -> list[str]:
        changed = sorted(s for s in set(env) | set(self.env) if env.get(s) != self.env.get(s))
        self.env = env
        self.calls.append(("env", env))
        return changed

    def pg_stats(self) -> dict[str, float]:
        return {"xact_commit": 10.0 * len(self.calls)}

    def pids(self) -> dict[str, int]:
        return {"gateway": 101, "orders": 102}


def hook(name: str) -> Any:
    def record(ctx: Target) -> None:
        assert isinstance(ctx, FakeTarget)
        ctx.calls.append((name,))
        ctx.data.setdefault("hooks", []).append(name)

    return record


def experiment() -> Experiment:
    return Experiment(
        name="synthetic",
        title="a synthetic A/B",
        question="Does B halve the latency?",
        hypothesis="Yes.",
        change="a flag",
        arms=[
            Arm("A", "flag off", enter=hook("enter A"), before_phase=hook("phase A")),
            Arm(
                "B",
                "flag on",
                env={"gateway": {"FLAG": "1"}},
                faults={"slow": 0.5},
                enter=hook("enter B"),
                before_phase=hook("phase B"),
            ),
        ],
        load=LoadProfile(journeys={"product": 1}, rate=10, duration_s=5, warmup_s=1, focus="/x"),
        reps=2,
        base_env={"gateway": {"BASE": "yes"}},
        setup=hook("setup"),
        teardown=hook("teardown"),
        resources=lambda pm: {"gateway_cpu_s": pm.delta("gateway", "process_cpu_seconds_total")},
    )


@pytest.fixture
def target(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[FakeTarget]]:
    made: list[FakeTarget] = []
    loads: list[str] = []

    @contextlib.contextmanager
    def target_context(e: Experiment, target: str, quick: bool, out: Path) -> Iterator[FakeTarget]:
        made.append(FakeTarget(e, quick, out))
        yield made[-1]

    def run_load(
        profile: LoadProfile,
        url: str,
        out: Path,
        name: str,
        duration_s: float,
        env: dict[str, str] | None = None,
        echo: bool = True,
    ) -> LoadResult:
        out.mkdir(parents=True)
        loads.append(name)
        made[-1].calls.append(("load", name))
        arm = name.split("-")[2][0]  # synthetic-01-A1[-warmup]
        row = {"name": "/x", "rate": 10.0, "failure_rate": 0.0, "requests": 50}
        row |= {"p50": P95_MS[arm] / 2, "p95": P95_MS[arm], "p99": P95_MS[arm] * 2, "max": 500}
        summary = {
            "endpoints": [row],
            "total": row | {"name": "TOTAL"},
            "load": {"dropped_iterations": 0, "iteration_start_delay": {"p95": 1.0}},
            "run": {"valid": True},
            "generator": {"cpu_avg": 0.1},
            "checks": [],
        }
        history = [  # as history.csv has them: strings
            {"elapsed_s": str(s), "requests": str(10 * s), "p95_ms": str(P95_MS[arm])}
            for s in (1, 2, 3)
        ]
        return LoadResult(summary, history, 0, out)

    monkeypatch.setattr(conduct, "target_context", target_context)
    monkeypatch.setattr(conduct, "run_load", run_load)
    monkeypatch.setattr(framework, "load", lambda name: experiment())
    yield made


def test_the_arms_alternate_and_each_phase_is_measured_after_its_warm_up(
    target: list[FakeTarget], tmp_path: Path
) -> None:
    out = conduct.run("synthetic", "local", quick=False, out_root=tmp_path)
    assert out is not None
    meta = json.loads((out / "meta.json").read_text())
    assert meta["schedule"] == ["A1", "B1", "B2", "A2"]
    phases = json.loads((out / "phases.json").read_text())
    assert [(p["arm"], p["rep"]) for p in phases] == [("A", 1), ("B", 1), ("B", 2), ("A", 2)]
    assert [p["p95_ms"] for p in phases] == [100.0, 50.0, 50.0, 100.0]
    assert all(p["resources"]["gateway_cpu_s"] > 0 for p in phases)
    loads = [c[1] for c in target[0].calls if c[0] == "load"]
    assert loads == [
        f"synthetic-{tag}{suffix}"
        for tag in ("01-A1", "02-B1", "03-B2", "04-A2")
        for suffix in ("-warmup", "")
    ]


def test_hooks_environments_and_faults_follow_the_arms(
    target: list[FakeTarget], tmp_path: Path
) -> None:
    out = conduct.run("synthetic", "local", quick=False, out_root=tmp_path)
    assert out is not None
    steps = [c for c in target[0].calls if c[0] != "load"]
    a_env = {"gateway": {"BASE": "yes"}}
    b_env = {"gateway": {"BASE": "yes", "FLAG": "1"}}
    assert steps == [
        ("setup",),
        ("env", a_env), ("fault", "slow", 0.0), ("enter A",), ("phase A",),
        ("env", b_env), ("fault", "slow", 0.5), ("enter B",), ("phase B",),
        ("phase B",),
        ("env", a_env), ("fault", "slow", 0.0), ("enter A",), ("phase A",),
        ("teardown",),
    ]  # fmt: skip
    meta = json.loads((out / "meta.json").read_text())
    assert meta["context"]["hooks"][0] == "setup"
    assert [a["env"] for a in meta["arms"]] == [a_env, b_env]


def test_the_run_leaves_its_statistics_and_report(target: list[FakeTarget], tmp_path: Path) -> None:
    out = conduct.run("synthetic", "local", quick=False, out_root=tmp_path)
    assert out is not None
    stats = json.loads((out / "stats.json").read_text())
    assert stats["metrics"]["p95_ms"]["ratios"]["B"]["value"] == pytest.approx(0.5)
    assert "## Conclusion" in (out / "report.md").read_text()
    header = (out / "history.csv").read_text().splitlines()[0]
    assert header == "phase,arm,rep,elapsed_s,requests,p95_ms"
    # the same figures again from the raw files alone
    (out / "stats.json").unlink()
    conduct.recompute(out)
    assert json.loads((out / "stats.json").read_text()) == stats


def test_an_interrupted_run_keeps_what_it_measured(
    target: list[FakeTarget], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    measured = conduct.measure_phase

    def measure_two(*args: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        if args[3].index == 2:
            raise KeyboardInterrupt
        return measured(*args)

    monkeypatch.setattr(conduct, "measure_phase", measure_two)
    with pytest.raises(KeyboardInterrupt):
        conduct.run("synthetic", "local", quick=False, out_root=tmp_path)
    (out,) = tmp_path.iterdir()
    meta = json.loads((out / "meta.json").read_text())
    assert meta["aborted"] == "KeyboardInterrupt: "
    assert len(json.loads((out / "phases.json").read_text())) == 2
    assert target[0].calls[-1] == ("teardown",)


class FakePySpy:
    """perflab.dev.profiling's record and collect: writes the profile when collected; `fail`
    maps a pid to the reason py-spy gives for it."""

    def __init__(self, target: list[FakeTarget], fail: dict[int, str] | None = None) -> None:
        self.target = target
        self.fail = fail or {}

    def record(self, pid: int, seconds: int, out: Path, fmt: str, rate: int) -> Any:
        self.target[-1].calls.append(("profile", pid, seconds, rate))
        return pid

    def collect(self, pid: Any, out: Path) -> Path:
        if pid in self.fail:
            raise ProfileFailed(self.fail[pid])
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text("<svg/>")
        return out


def test_a_profiled_run_links_a_flame_graph_per_service_and_phase(
    target: list[FakeTarget], tmp_path: Path
) -> None:
    spy = FakePySpy(target)
    profiler = Profiler(record=spy.record, collect=spy.collect)
    out = conduct.run("synthetic", "local", quick=False, out_root=tmp_path, profiler=profiler)
    assert out is not None
    # each service profiled for the measured window at 100 Hz, after the warm-up
    first = [c[:2] for c in target[0].calls if c[0] in ("load", "profile")][:4]
    assert first == [
        ("load", "synthetic-01-A1-warmup"),
        ("profile", 101),
        ("profile", 102),
        ("load", "synthetic-01-A1"),
    ]
    assert {c[2:] for c in target[0].calls if c[0] == "profile"} == {(5, 100)}
    meta = json.loads((out / "meta.json").read_text())
    assert meta["profiled"] is True
    assert meta["profiles"]["03-B2"] == {
        "gateway": "phases/03-B2/profiles/gateway.svg",
        "orders": "phases/03-B2/profiles/orders.svg",
    }
    assert sorted(meta["profiles"]) == ["01-A1", "02-B1", "03-B2", "04-A2"]
    report = (out / "report.md").read_text()
    assert "PROFILED RUN" in report
    assert (
        "| 03-B2 | [flame graph](phases/03-B2/profiles/gateway.svg) | "
        "[flame graph](phases/03-B2/profiles/orders.svg) |"
    ) in report
    # recomputed from the folder: the links stay while the files are there
    (out / "phases/01-A1/profiles/orders.svg").unlink()
    report = conduct.recompute(out).read_text()
    assert "[flame graph](phases/03-B2/profiles/orders.svg)" in report
    assert "| 01-A1 | [flame graph](phases/01-A1/profiles/gateway.svg) | - |" in report


def test_a_profile_that_fails_is_reported_once_and_the_run_goes_on(
    target: list[FakeTarget], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    denied = "Error: Permission Denied: Try running again with elevated permissions"
    spy = FakePySpy(target, fail={102: f"{denied}\n\nStack backtrace:\n   0: py_spy::main"})
    profiler = Profiler(record=spy.record, collect=spy.collect)
    out = conduct.run("synthetic", "local", quick=False, out_root=tmp_path, profiler=profiler)
    assert out is not None
    assert len(json.loads((out / "phases.json").read_text())) == 4
    assert capsys.readouterr().out.count(denied) == 1
    meta = json.loads((out / "meta.json").read_text())
    assert meta["profile_failures"] == [denied]
    assert all(set(phase) == {"gateway"} for phase in meta["profiles"].values())
    assert f"- {denied}" in (out / "report.md").read_text()


def test_a_run_without_py_spy_goes_on_without_profiles(
    target: list[FakeTarget], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def missing(*args: Any) -> Any:
        raise ProfileFailed("py-spy is not installed")

    out = conduct.run(
        "synthetic", "local", quick=False, out_root=tmp_path, profiler=Profiler(record=missing)
    )
    assert out is not None
    assert capsys.readouterr().out.count("py-spy is not installed") == 1
    meta = json.loads((out / "meta.json").read_text())
    assert (meta["profiled"], meta["profiles"]) == (True, {})
    assert "No flame graph was recorded." in (out / "report.md").read_text()
    assert "## Conclusion" in (out / "report.md").read_text()


def test_profile_is_refused_on_kind_and_with_aa_before_anything_runs(
    target: list[FakeTarget], tmp_path: Path
) -> None:
    with pytest.raises(SystemExit, match="--profile is local-only for now, not on kind"):
        cli.main(["run", "synthetic", "--target", "kind", "--profile"])
    with pytest.raises(SystemExit, match="--profile and --aa do not mix"):
        conduct.run("synthetic", "local", False, tmp_path, aa=True, profiler=Profiler())
    assert target == []
    assert list(tmp_path.iterdir()) == []


def test_an_unprofiled_run_says_so_and_links_nothing(
    target: list[FakeTarget], tmp_path: Path
) -> None:
    out = conduct.run("synthetic", "local", quick=False, out_root=tmp_path)
    assert out is not None
    assert json.loads((out / "meta.json").read_text())["profiled"] is False
    assert "Flame graphs" not in (out / "report.md").read_text()
    assert not any(c[0] == "profile" for c in target[0].calls)
