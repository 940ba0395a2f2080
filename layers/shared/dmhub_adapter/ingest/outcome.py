"""What one webhook request came to, in counts a person can read, and who may watch it.

The pipeline fills one :class:`RequestOutcome` per request (status, events enqueued or already
claimed, messages skipped, unmapped or refused, the reason of anything not delivered, the
externalIds handed over) and, at the end, logs it and publishes it
(:func:`dmhub_adapter.observability.publish_outcome`). Deployed, nobody observes and the log
line is the record; the local gateway observes each invocation to print one line per request
and serve the recent ones.
"""

from __future__ import annotations

from typing import Any

from dmhub_adapter.records import field, record

#: at most this many externalIds are kept per outcome (a batch can carry hundreds)
MAX_EXTERNAL_IDS = 50
#: reasons longer than this are cut (a reason names a rule and a field, not a payload)
MAX_REASON_CHARS = 500


@record
class RequestOutcome:
    """One request's result: HTTP status, per-message counts, why anything was not delivered."""

    source: str
    account: str
    method: str = "POST"
    status: int = 0
    enqueued: int = 0
    duplicate: int = 0
    skipped: int = 0
    unmapped: int = 0
    refused: int = 0
    reasons: list[str] = field(default_factory=list)
    external_ids: list[str] = field(default_factory=list)

    @property
    def reason(self) -> str | None:
        """The reasons joined into one line (None when everything went through)."""
        if not self.reasons:
            return None
        text = "; ".join(self.reasons)
        return text if len(text) <= MAX_REASON_CHARS else text[: MAX_REASON_CHARS - 1] + "…"

    def counts(self) -> dict[str, int]:
        """The five counts under the names the local console reads."""
        return {
            "enqueued": self.enqueued,
            "duplicate": self.duplicate,
            "skipped": self.skipped,
            "unmapped": self.unmapped,
            "refused": self.refused,
        }

    def as_log(self) -> dict[str, Any]:
        """The fields of the ``request outcome`` log line."""
        return {"status": self.status, **self.counts(), "reason": self.reason,
                "externalIds": self.external_ids[:MAX_EXTERNAL_IDS]}
