"""A local stand-in for Lambda's SQS event source mapping with ``ReportBatchItemFailures``.

It long-polls the queue, hands each batch to the sender handler as the SQS event Lambda would
build, and deletes only what the handler reports as done. Everything else stays in flight
until the visibility timeout ends and is received again; SQS's redrive policy (which moto
implements) moves a message to the DLQ once it has been received ``maxReceiveCount`` times.
"""

from __future__ import annotations

import base64
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from dmhub_adapter.observability import observing
from dmhub_adapter.sender.core import BatchStats
from dmhub_adapter_tools.local.context import new_context

log = logging.getLogger("dmhub_adapter_tools.local.poller")

Invoke = Callable[[dict[str, Any], Any], Any]


def _message_attribute(value: Mapping[str, Any]) -> dict[str, Any]:
    """boto3's ``{"StringValue", "BinaryValue": bytes, "DataType"}`` → Lambda's camelCase shape."""

    def b64(raw: Any) -> str:
        return base64.b64encode(raw if isinstance(raw, bytes) else str(raw).encode()).decode("ascii")

    converted: dict[str, Any] = {
        "stringListValues": list(value.get("StringListValues") or []),
        "binaryListValues": [b64(v) for v in value.get("BinaryListValues") or []],
        "dataType": value.get("DataType", "String"),
    }
    if "StringValue" in value:
        converted["stringValue"] = value["StringValue"]
    if "BinaryValue" in value:
        converted["binaryValue"] = b64(value["BinaryValue"])
    return converted


def sqs_record(message: Mapping[str, Any], *, queue_arn: str, region: str) -> dict[str, Any]:
    """One ``Records[]`` entry exactly as Lambda builds it from a ReceiveMessage result."""
    record: dict[str, Any] = {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message.get("Body", ""),
        "attributes": {str(k): str(v) for k, v in (message.get("Attributes") or {}).items()},
        "messageAttributes": {
            str(k): _message_attribute(v) for k, v in (message.get("MessageAttributes") or {}).items()
        },
        "md5OfBody": message.get("MD5OfBody", ""),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }
    if message.get("MD5OfMessageAttributes"):
        record["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
    return record


def _receive_count(message: Mapping[str, Any]) -> str:
    return str((message.get("Attributes") or {}).get("ApproximateReceiveCount", "?"))


def sqs_event(messages: Sequence[Mapping[str, Any]], *, queue_arn: str, region: str) -> dict[str, Any]:
    return {"Records": [sqs_record(m, queue_arn=queue_arn, region=region) for m in messages]}


def failed_message_ids(result: Any, batch_ids: Sequence[str]) -> set[str]:
    """Which messages to leave on the queue, by Lambda's rules for partial batch responses.

    No response, an empty one or an empty ``batchItemFailures`` means all succeeded. A response
    Lambda cannot read (not a dict, a failure without a valid ``itemIdentifier`` of this batch)
    fails the whole batch, as AWS does.
    """
    everything = set(batch_ids)
    if result is None or result == {} or result == "":
        return set()
    if not isinstance(result, dict):
        return everything
    failures = result.get("batchItemFailures")
    if failures is None:
        return set()
    if not isinstance(failures, list):
        return everything
    failed: set[str] = set()
    for failure in failures:
        identifier = failure.get("itemIdentifier") if isinstance(failure, dict) else None
        if not isinstance(identifier, str) or identifier not in everything:
            return everything
        failed.add(identifier)
    return failed


@dataclass
class BatchReport:
    """One delivery batch as the poller saw it: messages received and failed back to SQS, and
    what the sender said became of them (when it said: a crashed sender says nothing)."""

    received: int
    failed: int
    elapsed_ms: float
    error: str | None = None
    delivered: int = 0
    #: sent to the DLQ by the sender itself (a permanent failure)
    dead_lettered: int = 0
    #: failed messages received ``maxReceiveCount`` times: the redrive moves them to the DLQ
    redriven: int = 0
    #: attempts repeated inside the invocation (DM Hub 503, timeouts)
    retried: int = 0
    receive_counts: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)

    def text(self) -> str:
        """One readable line: counts first, then the reasons."""
        parts = [f"delivered {self.delivered}"]
        back = self.failed - self.redriven
        if back:
            parts.append(f"back to the queue {back}")
        if self.dead_lettered or self.redriven:
            parts.append(f"dead-lettered {self.dead_lettered + self.redriven}")
        if self.retried:
            parts.append(f"retried {self.retried}x")
        line = (f"delivery batch: {self.received} message(s) (receive count {','.join(self.receive_counts)}) "
                f"{self.elapsed_ms:.0f}ms: {', '.join(parts)}")
        reasons = list(self.reasons)
        if self.redriven:
            reasons.append(f"{self.redriven} received the maximum number of times: the redrive moves "
                           f"{'it' if self.redriven == 1 else 'them'} to the DLQ")
        if self.error:
            reasons.append(f"the sender raised {self.error}")
        return line + (f" ({'; '.join(reasons)})" if reasons else "")

    def as_json(self) -> dict[str, Any]:
        """The ``--json`` line's fields."""
        return {
            "messages": self.received,
            "ms": round(self.elapsed_ms, 1),
            "delivered": self.delivered,
            "backToQueue": self.failed - self.redriven,
            "deadLettered": self.dead_lettered + self.redriven,
            "retried": self.retried,
            "receiveCounts": [int(c) if c.isdigit() else c for c in self.receive_counts],
            "reasons": self.reasons,
            "error": self.error,
        }


@dataclass
class PollerStats:
    batches: int = 0
    received: int = 0
    deleted: int = 0
    failed: int = 0
    errors: int = 0
    history: list[BatchReport] = field(default_factory=list)


