"""Lambda SQS events built from message bodies or from ``ReceiveMessage`` results — what the
event source mapping hands the sender (used by sample events, tests and local pollers)."""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

DEFAULT_QUEUE_ARN = "arn:aws:sqs:eu-west-1:123456789012:dmhub-adapter-events"


def sqs_record(
    body: str | Mapping[str, Any],
    *,
    message_id: str | None = None,
    receipt_handle: str | None = None,
    receive_count: int = 1,
    queue_arn: str = DEFAULT_QUEUE_ARN,
    sent_at_ms: int | None = None,
) -> dict[str, Any]:
    """One SQS record as Lambda's event source delivers it, for tests, the local poller and the bench."""
    text = body if isinstance(body, str) else json.dumps(body, ensure_ascii=False, separators=(",", ":"))
    sent = str(sent_at_ms if sent_at_ms is not None else int(time.time() * 1000))
    return {
        "messageId": message_id or str(uuid.uuid4()),
        "receiptHandle": receipt_handle or uuid.uuid4().hex,
        "body": text,
        "attributes": {
            "ApproximateReceiveCount": str(receive_count),
            "SentTimestamp": sent,
            "SenderId": "AIDAIENQZJOLO23YVJ4VO",
            "ApproximateFirstReceiveTimestamp": sent,
        },
        "messageAttributes": {},
        "md5OfBody": hashlib.md5(text.encode("utf-8")).hexdigest(),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": queue_arn.split(":")[3] if queue_arn.count(":") >= 5 else "eu-west-1",
    }


def sqs_event(bodies: Iterable[str | Mapping[str, Any]], **kwargs: Any) -> dict[str, Any]:
    """An SQS event holding one record per body; keyword arguments go to every `sqs_record`."""
    return {"Records": [sqs_record(body, **kwargs) for body in bodies]}


def sqs_event_from_messages(
    messages: Iterable[Mapping[str, Any]], queue_arn: str = DEFAULT_QUEUE_ARN
) -> dict[str, Any]:
    """An SQS event from ``ReceiveMessage`` results (``AttributeNames=["All"]``)."""
    records = []
    for message in messages:
        attributes = message.get("Attributes") or {}
        records.append(
            sqs_record(
                message["Body"],
                message_id=message["MessageId"],
                receipt_handle=message["ReceiptHandle"],
                receive_count=int(attributes.get("ApproximateReceiveCount", "1")),
                queue_arn=queue_arn,
            )
        )
    return {"Records": records}
