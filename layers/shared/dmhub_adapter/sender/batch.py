"""Partial batch responses for an SQS event: each record through a handler on a bounded thread
pool; a record whose handler raises is listed in ``batchItemFailures``, so SQS redelivers that
record only.

The contract of Powertools' ``BatchProcessor(EventType.SQS, raise_on_entire_batch_failure=False)``
as the sender used it (answer even when every record fails, failures in record order), without
its import: ``aws_lambda_powertools.utilities.batch`` loads asyncio, every event data class and
the parser's models, about 90 ms of every sender cold start.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class SqsRecord:
    """The parts of an SQS event record the sender reads (names as Powertools' ``SQSRecord``)."""

    message_id: str
    body: str
    raw: Mapping[str, Any]


def records_of(event: Mapping[str, Any]) -> list[SqsRecord]:
    """The event's records; raises ``ValueError`` for an event that is not an SQS batch (then
    the invocation fails and SQS retries the whole batch, as it must when no record can be
    named)."""
    records = event.get("Records")
    if not isinstance(records, list):
        raise ValueError("the event has no Records list")
    found = []
    for record in records:
        if not isinstance(record, Mapping) or not isinstance(record.get("messageId"), str):
            raise ValueError("an SQS record without a messageId")
        body = record.get("body")
        found.append(SqsRecord(record["messageId"], body if isinstance(body, str) else "", record))
    return found


def process_partial_response(
    event: Mapping[str, Any],
    record_handler: Callable[[SqsRecord], Any],
    *,
    concurrency: int = 1,
    expected: tuple[type[BaseException], ...] = (),
    logger: Any | None = None,
    executor: Executor | None = None,
) -> dict[str, Any]:
    """Run ``record_handler`` on every record (``concurrency`` at a time) and answer
    ``{"batchItemFailures": [{"itemIdentifier": <messageId>}, ...]}`` for those that raised.

    ``executor``, when given, runs the records instead of a pool made for this batch, with its
    own bound (the sender keeps one for the container's life, so a batch does not pay for
    starting its threads, and bounds its DM Hub calls itself). Failures of the ``expected`` types are
    outcomes the handler has logged; any other is logged here as a warning (its type only:
    messages can quote payloads)."""
    log = logger or logging.getLogger("dmhub_adapter.sender")
    records = records_of(event)

    def succeeded(record: SqsRecord) -> bool:
        try:
            record_handler(record)
        except expected:
            return False
        except Exception as exc:  # any failure leaves the record to SQS
            log.warning("record failed; left to SQS", extra={"message_id": record.message_id,
                                                             "error": type(exc).__name__})
            return False
        return True

    if concurrency <= 1 or len(records) <= 1:
        outcomes = [succeeded(record) for record in records]
    elif executor is not None:
        outcomes = list(executor.map(succeeded, records))
    else:
        with ThreadPoolExecutor(max_workers=min(concurrency, len(records))) as pool:
            outcomes = list(pool.map(succeeded, records))
    return {
        "batchItemFailures": [
            {"itemIdentifier": record.message_id} for record, ok in zip(records, outcomes, strict=True) if not ok
        ]
    }
