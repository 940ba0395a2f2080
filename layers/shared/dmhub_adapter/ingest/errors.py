"""Why the ingest answers 503: a dependency failed, and the platform's retry will succeed."""

from __future__ import annotations

from dmhub_adapter.errors import Unavailable

GENERIC_MESSAGE = "temporarily unavailable; please retry"


class DependencyUnavailable(Unavailable):
    """A 503 whose ``reason`` names the failed step (a metric dimension, never shown to callers).

    The message the platform sees is always generic: internals stay in the logs.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(GENERIC_MESSAGE)
        self.reason = reason
