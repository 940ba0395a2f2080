"""``dmhub-adapter unmapped show ID`` / ``dlq show ID``: one stored message, decoded.

``unmapped show`` prints an UnmappedQueue record with its payload as text (read back from S3
when the record was stored by reference), the reasons, and the headers and query values kept,
then the ``map`` command that re-maps it; ``--raw FILE`` writes the payload bytes to FILE for
``map``. ``dlq show`` prints a dead-lettered event and its failure block (``--raw FILE`` writes
the message body). The message stays on its queue: it is received for a moment and made
visible again.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from typing import Any

from dmhub_adapter_tools.sqs_peek import release

#: seconds a scanned message stays invisible while the queue is searched
SCAN_VISIBILITY = 30


def register(subparsers: Any) -> None:
    for queue, what in (("unmapped", "UnmappedQueue records (authentic payloads no rule mapped)"),
                        ("dlq", "DeadLetterQueue messages (events that could not be delivered)")):
        parser = subparsers.add_parser(queue, help=f"inspect {what}", description=f"Inspect {what}.")
        commands = parser.add_subparsers(dest=f"{queue}_command", metavar="{show}", required=True)
        show = commands.add_parser("show", help="print one message decoded (it stays on the queue)")
        show.add_argument("id", help="the SQS message id (replay --dry-run lists them)")
        show.add_argument("--raw", metavar="FILE",
                          help="write the payload (unmapped) or body (dlq) to FILE, e.g. for `map`")
        show.set_defaults(func=run_show, queue=queue)


def find_message(sqs: Any, url: str, message_id: str, *, max_scanned: int = 10_000) -> dict[str, Any] | None:
    """Receive until ``message_id`` shows up or the queue has nothing more; every message
    received is made visible again before returning."""
    received: list[dict[str, Any]] = []
    found: dict[str, Any] | None = None
    seen: set[str] = set()
    try:
        while found is None and len(seen) < max_scanned:
            messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=SCAN_VISIBILITY,
                                           WaitTimeSeconds=1, AttributeNames=["All"],
                                           MessageAttributeNames=["All"]).get("Messages", [])
            fresh = [m for m in messages if m["MessageId"] not in seen]
            if not fresh:
                break
            for message in fresh:
                seen.add(message["MessageId"])
                received.append(message)
                if message["MessageId"] == message_id:
                    found = message
    finally:
        release(sqs, url, [m["ReceiptHandle"] for m in received])
    return found


def run_show(args: argparse.Namespace) -> int:
    from dmhub_adapter import aws
    from dmhub_adapter.ingest.unmapped import RecordError, record_payload, resolve_record
    from dmhub_adapter.settings import Settings
    from dmhub_adapter_tools.cli import CommandError

    settings = Settings.from_env()
    try:
        url = settings.require("unmapped_queue_url" if args.queue == "unmapped" else "dead_letter_queue_url")
    except RuntimeError as exc:
        raise CommandError(str(exc)) from exc
    message = find_message(aws.client("sqs"), url, args.id)
    if message is None:
        raise CommandError(f"no message {args.id} on the {args.queue} queue (in flight elsewhere, or gone)")
    try:
        body = json.loads(message["Body"])
    except ValueError:
        body = None
    if args.queue == "dlq":
        if args.raw:
            _write(args.raw, message["Body"].encode("utf-8"))
        json.dump({"messageId": args.id, "receiveCount": message.get("Attributes", {}).get("ApproximateReceiveCount"),
                   "body": body if body is not None else message["Body"]}, sys.stdout, ensure_ascii=False, indent=2)
        sys.stdout.write("\n")
        return 0
    if not isinstance(body, dict):
        raise CommandError(f"message {args.id} is not an unmapped record (body is not a JSON object)")
    try:
        record = dict(resolve_record(body))
        payload = record_payload(record)
    except RecordError as exc:
        raise CommandError(f"message {args.id}: {exc}") from exc
    try:
        text: str | None = payload.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    shown = {
        "messageId": args.id,
        "source": record.get("source"),
        "account": record.get("account"),
        "receivedAt": record.get("received_at"),
        "reasons": record.get("reasons") or [],
        "payloadType": record.get("payload_type"),
        "headers": record.get("headers") or {},
        "query": record.get("query") or {},
        **({"storedAt": body["payload_ref"]} if body.get("payload_ref") else {}),
        "payload": text if text is not None else record.get("payload"),
        **({"payloadEncoding": "base64"} if text is None else {}),
    }
    if args.raw:
        _write(args.raw, payload)
        options = [f"--header {shlex.quote(f'{k}:{v}')}" for k, v in sorted(shown["headers"].items())
                   if k != "content-type"]
        options += [f"--query {shlex.quote(f'{k}={v}')}" for k, v in sorted(shown["query"].items())]
        command = " ".join(["dmhub-adapter map", shlex.quote(str(shown["source"])), shlex.quote(args.raw),
                            "--account", shlex.quote(str(shown["account"])), *options])
        print(f"payload written to {args.raw}; re-map it with:\n  {command}", file=sys.stderr)
    json.dump(shown, sys.stdout, ensure_ascii=False, indent=2)
    sys.stdout.write("\n")
    return 0


def _write(path: str, data: bytes) -> None:
    from dmhub_adapter_tools.cli import CommandError

    try:
        with open(path, "wb") as handle:
            handle.write(data)
    except OSError as exc:
        raise CommandError(f"cannot write {path}: {exc.strerror}") from exc
