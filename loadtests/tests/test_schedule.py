import itertools
import math

import pytest

from loadtests.schedule import Schedule, Stage


def test_target_is_interpolated_linearly_within_each_stage() -> None:
    s = Schedule(0, (Stage(10, 100), Stage(20, 100), Stage(10, 0)))
    assert s.duration == 40
    assert s.peak == 100
    assert [s.target_at(t) for t in (0, 5, 10, 25, 35, 40, 99)] == [0, 50, 100, 100, 50, 0, 0]


def test_stage_at_switches_at_the_stage_boundary() -> None:
    s = Schedule(0, (Stage(10, 5), Stage(5, 5)))
    assert [s.stage_at(t) for t in (0, 9.99, 10, 14.99, 15, 100)] == [0, 0, 1, 1, 1, 1]


def test_cumulative_is_the_area_under_the_rate() -> None:
    s = Schedule(0, (Stage(10, 10), Stage(10, 10)))
    assert s.cumulative(10) == pytest.approx(50)  # triangle
    assert s.cumulative(20) == pytest.approx(150)  # plus rectangle
    assert s.cumulative(5) == pytest.approx(12.5)


def test_constant_rate_starts_evenly_spaced_iterations() -> None:
    times = list(Schedule(20, (Stage(3, 20),)).iteration_times())
    assert len(times) == 60
    assert times[:3] == pytest.approx([0, 0.05, 0.1])
    gaps = {round(b - a, 9) for a, b in itertools.pairwise(times)}
    assert gaps == {0.05}


def test_ramp_from_zero_follows_the_integral() -> None:
    # rate r(t) = t, so N(t) = t^2 / 2 and iteration k starts at sqrt(2k)
    times = list(Schedule(0, (Stage(10, 10),)).iteration_times())
    assert len(times) == 50
    assert times == pytest.approx([math.sqrt(2 * k) for k in range(50)])


@pytest.mark.parametrize(
    "schedule",
    [
        Schedule(1, (Stage(30, 50), Stage(60, 50), Stage(30, 0))),
        Schedule(50, (Stage(7, 3),)),
        Schedule(5, (Stage(10, 5), Stage(2, 50), Stage(10, 50), Stage(2, 5), Stage(10, 5))),
    ],
)
def test_iteration_count_matches_the_area_and_times_are_ordered(schedule: Schedule) -> None:
    times = list(schedule.iteration_times())
    assert len(times) == math.ceil(schedule.cumulative(schedule.duration) - 1e-9)
    assert times == sorted(times)
    assert times[0] >= 0 and times[-1] < schedule.duration
    # by any time t, about cumulative(t) iterations have been scheduled (never more than one off)
    for t in (1, 7.5, schedule.duration / 2):
        started = sum(1 for x in times if x < t)
        assert abs(started - schedule.cumulative(t)) <= 1


def test_a_zero_rate_stage_schedules_nothing_and_the_next_stage_resumes() -> None:
    times = list(Schedule(0, (Stage(5, 0), Stage(1, 10))).iteration_times())
    assert times and all(t >= 5 for t in times)
    assert len(times) == 5  # ramp 0 -> 10 over 1 s: area 5


def test_generator_processes_interleave_their_share_of_the_schedule() -> None:
    """3 workers at 30 it/s: together exactly the single process's starts, each worker's
    starts 0.1 s apart and offset from the others' (no lockstep bursts of 3)."""
    schedule = Schedule(30, (Stage(2, 30),))
    whole = list(schedule.iteration_times())
    shares = [list(schedule.iteration_times(i, 3)) for i in range(3)]
    assert sorted(itertools.chain(*shares)) == pytest.approx(whole)
    assert all(len(share) == 20 for share in shares)
    assert [share[0] for share in shares] == pytest.approx([0, 1 / 30, 2 / 30])
    starts = sorted(itertools.chain(*shares))
    assert min(b - a for a, b in itertools.pairwise(starts)) == pytest.approx(1 / 30)
