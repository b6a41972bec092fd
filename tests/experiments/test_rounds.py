import itertools

import pytest

from experiments.rounds import alternation


def test_two_arms_alternate_a_b_b_a() -> None:
    phases = alternation(["A", "B"], 5)
    assert [f"{p.arm}{p.rep}" for p in phases] == [
        *("A1", "B1", "B2", "A2", "A3", "B3", "B4", "A4", "A5", "B5")
    ]
    assert [p.index for p in phases] == list(range(10))


def test_each_arm_runs_first_in_half_of_the_rounds() -> None:
    phases = alternation(["A", "B", "C"], 4)
    firsts = [phases[r * 3].arm for r in range(4)]
    assert firsts == ["A", "C", "A", "C"]  # A B C, C B A, ...


def test_every_arm_runs_once_per_round() -> None:
    phases = alternation(["A", "B", "C"], 4)
    for r in range(4):
        assert sorted(p.arm for p in phases[r * 3 : r * 3 + 3]) == ["A", "B", "C"]
        assert {p.rep for p in phases[r * 3 : r * 3 + 3]} == {r + 1}
    # within a round no arm runs twice in a row
    assert all(a.arm != b.arm for a, b in itertools.pairwise(phases) if a.rep == b.rep)


@pytest.mark.parametrize(("arms", "reps"), [(["A", "B"], 0), ([], 3), (["A", "A"], 3)])
def test_bad_schedules_are_refused(arms: list[str], reps: int) -> None:
    with pytest.raises(ValueError):
        alternation(arms, reps)
