"""Deliver queued events to DM Hub: resolve, POST, retry, classify, record.

For each SQS record (a :class:`~dmhub_adapter.model.customer_event.QueuedEvent`, read by
:func:`~dmhub_adapter.model.wire.read_queued_event` without pydantic):

* delivered → claim item DELIVERED with DM Hub's event id; the record succeeds;
* permanent failure (validation, other 4xx, unknown identity that may not be created,
  malformed body) → the message goes to the dead-letter queue at once with the reason and
  DM Hub's field errors, the claim item becomes FAILED, and the record *succeeds* so that
  SQS deletes it;
* retryable failure (network, timeout, 429, 5xx, token) → retried with backoff while the
  invocation has time; then the record fails (``batchItemFailures``) and SQS redelivers it,
  until the queue's redrive moves it to the dead-letter queue.

Records of a batch are processed concurrently on one thread pool the sender keeps for the
container's life (a warm container's batch starts its DM Hub calls at once instead of first
starting a thread per record). At most ``concurrency`` records are in their DM Hub call (with
its retries) at a time, each holding a slot; the claim write and any dead-lettering follow
outside the slot, on the pool's other ``concurrency`` threads, so in a batch larger than
``concurrency`` the next record's call does not wait for a finished record's write. With
``concurrency`` 1 the records go one after another in the invoking thread. The ``externalId``
is always sent, so a retry — here or after a redelivery — never doubles an event in DM Hub.

Three ways to DM Hub (``DMHUB_API`` / ``DMHUB_EVENT_ENDPOINT``):

===========================  =========================================  ====================
mode                         event call                                 claim's dmhubId
===========================  =========================================  ====================
v1 customerevents (default)  identity → customerId, POST /v1/customerevents  the event's id
v1 collector                 POST /v1/collector/batchPushEvents, ≤100   ``collector``
                             identity-keyed events per call; a batch
                             refused for good is resent one event per
                             call (/v1/collector/pushevent) to isolate
                             the bad one
v2                           POST /v2/customerEvents, identity-keyed    the id when answered
===========================  =========================================  ====================
"""

from __future__ import annotations

import functools
import json
import logging
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from dmhub_adapter.dmhub.client import COLLECTOR_BATCH_MAX, DmhubClient, collector_event_body
from dmhub_adapter.dmhub.errors import DmhubError
from dmhub_adapter.dmhub.identity import IdentityResolver
from dmhub_adapter.model.rules import SEED_ATTRIBUTE_BUDGET, AttributeBudget
from dmhub_adapter.model.wire import WireQueuedEvent, read_queued_event
from dmhub_adapter.queue import OutgoingMessage, send_messages
from dmhub_adapter.sender.batch import SqsRecord, process_partial_response
from dmhub_adapter.sender.retry import RetryPolicy
from dmhub_adapter.store import ClaimStore
from dmhub_adapter.store.claims import COLLECTOR_PLACEHOLDER, fingerprint

# Ten DM Hub calls in flight per instance: a batch of the template's 50 records goes in five
# rounds, each record's claim write overlapping the next record's call (only the last round's
# writes follow the batch's last answer).
DEFAULT_CONCURRENCY = 10
#: used when the caller has no Lambda context to ask for the remaining time
DEFAULT_BUDGET_SECONDS = 60.0
FAILURE_KEY = "failure"


class RecordOutcome(StrEnum):
    """What became of one SQS record: delivered, dead-lettered at once, or left to SQS."""

    DELIVERED = "delivered"
    DEAD_LETTERED = "dead_lettered"
    RETRY_LATER = "retry_later"


class RetryLater(Exception):  # it is an outcome, not a bug
    """Raised from a record handler so the record is reported in ``batchItemFailures``."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class RecordResult:
    """What became of one SQS record: its outcome, the attempts it took and DM Hub's event id when delivered."""
    message_id: str
    outcome: RecordOutcome
    attempts: int
    dmhub_id: int | str | None = None
    reason: str | None = None


#: at most this many reasons are kept per batch (one per record of a full batch, and then some)
MAX_BATCH_REASONS = 20


