"""Reading SQS messages without consuming them: what the CLI and the console do to show a queue.

A received message is hidden for its visibility timeout and its receive count goes up. Tools that
only look at a queue (``status``, ``dlq show``, dry runs, the console) therefore hand every
message they received back at once with `release`, so it is visible again immediately instead of
after the timeout.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

#: SQS takes at most ten entries per ChangeMessageVisibilityBatch call
BATCH_LIMIT = 10


def release(sqs: Any, queue_url: str, receipt_handles: Sequence[str]) -> None:
    """Make received messages visible again now, ten per call.

    Example::

        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
        release(sqs, url, [m["ReceiptHandle"] for m in messages])
    """
    for start in range(0, len(receipt_handles), BATCH_LIMIT):
        chunk = receipt_handles[start : start + BATCH_LIMIT]
        sqs.change_message_visibility_batch(
            QueueUrl=queue_url,
            Entries=[{"Id": str(i), "ReceiptHandle": handle, "VisibilityTimeout": 0} for i, handle in enumerate(chunk)],
        )
