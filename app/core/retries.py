"""Backoff for work retried on a schedule: webhook deliveries and outgoing e-mail."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Final

_JITTER: Final = 0.1


def backoff_seconds(schedule: Sequence[float], failures: int, rng: random.Random) -> float:
    """The wait after the `failures`-th failed attempt (1 for the first): that step of the schedule,
    the last step again beyond its end, give or take a tenth so that a burst that failed together
    does not retry together."""
    step = schedule[min(failures, len(schedule)) - 1]
    return step * rng.uniform(1 - _JITTER, 1 + _JITTER)
