"""Stage arithmetic shared by every executor: k6-style piecewise-linear targets.

A schedule is a start value plus stages; each stage moves the target linearly from where the
previous stage ended to its own ``target`` over its ``duration``. The same curve means virtual
users for ``ramping-vus`` and iterations per second for the arrival-rate executors.

For the arrival-rate executors the curve is a *rate*, and iteration ``k`` (counting from 0) is
scheduled at the time ``t_k`` where the integral of the rate reaches ``k``. Those times depend
only on the schedule, never on how fast the system answers: that is what makes the executor
open-loop.

Pure Python: no Locust, no gevent, so it can be unit-tested anywhere.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class Stage:
    """Move the target linearly to ``target`` over ``duration`` seconds."""

    duration: float
    target: float


@dataclass(frozen=True)
class Schedule:
    start: float
    stages: tuple[Stage, ...]

    @property
    def duration(self) -> float:
        return sum(stage.duration for stage in self.stages)

    @property
    def peak(self) -> float:
        return max([self.start, *(stage.target for stage in self.stages)])

    def _segments(self) -> Iterator[tuple[float, float, float, float]]:
        """(start time, duration, value at start, value at end) of each stage."""
        t, value = 0.0, self.start
        for stage in self.stages:
            yield t, stage.duration, value, stage.target
            t, value = t + stage.duration, stage.target

    def stage_at(self, t: float) -> int:
        """Index of the stage running at time ``t`` (the last one once the schedule is over)."""
        for index, (begin, duration, _, _) in enumerate(self._segments()):
            if t < begin + duration:
                return index
        return max(len(self.stages) - 1, 0)

    def target_at(self, t: float) -> float:
        """The target at time ``t`` (seconds since the start)."""
        if t <= 0:
            return self.start
        for begin, duration, v0, v1 in self._segments():
            if t < begin + duration:
                return v0 + (v1 - v0) * (t - begin) / duration
        return self.stages[-1].target if self.stages else self.start

    def cumulative(self, t: float) -> float:
        """The integral of the target from 0 to ``t``: iterations scheduled so far for a rate."""
        total = 0.0
        for begin, duration, v0, v1 in self._segments():
            if t <= begin:
                break
            x = min(t - begin, duration)
            total += v0 * x + (v1 - v0) * x * x / (2 * duration)
        return total

    def iteration_times(self, index: int = 0, count: int = 1) -> Iterator[float]:
        """Start times (seconds since the start) of the iterations of an arrival-rate schedule.

        Iteration ``k`` starts at the ``t`` where ``cumulative(t) == k``. Within a stage the
        cumulative count is quadratic in time, solved in closed form with the form of the root
        that stays exact when the rate does not change (a -> 0) and when it starts at 0 (b = 0).

        ``index``/``count``: generator process ``index`` of ``count`` takes iterations
        ``index, index + count, ...`` of the whole schedule, so several processes interleave
        their starts instead of all firing at the same offsets.
        """
        for k, t in enumerate(self._all_iteration_times()):
            if k % count == index:
                yield t

    def _all_iteration_times(self) -> Iterator[float]:
        k = 0
        done = 0.0  # cumulative count at the start of the current stage
        for begin, duration, r0, r1 in self._segments():
            area = (r0 + r1) / 2 * duration
            a = (r1 - r0) / (2 * duration)
            b = r0
            while k < done + area - 1e-9:
                c = k - done
                x = 0.0 if c <= 0 else 2 * c / (b + math.sqrt(max(b * b + 4 * a * c, 0.0)))
                yield begin + min(x, duration)
                k += 1
            done += area
