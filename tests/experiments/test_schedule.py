import itertools

import pytest

from experiments.schedule import alternation


def test_two_arms_alternate_a_b_a_b() -> None:
    phases = alternation(["A", "B"], 3)
    assert [f"{p.arm}{p.rep}" for p in phases] == ["A1", "B1", "A2", "B2", "A3", "B3"]
    assert [p.index for p in phases] == list(range(6))


def test_every_arm_runs_once_per_round() -> None:
    phases = alternation(["A", "B", "C"], 4)
    for r in range(4):
        assert sorted(p.arm for p in phases[r * 3 : r * 3 + 3]) == ["A", "B", "C"]
        assert {p.rep for p in phases[r * 3 : r * 3 + 3]} == {r + 1}
    # no arm runs twice in a row, so a drift cannot pile onto one arm
    assert all(a.arm != b.arm for a, b in itertools.pairwise(phases))


@pytest.mark.parametrize(("arms", "reps"), [(["A", "B"], 0), ([], 3), (["A", "A"], 3)])
def test_bad_schedules_are_refused(arms: list[str], reps: int) -> None:
    with pytest.raises(ValueError):
        alternation(arms, reps)
