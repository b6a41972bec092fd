"""The order in which an experiment's arms run."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Phase:
    index: int  # 0-based position in the run
    arm: str
    rep: int  # 1-based repetition of this arm


def alternation(arms: Sequence[str], reps: int) -> list[Phase]:
    """A B B A A B ... (A B C C B A A B C ...): every arm once per round, `reps` rounds, the
    order reversed every other round. A slow drift of the machine (other work, a warming
    cache, a growing table) then lands on every arm alike, and within a pair of rounds it
    cancels: with a fixed order A B A B the arm that always runs second takes the drift, and
    a 95 % interval of the paired ratio covers the truth only ~77 % of the time
    (tests/experiments/test_stats.py)."""
    if reps < 1:
        raise ValueError("reps must be at least 1")
    if len(set(arms)) != len(arms) or not arms:
        raise ValueError("arms must be distinct and non-empty")
    return [
        Phase(index=r * len(arms) + i, arm=arm, rep=r + 1)
        for r in range(reps)
        for i, arm in enumerate(arms if r % 2 == 0 else list(reversed(arms)))
    ]
