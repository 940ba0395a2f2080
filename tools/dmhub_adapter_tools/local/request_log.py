"""The local gateway's record of each request's outcome, and the last 1,000 of them in memory.

One :class:`RequestRecord` per request the gateway answered (its own ``/_local/`` routes
excepted): when, the route, the status, how long it took, what the ingest did with it
(enqueued, duplicate, skipped, unmapped, refused), why anything was not delivered, and the
externalIds handed over. :class:`RequestLog` numbers them (``seq`` from 1) and serves the
recent ones as ``GET /_local/requests?since=<seq>`` reads them::

    {"requests": [{"seq": 7, "time": "2026-12-04T15:02:11.120+00:00", "method": "POST",
                   "path": "/webhooks/wechat/demo", "source": "wechat", "account": "demo",
                   "status": 200, "ms": 168.2,
                   "outcome": {"enqueued": 1, "duplicate": 0, "skipped": 0, "unmapped": 0, "refused": 0},
                   "reason": null, "externalIds": ["wechat:demo:gh_…|7364…"]}],
     "next": 7}

``since`` is a cursor: records with a greater ``seq`` are returned, oldest first, and
``next`` is the value to pass next time (the greatest ``seq`` so far, 0 before any request).
A web console polls with ``since=<previous next>``; records older than the last 1,000 are gone.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from dmhub_adapter.ingest.outcome import MAX_EXTERNAL_IDS, RequestOutcome

#: how many records the gateway keeps
CAPACITY = 1000
#: the outcome counts, in the order lines print them
COUNTS = ("enqueued", "duplicate", "skipped", "unmapped", "refused")


@dataclass(frozen=True)
class RequestRecord:
    """One answered request, as printed and as served at ``/_local/requests``."""

    seq: int
    time: str
    method: str
    path: str
    source: str | None
    account: str | None
    status: int
    ms: float
    outcome: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTS, 0))
    reason: str | None = None
    external_ids: tuple[str, ...] = ()

    def as_json(self) -> dict[str, Any]:
        """The record under the names the endpoint and ``--json`` lines use."""
        return {
            "seq": self.seq,
            "time": self.time,
            "method": self.method,
            "path": self.path,
            "source": self.source,
            "account": self.account,
            "status": self.status,
            "ms": self.ms,
            "outcome": dict(self.outcome),
            "reason": self.reason,
            "externalIds": list(self.external_ids),
        }

    def text(self) -> str:
        """One readable line: ``POST /webhooks/wechat/demo 200 168ms enqueued 1 [wechat:demo:…]``."""
        counts = ", ".join(f"{name} {self.outcome[name]}" for name in COUNTS if self.outcome.get(name))
        line = f"{self.method} {self.path} {self.status} {self.ms:.0f}ms"
        if counts:
            line += f" {counts}"
        elif self.method == "POST" and self.status < 300:
            line += " nothing to deliver"
        if self.reason:
            line += f" ({self.reason})"
        if self.external_ids:
            line += f" [{', '.join(self.external_ids)}]"
        return line


def outcome_counts(outcome: RequestOutcome | None, status: int) -> dict[str, int]:
    """The five counts of ``outcome``; a request the ingest never saw counts as one refusal
    when it was answered with an error."""
    if outcome is not None:
        return outcome.counts()
    counts = dict.fromkeys(COUNTS, 0)
    if status >= 400:
        counts["refused"] = 1
    return counts


class RequestLog:
    """The last ``capacity`` records, numbered in arrival order; safe across gateway threads."""

    def __init__(self, capacity: int = CAPACITY) -> None:
        self._records: deque[RequestRecord] = deque(maxlen=capacity)
        self._seq = 0
        self._lock = threading.Lock()

    def add(
        self,
        *,
        method: str,
        path: str,
        source: str | None,
        account: str | None,
        status: int,
        ms: float,
        outcome: RequestOutcome | None = None,
        reason: str | None = None,
        at: datetime | None = None,
    ) -> RequestRecord:
        """Number and keep one request's record; ``reason`` is used when the ingest gave none."""
        moment = at or datetime.now(UTC)
        with self._lock:
            self._seq += 1
            record = RequestRecord(
                seq=self._seq,
                time=moment.isoformat(timespec="milliseconds"),
                method=method,
                path=path,
                source=source,
                account=account,
                status=status,
                ms=round(ms, 1),
                outcome=outcome_counts(outcome, status),
                reason=(outcome.reason if outcome is not None else None) or reason,
                external_ids=tuple(outcome.external_ids[:MAX_EXTERNAL_IDS]) if outcome is not None else (),
            )
            self._records.append(record)
        return record

    def since(self, seq: int = 0, limit: int | None = None) -> dict[str, Any]:
        """The endpoint's answer: records after ``seq`` (oldest first, at most ``limit``), and ``next``."""
        with self._lock:
            newer = [r for r in self._records if r.seq > seq]
            last = self._seq
        if limit is not None and len(newer) > limit:
            newer = newer[:limit]
            last = newer[-1].seq if newer else seq
        return {"requests": [r.as_json() for r in newer], "next": last}

    def __len__(self) -> int:
        with self._lock:
            return len(self._records)