class QueuePoller:
    """Feeds ``queue_url``'s messages to ``invoke(sqs_event, context)`` on a background thread."""

    def __init__(
        self,
        sqs: Any,
        queue_url: str,
        invoke: Invoke,
        *,
        batch_size: int = 10,
        wait_seconds: int = 20,
        function_name: str = "SenderFunction",
        timeout_seconds: float = 30.0,
        memory_limit_in_mb: int = 512,
        region: str = "eu-west-1",
        on_batch: Callable[[BatchReport], None] | None = None,
        max_receive_count: int | None = None,
    ) -> None:
        if not 1 <= batch_size <= 10:
            raise ValueError("batch_size must be 1..10 (SQS ReceiveMessage limit)")
        if not 0 <= wait_seconds <= 20:
            raise ValueError("wait_seconds must be 0..20 (SQS long-poll limit)")
        self.sqs = sqs
        self.queue_url = queue_url
        self.invoke = invoke
        self.batch_size = batch_size
        self.wait_seconds = wait_seconds
        self.function_name = function_name
        self.timeout_seconds = timeout_seconds
        self.memory_limit_in_mb = memory_limit_in_mb
        self.region = region
        self.on_batch = on_batch or (lambda report: log.info("%s", report.text()))
        #: the queue's redrive ``maxReceiveCount``, to tell which failures go to the DLQ next
        self.max_receive_count = max_receive_count
        self.stats = PollerStats()
        self._stop = threading.Event()
        self._idle = threading.Event()
        self._idle.set()
        self._thread: threading.Thread | None = None
        self._queue_arn: str | None = None

    @property
    def queue_arn(self) -> str:
        if self._queue_arn is None:
            attributes = self.sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"])
            self._queue_arn = str(attributes["Attributes"]["QueueArn"])
        return self._queue_arn

    def start(self) -> QueuePoller:
        _ = self.queue_arn  # fail now, not on the thread, if the queue is missing
        self._thread = threading.Thread(target=self._run, name="local-sqs-poller", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float | None = None) -> None:
        """Stop after the current long poll (or at once if the endpoint goes away)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.wait_seconds + 5 if timeout is None else timeout)
            if not self._thread.is_alive():
                self._thread = None

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no batch is being delivered (a long poll in progress does not count)."""
        return self._idle.wait(timeout)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        backoff = 0.5
        while not self._stop.is_set():
            try:
                self.poll_once()
                backoff = 0.5
            except Exception as exc:
                if self._stop.is_set():
                    return
                self.stats.errors += 1
                log.warning("polling %s failed: %s: %s", self.queue_url, type(exc).__name__, exc)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 10.0)

    def poll_once(self, wait_seconds: int | None = None) -> BatchReport | None:
        """One ReceiveMessage and, if it returned messages, one invocation. Returns its report."""
        response = self.sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=self.batch_size,
            WaitTimeSeconds=self.wait_seconds if wait_seconds is None else wait_seconds,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        messages = response.get("Messages") or []
        if not messages:
            return None
        self._idle.clear()
        try:
            return self.deliver(messages)
        finally:
            self._idle.set()

    def deliver(self, messages: Sequence[Mapping[str, Any]]) -> BatchReport:
        started = time.perf_counter()
        event = sqs_event(messages, queue_arn=self.queue_arn, region=self.region)
        ids = [m["MessageId"] for m in messages]
        context = new_context(
            self.function_name,
            timeout_seconds=self.timeout_seconds,
            memory_limit_in_mb=self.memory_limit_in_mb,
            region=self.region,
        )
        error: str | None = None
        outcomes: list[BatchStats] = []

        def observe(outcome: object) -> None:
            if isinstance(outcome, BatchStats):
                outcomes.append(outcome)

        try:
            with observing(observe):
                result = self.invoke(event, context)
        except Exception as exc:
            # A failed invocation fails the batch: every message returns after its timeout.
            log.exception("%s raised; the whole batch stays on the queue", self.function_name)
            error = f"{type(exc).__name__}: {exc}"
            failed = set(ids)
        else:
            failed = failed_message_ids(result, ids)
        done = [m for m in messages if m["MessageId"] not in failed]
        self._delete(done)
        counts = [_receive_count(m) for m in messages]
        last = {m["MessageId"] for m in messages if m["MessageId"] in failed and self.max_receive_count
                and _receive_count(m).isdigit() and int(_receive_count(m)) >= self.max_receive_count}
        stats = outcomes[-1] if outcomes else None
        report = BatchReport(
            received=len(messages),
            failed=len(failed),
            elapsed_ms=(time.perf_counter() - started) * 1000,
            error=error,
            delivered=stats.delivered if stats else len(done),
            dead_lettered=stats.dead_lettered if stats else 0,
            redriven=len(last),
            retried=stats.retried if stats else 0,
            receive_counts=sorted(set(counts), key=lambda c: (len(c), c)),
            reasons=list(stats.reasons) if stats else [],
        )
        self.stats.batches += 1
        self.stats.received += report.received
        self.stats.deleted += len(done)
        self.stats.failed += report.failed
        self.stats.history.append(report)
        del self.stats.history[:-100]
        try:
            self.on_batch(report)
        except Exception:
            log.exception("reporting a batch failed")
        return report

    def _delete(self, messages: Sequence[Mapping[str, Any]]) -> None:
        if not messages:
            return
        entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)]
        response = self.sqs.delete_message_batch(QueueUrl=self.queue_url, Entries=entries)
        for failure in response.get("Failed") or []:
            # The message comes back after its visibility timeout; the sender's idempotency
            # (claim status, DM Hub's externalId dedup) makes the redelivery harmless.
            log.warning("could not delete message %s: %s", failure.get("Id"), failure.get("Message"))
