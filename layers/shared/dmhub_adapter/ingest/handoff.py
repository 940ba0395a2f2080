"""Claim, enqueue, mark: the idempotent hand-off of validated events to the EventQueue.

Per event (key ``{source}#{account}#{externalId}``)::

    claim (conditional put) ─ acquired ─▶ PENDING, lease L, TTL = dedup window
        │                                   │ SendMessageBatch (failed entries retried)
        │                                   ├─ sent ──▶ mark_queued (on lease L) ──▶ QUEUED
        │                                   │    (the sender already done: DELIVERED / FAILED stay)
        │                                   └─ not sent ─▶ release (on lease L) ──▶ absent, 503
        ├─ QUEUED / DELIVERED / FAILED ──▶ duplicate: acknowledged, counted, not enqueued
        └─ PENDING, lease running ──▶ in flight elsewhere: wait, then re-claim (see below)

A failure of the claim store (throttling, network) releases what this request had claimed and
answers 503 before anything is enqueued. A failure to mark QUEUED after a successful send is
logged and the request still succeeds: the message is on the queue, and should the platform
retry anyway, the lapsed lease lets the retry enqueue again under the same ``externalId``,
which DM Hub deduplicates.

**A duplicate that finds the claim PENDING within its lease.** The holder is either a
concurrent delivery of the same payload (WeChat re-sends after 5 s without an answer; a relay
may post twice), normally a few tens of milliseconds from marking it QUEUED, or an invocation
that died after claiming. Acknowledging at once would be wrong in the second case (the event
would be lost), and failing at once would turn every benign race into a platform retry, with
WeChat's retries few and its users shown "service unavailable" when they run out. So the
request waits, re-claiming every ``poll_interval`` (a failed conditional write returns the
item, so each check is one request), for at most ``pending_wait`` seconds and never beyond the
invocation's remaining time: QUEUED/DELIVERED/FAILED → duplicate (success); released or lease
lapsed → this request claims and enqueues; still PENDING → 503, and the platform's next retry
finds it settled. The default wait (2 s) plus a warm request stays well inside WeChat's 5 s.

Leases are as long as the invocation can live (remaining time, capped by
``CLAIM_LEASE_SECONDS``), as Powertools Idempotency does with ``register_lambda_context``: a
holder killed by the Lambda timeout releases its lease by the time it is dead, so with an
ingest timeout of a few seconds a retry a few seconds later is never blocked by a dead claim.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Union

from dmhub_adapter.ingest.errors import DependencyUnavailable
from dmhub_adapter.model.wire import WireQueuedEvent
from dmhub_adapter.queue import EnqueueError, OutgoingMessage, send_messages
from dmhub_adapter.records import field, record
from dmhub_adapter.store import ClaimStore
from dmhub_adapter.store.claims import Claim, ClaimStatus, fingerprint

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

    from dmhub_adapter.model.customer_event import QueuedEvent

logger = logging.getLogger(__name__)

DEFAULT_PENDING_WAIT = 2.0
DEFAULT_POLL_INTERVAL = 0.1


#: a queued event as the ingest builds it: plainly (:class:`WireQueuedEvent`) or, when a value
#: is not of JSON's own types, as pydantic's ``QueuedEvent``; both write the same message
AnyQueuedEvent = Union["QueuedEvent", WireQueuedEvent]


def message_attributes(event: AnyQueuedEvent) -> dict[str, str]:
    """SQS message attributes, for subscription filters and the replay tools (which read a
    dead-lettered message as the sender does)."""
    return {"source": event.source, "account": event.account, "event": event.event.event}


@record
class HandoffResult:
    """What the handoff did with a request's events: enqueued, duplicates, still in flight
    elsewhere, and the SQS message ids."""

    enqueued: int = 0
    duplicates: int = 0
    #: events whose claim another request still held when the wait ran out
    in_flight: int = 0
    message_ids: list[str] = field(default_factory=list)


class Handoff:
    """Claims, enqueues and marks a request's events (the state machine above).

    Example::

        result = Handoff(claims, queue_url, sqs_client=aws.sqs()).submit(events, lease_seconds=8)
    """

    def __init__(
        self,
        claims: ClaimStore,
        queue_url: str,
        *,
        sqs_client: SQSClient | None = None,
        pending_wait: float = DEFAULT_PENDING_WAIT,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
        log: Any | None = None,
    ) -> None:
        self.claims = claims
        self.queue_url = queue_url
        self.sqs_client = sqs_client
        self.pending_wait = pending_wait
        self.poll_interval = poll_interval
        self._sleep = sleep
        self._monotonic = monotonic
        self.log = log or logger

    def submit(
        self,
        events: Sequence[AnyQueuedEvent],
        *,
        lease_seconds: float | None = None,
        wait_seconds: float | None = None,
    ) -> HandoffResult:
        """Hand each event over once; raises :class:`DependencyUnavailable` when the store or
        the queue fails (after giving back this request's claims)."""
        result = HandoffResult()
        unique: dict[str, AnyQueuedEvent] = {}
        for event in events:
            # The same natural key twice in one payload (a relay batching a redelivery) would
            # otherwise wait on its own PENDING claim.
            if event.claim_key in unique:
                result.duplicates += 1
            else:
                unique[event.claim_key] = event
        budget = self.pending_wait if wait_seconds is None else max(0.0, min(wait_seconds, self.pending_wait))
        deadline = self._monotonic() + budget
        waiting = list(unique.values())
        while True:
            waiting = self._round(waiting, result, lease_seconds)
            if not waiting or self._monotonic() + self.poll_interval > deadline:
                break
            self._sleep(self.poll_interval)
        result.in_flight = len(waiting)
        if waiting:
            self.log.warning(
                "claims still held by another request",
                extra={"claims": [fingerprint(e.claim_key) for e in waiting]},
            )
        return result

    def _round(
        self, events: list[AnyQueuedEvent], result: HandoffResult, lease_seconds: float | None
    ) -> list[AnyQueuedEvent]:
        acquired: list[tuple[AnyQueuedEvent, Claim]] = []
        busy: list[AnyQueuedEvent] = []
        try:
            for event in events:
                claim = self.claims.claim(event.claim_key, trace_id=event.trace_id, lease_seconds=lease_seconds)
                if claim.acquired:
                    acquired.append((event, claim))
                elif claim.status in (ClaimStatus.QUEUED, ClaimStatus.DELIVERED, ClaimStatus.FAILED):
                    result.duplicates += 1
                else:
                    busy.append(event)
        except Exception as exc:
            self.log.exception("idempotency store failed while claiming")
            self._release(acquired)
            raise DependencyUnavailable("claim_store") from exc
        if acquired:
            self._enqueue(acquired, result)
        return busy

    def _enqueue(self, acquired: list[tuple[AnyQueuedEvent, Claim]], result: HandoffResult) -> None:
        messages = [
            OutgoingMessage(body=event.to_message(), attributes=message_attributes(event))
            for event, _ in acquired
        ]
        error: Exception | None = None
        try:
            sent = dict(enumerate(send_messages(self.queue_url, messages, client=self.sqs_client)))
        except EnqueueError as exc:
            error, sent = exc, exc.sent
        except Exception as exc:  # the client itself failed (credentials, endpoint)
            error, sent = exc, {}
        unsent: list[tuple[AnyQueuedEvent, Claim]] = []
        for index, (event, claim) in enumerate(acquired):
            message_id = sent.get(index)
            if message_id is None:
                unsent.append((event, claim))
                continue
            result.enqueued += 1
            result.message_ids.append(message_id)
            assert claim.lease is not None
            try:
                if not self.claims.mark_queued(event.claim_key, claim.lease, message_id):
                    self.log.warning("claim was taken over before it was marked queued",
                                     extra={"claim": fingerprint(event.claim_key)})
            except Exception:
                self.log.exception("enqueued but not marked queued; the lease will lapse",
                                   extra={"claim": fingerprint(event.claim_key)})
        if unsent:
            self.log.error("event queue refused %d message(s): %s", len(unsent), error)
            self._release(unsent)
            raise DependencyUnavailable("event_queue") from error

    def _release(self, claimed: list[tuple[AnyQueuedEvent, Claim]]) -> None:
        for event, claim in claimed:
            assert claim.lease is not None
            try:
                self.claims.release(event.claim_key, claim.lease)
            except Exception:
                # The lease lapses on its own; the retry after that claims again.
                self.log.exception("could not release a claim", extra={"claim": fingerprint(event.claim_key)})
