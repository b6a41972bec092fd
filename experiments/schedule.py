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
    """A B A B ... (or A B C A B C ...): every arm once per round, `reps` rounds, so a slow drift
    of the machine (other work, a warming cache, a growing table) hits every arm alike instead
    of faking a difference between them."""
    if reps < 1:
        raise ValueError("reps must be at least 1")
    if len(set(arms)) != len(arms) or not arms:
        raise ValueError("arms must be distinct and non-empty")
    return [
        Phase(index=r * len(arms) + i, arm=arm, rep=r + 1)
        for r in range(reps)
        for i, arm in enumerate(arms)
    ]
