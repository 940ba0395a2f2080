"""Every SQS send of the runtime: batches of up to 10, retrying only the entries SQS reports
as failed. The ingest hands events and unmapped records over through it, the sender its
dead letters."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from dmhub_adapter.records import record

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import MessageAttributeValueTypeDef, SendMessageBatchRequestEntryTypeDef

MAX_BATCH = 10


class EnqueueError(RuntimeError):
    """Some messages could not be sent after retries; ``failed`` holds their indexes and
    ``sent`` the SQS message ids of those that were (by index), so a caller can settle each
    message on its own: mark the sent ones, give back the failed ones."""

    def __init__(self, message: str, failed: list[int], sent: dict[int, str] | None = None) -> None:
        super().__init__(message)
        self.failed = failed
        self.sent = dict(sent or {})


@record(frozen=True)
class OutgoingMessage:
    """One message to send: its JSON body, string attributes and an optional delay."""

    body: dict[str, Any]
    attributes: dict[str, str] | None = None
    delay_seconds: int = 0


def _attributes(values: dict[str, str] | None) -> dict[str, MessageAttributeValueTypeDef]:
    return {
        name: {"DataType": "String", "StringValue": value}
        for name, value in (values or {}).items()
        if value
    }


def send_messages(
    queue_url: str,
    messages: Sequence[OutgoingMessage],
    *,
    client: SQSClient | None = None,
    attempts: int = 3,
    backoff: float = 0.05,
) -> list[str]:
    """Send messages in batches; returns SQS message ids in input order.

    Failed entries (``Failed`` in the response, or the call raising) are retried up to
    ``attempts`` times; what still fails raises :class:`EnqueueError` with their indexes.
    """
    if client is None:
        from dmhub_adapter import aws

        client = aws.sqs()
    ids: dict[int, str] = {}
    pending = list(range(len(messages)))
    last_error = ""
    for attempt in range(attempts):
        if not pending:
            break
        if attempt:
            time.sleep(backoff * (2 ** (attempt - 1)))
        still_failing: list[int] = []
        for start in range(0, len(pending), MAX_BATCH):
            chunk = pending[start : start + MAX_BATCH]
            entries: list[SendMessageBatchRequestEntryTypeDef] = [
                {
                    "Id": str(index),
                    "MessageBody": json.dumps(messages[index].body, ensure_ascii=False, separators=(",", ":")),
                    "MessageAttributes": _attributes(messages[index].attributes),
                    "DelaySeconds": messages[index].delay_seconds,
                }
                for index in chunk
            ]
            try:
                response = client.send_message_batch(QueueUrl=queue_url, Entries=entries)
            except Exception as exc:  # network, throttling, access: all retried then reported
                last_error = f"{type(exc).__name__}: {exc}"
                still_failing.extend(chunk)
                continue
            for ok in response.get("Successful", []):
                ids[int(ok["Id"])] = ok["MessageId"]
            for failed in response.get("Failed", []):
                last_error = f"{failed.get('Code')}: {failed.get('Message')}"
                still_failing.append(int(failed["Id"]))
        pending = still_failing
    if pending:
        raise EnqueueError(f"{len(pending)} message(s) not enqueued: {last_error}", sorted(pending), ids)
    return [ids[index] for index in range(len(messages))]
