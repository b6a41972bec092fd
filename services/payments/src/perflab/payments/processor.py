"""A simulated card processor: log-normal latency and a configurable decline rate."""

import asyncio
import math
import random
from dataclasses import dataclass

# z-score of the 99th percentile of a standard normal distribution.
_Z99 = 2.3263


@dataclass(frozen=True)
class Decision:
    approved: bool
    reason: str = ""


class SimulatedProcessor:
    def __init__(
        self,
        median_ms: float,
        p99_ms: float,
        decline_rate: float,
        rng: random.Random | None = None,
    ):
        if p99_ms < median_ms:
            raise ValueError("the p99 latency cannot be below the median")
        self._mu = math.log(median_ms) if median_ms > 0 else None
        self._sigma = math.log(p99_ms / median_ms) / _Z99 if median_ms > 0 else 0.0
        self._decline_rate = decline_rate
        self._rng = rng or random.Random()

    def latency_seconds(self) -> float:
        if self._mu is None:
            return 0.0
        return self._rng.lognormvariate(self._mu, self._sigma) / 1000.0

    async def charge(self, amount_cents: int) -> Decision:
        await asyncio.sleep(self.latency_seconds())
        if self._rng.random() < self._decline_rate:
            return Decision(False, "card declined by issuer (simulated)")
        return Decision(True)