@dataclass
class BatchStats:
    """A batch's counts (``retried`` counts attempts repeated inside the invocation;
    ``left_for_retry`` records handed back to SQS) and why records were not delivered."""

    records: int = 0
    delivered: int = 0
    retried: int = 0
    dead_lettered: int = 0
    left_for_retry: int = 0
    #: "dead-lettered <externalId>: <reason>" / "back to the queue <externalId>: <reason>"
    reasons: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, name: str, value: int = 1) -> None:
        """Add ``value`` to the count ``name`` (records are processed on several threads)."""
        with self._lock:
            setattr(self, name, getattr(self, name) + value)

    def note(self, reason: str) -> None:
        """Keep why a record was not delivered (the first :data:`MAX_BATCH_REASONS`)."""
        with self._lock:
            if len(self.reasons) < MAX_BATCH_REASONS:
                self.reasons.append(reason[:300])


def parse_body(
    body: str, budget: AttributeBudget = SEED_ATTRIBUTE_BUDGET
) -> tuple[dict[str, Any] | None, WireQueuedEvent]:
    """The message's JSON and the event validated against the deployment's custom attribute
    ``budget``; raises ``ValueError`` with the reason.

    A ``failure`` block (left by an earlier dead-lettering, e.g. after a redrive that did not
    strip it) is ignored.
    """
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise ValueError(f"message body is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError("message body is not a JSON object")
    clean = {k: v for k, v in data.items() if k != FAILURE_KEY}
    try:
        return data, read_queued_event(clean, budget)
    except ValueError as exc:
        raise ValueError(f"message body is not a queued event: {exc}") from None


def failure_block(reason: str, *, kind: str, field_errors: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The `failure` block a dead-lettered message carries: the reason, its kind and DM Hub's field errors."""
    return {
        "reason": reason,
        "kind": kind,
        "fieldErrors": field_errors or [],
        "at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


class Sender:
    """Delivers one SQS batch to DM Hub and reports partial batch failures.

    Each message is claimed, sent with retries inside the invocation's time, and dead-lettered
    when it cannot succeed.

    Example::

        sender = Sender(dmhub=client, resolver=resolver, claims=claims, dead_letter_queue_url=dlq_url)
        response, stats = sender.process_batch(event, context)
    """
    def __init__(
        self,
        *,
        dmhub: DmhubClient,
        resolver: IdentityResolver,
        claims: ClaimStore,
        dead_letter_queue_url: str,
        sqs: Any | None = None,
        policy: RetryPolicy | None = None,
        concurrency: int = DEFAULT_CONCURRENCY,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
        logger: Any | None = None,
        attribute_budget: AttributeBudget = SEED_ATTRIBUTE_BUDGET,
        api: str = "v1",
        endpoint: str = "customerevents",
    ) -> None:
        self.dmhub = dmhub
        self.resolver = resolver
        self.claims = claims
        self.dead_letter_queue_url = dead_letter_queue_url
        self.sqs = sqs
        self.policy = policy or RetryPolicy()
        self.concurrency = max(1, concurrency)
        self.sleep = sleep
        self.rng = rng or random.Random()  # jitter, not secrecy
        self.logger = logger or logging.getLogger("dmhub_adapter.sender")
        self.attribute_budget = attribute_budget
        self.api = api
        #: the v1 collector is used only with v1 (v2 has no collector)
        self.collector = api == "v1" and endpoint == "collector"
        self._executor: ThreadPoolExecutor | None = None
        self._dmhub_slots = threading.BoundedSemaphore(self.concurrency)
        self._sized_for = self.concurrency
        self._executor_lock = threading.Lock()

    def _resize(self) -> None:
        """Follow a changed ``concurrency`` (call with the lock held): new slots, and a new pool
        (the old one finishes its work and goes)."""
        if self._sized_for != self.concurrency:
            if self._executor is not None:
                self._executor.shutdown(wait=False)
                self._executor = None
            self._dmhub_slots = threading.BoundedSemaphore(self.concurrency)
            self._sized_for = self.concurrency

    def _slots(self) -> threading.BoundedSemaphore:
        """The ``concurrency`` DM Hub slots: a record holds one for its DM Hub call and retries."""
        with self._executor_lock:
            self._resize()
            return self._dmhub_slots

    def _pool(self) -> ThreadPoolExecutor:
        """The records' thread pool, made on first use and kept: ``2 x concurrency`` threads, so
        that records whose claim write is still running leave every DM Hub slot in use."""
        with self._executor_lock:
            self._resize()
            if self._executor is None:
                self._executor = ThreadPoolExecutor(
                    max_workers=2 * self.concurrency, thread_name_prefix="dmhub-sender"
                )
            return self._executor

    def close(self) -> None:
        """Stop the records' thread pool (after the work it has); a later batch makes a new one."""
        with self._executor_lock:
            pool, self._executor = self._executor, None
        if pool is not None:
            pool.shutdown(wait=True)

    # -- one record -------------------------------------------------------------------------

    def deliver(self, body: str, *, message_id: str, deadline: float, stats: BatchStats | None = None) -> RecordResult:
        """Process one message body before ``deadline`` (``time.monotonic()``).

        Returns DELIVERED or DEAD_LETTERED; raises :class:`RetryLater` when the message should
        go back to SQS. Other exceptions (AWS calls failing) also leave it to SQS.
        """
        stats = stats or BatchStats()
        try:
            original, queued = parse_body(body, self.attribute_budget)
        except ValueError as exc:
            return self._dead_letter(
                body, None, message_id, reason=str(exc), kind="malformed", attempts=0, stats=stats
            )
        log = {
            "message_id": message_id,
            "claim": fingerprint(queued.claim_key),
            "trace_id": queued.trace_id,
            "source": queued.source,
            "event_type": queued.event.event,
        }
        dmhub_id, refused, attempts = self._call_dmhub(queued, deadline, log, stats)
        if refused is not None:
            self.logger.warning("permanent failure", extra={**log, "reason": refused.describe()})
            return self._dead_letter(
                body,
                queued,
                message_id,
                reason=refused.describe(),
                kind=refused.kind,
                field_errors=refused.field_errors,
                attempts=attempts,
                stats=stats,
                original=original,
            )
        self.claims.mark_delivered(queued.claim_key, dmhub_id)
        stats.add("delivered")
        self.logger.info("delivered", extra={**log, "attempts": attempts, "dmhub_id": dmhub_id})
        return RecordResult(message_id, RecordOutcome.DELIVERED, attempts, dmhub_id=dmhub_id)

    def _call_dmhub(
        self, queued: WireQueuedEvent, deadline: float, log: dict[str, Any], stats: BatchStats
    ) -> tuple[int | str | None, DmhubError | None, int]:
        """The event's DM Hub call with its retries, holding one of the ``concurrency`` DM Hub
        slots: ``(DM Hub's id, None, attempts)`` when sent, ``(None, the error, attempts)`` when
        refused for good. Raises :class:`RetryLater` when the error is retryable but time or
        attempts ran out.

        The claim write and the dead-lettering come after, outside the slot: a record's 5 ms
        DynamoDB write does not keep the next record of a batch larger than ``concurrency``
        from its DM Hub call."""
        with self._slots():
            attempt = 0
            while True:
                attempt += 1
                try:
                    return self._send(queued, deadline), None, attempt
                except DmhubError as error:
                    if not error.retryable:
                        return None, error, attempt
                    delay = self.policy.delay(attempt, error, self.rng)
                    left = deadline - time.monotonic()
                    if not self.policy.should_retry(attempt, error, delay, left):
                        stats.add("left_for_retry")
                        stats.note(f"back to the queue {_label(queued)}: {error.describe()}")
                        self.logger.warning(
                            "left for redelivery", extra={**log, "attempts": attempt, "reason": error.describe()}
                        )
                        raise RetryLater(error.describe()) from None
                    stats.add("retried")
                    self.logger.info(
                        "retrying", extra={**log, "attempt": attempt, "delay": round(delay, 3), "reason": error.kind}
                    )
                    self.sleep(delay)

    def _send(self, queued: WireQueuedEvent, deadline: float) -> int | str | None:
        event = queued.event
        identity = (queued.identity.type, queued.identity.value) if queued.identity is not None else None
        if self.collector:
            self.dmhub.push_event(collector_event_body(event, identity), deadline=deadline)
            return COLLECTOR_PLACEHOLDER
        if self.api == "v2":
            return self.dmhub.create_event_v2(event, identity, deadline=deadline)
        if event.customerId is None:
            assert queued.identity is not None  # WireQueuedEvent guarantees one of the two
            customer_id = self.resolver.resolve(queued.identity, deadline=deadline)
            event = event.with_customer_id(customer_id)
        return self.dmhub.create_event_id(event, deadline=deadline)

    def _dead_letter(
        self,
        body: str,
        queued: WireQueuedEvent | None,
        message_id: str,
        *,
        reason: str,
        kind: str,
        attempts: int,
        stats: BatchStats,
        field_errors: list[dict[str, Any]] | None = None,
        original: dict[str, Any] | None = None,
    ) -> RecordResult:
        message: dict[str, Any]
        if original is not None:
            message = {k: v for k, v in original.items() if k != FAILURE_KEY}
        else:
            try:
                parsed = json.loads(body)
            except ValueError:
                parsed = None
            message = (
                {k: v for k, v in parsed.items() if k != FAILURE_KEY} if isinstance(parsed, dict) else {"raw": body}
            )
        message[FAILURE_KEY] = failure_block(reason, kind=kind, field_errors=field_errors)
        attributes = {"failure": kind}
        if queued is not None:
            attributes["source"] = queued.source
        # an exception here leaves the record to SQS: better a second try than a lost message
        send_messages(
            self.dead_letter_queue_url, [OutgoingMessage(body=message, attributes=attributes)], client=self.sqs
        )
        claim = queued.claim_key if queued is not None else message.get("claim_key")
        if isinstance(claim, str) and claim:
            try:
                self.claims.mark_failed(claim, reason)
            except Exception as exc:  # the DLQ message is the record of truth; the claim is a view
                self.logger.warning(
                    "could not mark the claim FAILED", extra={"claim": fingerprint(claim), "error": type(exc).__name__}
                )
        stats.add("dead_lettered")
        stats.note(f"dead-lettered {_label(queued) if queued is not None else 'message ' + message_id}: {reason}")
        return RecordResult(message_id, RecordOutcome.DEAD_LETTERED, attempts, reason=reason)

    # -- a batch ------------------------------------------------------------------------------

    def deadline_for(self, remaining_ms: int | None) -> float:
        """The monotonic time by which the batch must stop: the remaining time less the safety margin."""
        budget = DEFAULT_BUDGET_SECONDS if remaining_ms is None else remaining_ms / 1000
        return time.monotonic() + budget - self.policy.safety_margin

    def deadline_of(self, context: Any) -> float:
        """:meth:`deadline_for` the time a Lambda context has left (the default budget without one)."""
        remaining = None
        if context is not None and hasattr(context, "get_remaining_time_in_millis"):
            remaining = int(context.get_remaining_time_in_millis())
        return self.deadline_for(remaining)

    def process_batch(self, event: dict[str, Any], context: Any = None) -> tuple[dict[str, Any], BatchStats]:
        """Process an SQS event, its records on a bounded thread pool; returns the partial batch
        response (``{"batchItemFailures": [...]}``) and the counts."""
        deadline = self.deadline_of(context)
        stats = BatchStats(records=len(event.get("Records") or []))

        def record_handler(record: SqsRecord) -> str:
            result = self.deliver(record.body, message_id=record.message_id, deadline=deadline, stats=stats)
            return result.outcome.value

        if self.collector:
            return self._collector_batch(event.get("Records") or [], deadline, stats), stats
        response = process_partial_response(
            event, record_handler, concurrency=self.concurrency, expected=(RetryLater,), logger=self.logger,
            executor=self._pool() if self.concurrency > 1 else None,
        )
        return response, stats

    # -- the collector: up to 100 events per DM Hub call ----------------------------------------

    def _collector_batch(self, records: list[dict[str, Any]], deadline: float, stats: BatchStats) -> dict[str, Any]:
        """Deliver an SQS batch through ``batchPushEvents`` in calls of at most 100 events;
        returns the partial batch response."""
        failed: list[str] = []
        ready: list[tuple[str, str, WireQueuedEvent]] = []
        for record in records:
            message_id, body = str(record.get("messageId")), str(record.get("body") or "")
            try:
                _, queued = parse_body(body, self.attribute_budget)
            except ValueError:
                # dead-lettered as malformed by the one-record path
                self._guarded(
                    functools.partial(self.deliver, body, message_id=message_id, deadline=deadline, stats=stats),
                    message_id,
                    failed,
                )
                continue
            ready.append((message_id, body, queued))
        for start in range(0, len(ready), COLLECTOR_BATCH_MAX):
            self._collector_chunk(ready[start : start + COLLECTOR_BATCH_MAX], deadline, stats, failed)
        return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in failed]}

    def _guarded(self, action: Callable[[], Any], message_id: str, failed: list[str]) -> None:
        try:
            action()
        except Exception as exc:  # RetryLater, or AWS failing: SQS redelivers the record
            if not isinstance(exc, RetryLater):
                self.logger.warning("record left to SQS", extra={"message_id": message_id,
                                                                 "error": type(exc).__name__})
            failed.append(message_id)

    def _collector_chunk(
        self, chunk: list[tuple[str, str, WireQueuedEvent]], deadline: float, stats: BatchStats, failed: list[str]
    ) -> None:
        bodies = [
            collector_event_body(
                queued.event, (queued.identity.type, queued.identity.value) if queued.identity is not None else None
            )
            for _, _, queued in chunk
        ]
        attempt = 0
        while True:
            attempt += 1
            try:
                self.dmhub.push_events(bodies, deadline=deadline)
                break
            except DmhubError as error:
                if not error.retryable:
                    # find the bad event: one call per event, each retried or dead-lettered alone
                    self.logger.warning(
                        "collector batch refused; sending its events one by one",
                        extra={"events": len(chunk), "reason": error.describe()},
                    )
                    self._each(chunk, lambda m, b: self.deliver(b, message_id=m, deadline=deadline, stats=stats),
                               failed)
                    return
                delay = self.policy.delay(attempt, error, self.rng)
                if not self.policy.should_retry(attempt, error, delay, deadline - time.monotonic()):
                    stats.add("left_for_retry", len(chunk))
                    self.logger.warning("collector batch left for redelivery",
                                        extra={"events": len(chunk), "reason": error.describe()})
                    failed.extend(message_id for message_id, _, _ in chunk)
                    return
                stats.add("retried")
                self.sleep(delay)

        claim_keys: dict[str, str] = {}
        for message_id, _, queued in chunk:
            claim_keys.setdefault(message_id, queued.claim_key)  # a lookup per event, not a scan of 100

        def delivered(message_id: str, body: str) -> None:
            self.claims.mark_delivered(claim_keys[message_id], COLLECTOR_PLACEHOLDER)
            stats.add("delivered")

        self._each(chunk, delivered, failed)
        self.logger.info("collector batch delivered", extra={"events": len(chunk), "attempts": attempt})

    def _each(self, chunk: list[tuple[str, str, WireQueuedEvent]], action: Callable[[str, str], Any],
              failed: list[str]) -> None:
        """Run ``action(message_id, body)`` for every record of ``chunk`` on the bounded pool."""
        lock = threading.Lock()
        local: list[str] = []
        # the pool has room for twice as many; these writes (or calls) stay `concurrency` at a time
        running = threading.BoundedSemaphore(self.concurrency)

        def run(item: tuple[str, str, WireQueuedEvent]) -> None:
            message_id, body, _ = item
            mine: list[str] = []
            with running:
                self._guarded(lambda: action(message_id, body), message_id, mine)
            if mine:
                with lock:
                    local.extend(mine)

        if self.concurrency <= 1 or len(chunk) <= 1:
            for item in chunk:
                run(item)
        else:
            list(self._pool().map(run, chunk))
        failed.extend(local)


def _label(queued: WireQueuedEvent) -> str:
    """How a reason names an event: its DM Hub externalId (what ``trace`` takes)."""
    return str(queued.event.externalId or queued.claim_key)
