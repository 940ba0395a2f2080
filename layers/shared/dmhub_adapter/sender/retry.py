"""When to try a DM Hub call again, and how long to wait first."""

from __future__ import annotations

import random
from dataclasses import dataclass

from dmhub_adapter.dmhub.errors import DmhubError, RateLimited


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter, bounded by attempts and by the invocation's time.

    ``safety_margin`` is kept free at the end of the invocation so the batch response is
    returned before Lambda's timeout (a timed-out invocation redelivers the whole batch).
    """

    base_delay: float = 0.2
    max_delay: float = 5.0
    max_attempts: int = 6
    safety_margin: float = 1.0
    #: the least time worth starting another attempt with
    min_attempt_time: float = 0.1

    def delay(self, attempt: int, error: DmhubError, rng: random.Random) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        ceiling = min(self.max_delay, self.base_delay * (2 ** max(0, attempt - 1)))
        # "equal jitter": never retry at once, yet spread concurrent retriers apart
        delay = ceiling / 2 + rng.uniform(0, ceiling / 2)
        if isinstance(error, RateLimited) and error.retry_after is not None:
            delay = max(delay, error.retry_after)
        return float(delay)

    def should_retry(self, attempt: int, error: DmhubError, delay: float, time_left: float) -> bool:
        """Whether to try again: the error is retryable, attempts remain and delay plus one attempt fit."""
        return error.retryable and attempt < self.max_attempts and delay + self.min_attempt_time <= time_left
