"""PostgreSQL's CPU as a counter that never goes down when backends exit (fake process
table)."""

from types import SimpleNamespace
from typing import Any

import pytest

from experiments import postgres


def table(*procs: tuple[int, str, float]) -> list[Any]:
    return [
        SimpleNamespace(
            pid=pid, info={"name": name, "cpu_times": SimpleNamespace(user=cpu, system=0.0)}
        )
        for pid, name, cpu in procs
    ]


def test_exiting_backends_do_not_make_the_cpu_counter_go_down(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    samples = iter(
        [
            table((1, "postgres", 10.0), (2, "postgres", 5.0), (9, "python", 99.0)),
            table((1, "postgres", 10.5), (2, "postgres", 6.0), (3, "postgres", 0.25)),
            table((1, "postgres", 11.0)),  # 2 and 3 exited, taking 6.25 s with them
            table((1, "postgres", 11.0), (4, "postmaster", 0.5)),
        ]
    )
    monkeypatch.setattr(postgres.psutil, "process_iter", lambda attrs: next(samples))
    cpu = postgres.PostgresCpu()
    assert cpu.sample() == 0.0  # the zero point
    assert cpu.sample() == pytest.approx(0.5 + 1.0 + 0.25)
    assert cpu.sample() == pytest.approx(1.75 + 0.5)
    assert cpu.sample() == pytest.approx(2.25 + 0.5)  # a new process counts from zero
