"""When a failed delivery is tried again: exponential backoff with jitter, then give up. Pure.

The delay doubles from ``base_s`` up to ``max_delay_s``, and each is drawn from its upper half ("equal
jitter"): receivers that came back up are not hit by every sender at the same instant, and no retry comes
sooner than half its nominal delay. After ``max_attempts`` the delivery is ``failed`` and stays visible.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    base_s: float = 2.0
    max_delay_s: float = 3600.0
    max_attempts: int = 15  # with the defaults: retried for about 5 hours

    def __post_init__(self) -> None:
        if not (self.base_s > 0 and self.max_delay_s >= self.base_s and self.max_attempts >= 1):
            raise ValueError("retry policy: need base_s > 0, max_delay_s >= base_s and max_attempts >= 1")

    def delay_s(self, attempts: int, rng: random.Random) -> float:
        """The wait after the ``attempts``-th failed attempt (1, 2, ...).

        >>> policy = RetryPolicy(base_s=1.0, max_delay_s=8.0)
        >>> [1 / 2 <= policy.delay_s(1, random.Random(s)) <= 1 for s in range(5)]
        [True, True, True, True, True]
        >>> 4 <= policy.delay_s(10, random.Random(0)) <= 8  # capped
        True
        """
        nominal = min(self.max_delay_s, self.base_s * 2.0 ** min(attempts - 1, 60))
        return nominal * rng.uniform(0.5, 1.0)

    def next_attempt_at(self, attempts: int, now_s: float, rng: random.Random) -> float | None:
        """When to try again after ``attempts`` failed attempts; None: give up.

        >>> RetryPolicy(max_attempts=2).next_attempt_at(2, 0.0, random.Random(0)) is None
        True
        """
        return None if attempts >= self.max_attempts else now_s + self.delay_s(attempts, rng)
