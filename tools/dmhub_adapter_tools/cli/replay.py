"""``dmhub-adapter replay {dlq,unmapped} [--limit N] [--dry-run]``: another try after a fix.

* ``dlq`` moves messages from ``DEAD_LETTER_QUEUE_URL`` back to ``EVENT_QUEUE_URL``: the
  ``failure`` block the sender added is stripped, the event kept; a message is deleted from
  the DLQ only after it was sent. Messages that are not queued events (a malformed body the
  sender dead-lettered) stay where they are and are reported.
* ``unmapped`` re-maps each ``UNMAPPED_QUEUE_URL`` record with the current mapping config and
  enqueues the events (claims make a second replay harmless); a record whose messages still
  do not map stays on the queue with its reasons. A record stored by reference (over the
  queue's size limit, in ``UNMAPPED_BUCKET``) is read back from S3; its object is left for
  the bucket's lifecycle rule to expire.

Messages kept (and, with ``--dry-run``, all messages) are made visible again at the end.
Prints a JSON summary on stdout and a progress bar on stderr; exit 1 when some were kept.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TextIO

from dmhub_adapter_tools.sqs_peek import release

RECEIVE_VISIBILITY = 120


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "replay",
        help="move dead-lettered or unmapped messages back for another try",
        description="dlq: move DEAD_LETTER_QUEUE_URL messages back to EVENT_QUEUE_URL (the failure block "
        "stripped). unmapped: re-map UNMAPPED_QUEUE_URL records with the current mapping config and "
        "enqueue the events. Messages are deleted only once handled; the rest stay on their queue.",
    )
    parser.add_argument("queue", choices=["dlq", "unmapped"], help="which queue to replay")
    parser.add_argument("--limit", type=int, default=None, help="handle at most N messages")
    parser.add_argument("--dry-run", action="store_true",
                        help="change nothing; re-map (unmapped) or re-validate (dlq) each message with the current "
                        "mappings and say what would be delivered, skipped or still fail, and why")
    parser.add_argument("--id", dest="ids", action="append", default=[], metavar="MESSAGE_ID",
                        help="only these SQS message ids (repeatable; see `unmapped show` / `dlq show`)")
    parser.add_argument(
        "--wait-seconds", type=int, default=1, help="SQS long-poll wait per receive (default 1; 0-20)"
    )
    parser.set_defaults(func=run)


class Progress:
    """A stdlib progress bar on a terminal; a final line elsewhere (CI logs stay readable)."""

    def __init__(self, label: str, total: int | None, stream: TextIO | None = None) -> None:
        self.label = label
        self.total = total
        self.done = 0
        self.stream = stream or sys.stderr
        self.live = bool(getattr(self.stream, "isatty", lambda: False)())

    def advance(self, step: int = 1) -> None:
        self.done += step
        if self.live:
            self.stream.write("\r" + self._line())
            self.stream.flush()

    def _line(self) -> str:
        if self.total:
            width = 30
            filled = min(width, int(width * self.done / self.total))
            return f"{self.label} [{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total}"
        return f"{self.label} {self.done}"

    def close(self) -> None:
        self.stream.write(("\r" if self.live else "") + self._line() + "\n")
        self.stream.flush()


@dataclass
class ReplaySummary:
    queue: str
    dry_run: bool
    seen: int = 0
    replayed: int = 0
    kept: list[dict[str, Any]] = field(default_factory=list)
    would_replay: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "queue": self.queue,
            "dryRun": self.dry_run,
            "seen": self.seen,
            "replayed": self.replayed,
            "kept": len(self.kept),
        }
        if self.kept:
            out["keptMessages"] = self.kept
        if self.dry_run:
            out["wouldReplay"] = self.would_replay
        return out


#: handles one message: returns None when done (delete it), else the reason to keep it
Handler = Callable[[dict[str, Any]], str | None]


def _approximate(sqs: Any, url: str) -> int | None:
    try:
        attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
        return int(attributes["Attributes"]["ApproximateNumberOfMessages"])
    except Exception:
        return None


def drain(
    sqs: Any,
    url: str,
    handle: Handler,
    summary: ReplaySummary,
    *,
    limit: int | None,
    wait_seconds: int = 1,
    progress: Progress | None = None,
    ids: set[str] | None = None,
) -> ReplaySummary:
    """Receive until the queue is empty or ``limit`` is reached; delete what ``handle`` finished.
    With ``ids`` only those messages are handled (the others are made visible again)."""
    seen: set[str] = set()
    wanted = set(ids or ())
    to_release: list[dict[str, Any]] = []
    try:
        while limit is None or summary.seen < limit:
            batch = 10 if limit is None else min(10, limit - summary.seen)
            response = sqs.receive_message(
                QueueUrl=url,
                MaxNumberOfMessages=batch,
                VisibilityTimeout=RECEIVE_VISIBILITY,
                WaitTimeSeconds=wait_seconds,
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
            )
            messages = [m for m in response.get("Messages", []) if m["MessageId"] not in seen]
            if not messages:
                break
            for message in messages:
                seen.add(message["MessageId"])
                if wanted and message["MessageId"] not in wanted:
                    to_release.append(message)
                    continue
                summary.seen += 1
                reason = handle(message)
                if reason is None and not summary.dry_run:
                    sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
                    summary.replayed += 1
                else:
                    if reason is not None:
                        summary.kept.append({"messageId": message["MessageId"], "reason": reason})
                    to_release.append(message)
                if progress is not None:
                    progress.advance()
            if wanted and wanted <= seen:
                break
    finally:
        # what stays on the queue is visible again at once, not after RECEIVE_VISIBILITY
        release(sqs, url, [m["ReceiptHandle"] for m in to_release])
        if progress is not None:
            progress.close()
    return summary


def dlq_handler(sqs: Any, event_queue_url: str, summary: ReplaySummary) -> Handler:
    from dmhub_adapter.ingest.handoff import message_attributes
    from dmhub_adapter.queue import OutgoingMessage, send_messages
    from dmhub_adapter.sender.core import FAILURE_KEY, parse_body

    def handle(message: dict[str, Any]) -> str | None:
        try:
            data, event = parse_body(message["Body"])
        except ValueError as exc:
            if summary.dry_run:
                say(f"{message['MessageId']}: still fails validation: {exc}")
            return f"not replayable: {exc}"
        assert data is not None
        clean = {k: v for k, v in data.items() if k != FAILURE_KEY}
        if summary.dry_run:
            failure = data.get(FAILURE_KEY) or {}
            summary.would_replay.append(
                {"messageId": message["MessageId"], "claimKey": event.claim_key, "failure": failure.get("reason"),
                 "event": event.event.event, "externalId": event.event.externalId,
                 "now": "valid: would go back to EventQueue"}
            )
            say(f"{message['MessageId']}: would go back to EventQueue: {event.event.event} "
                f"[{event.event.externalId}] (failed with: {failure.get('reason') or 'no reason kept'})")
            return None
        send_messages(
            event_queue_url, [OutgoingMessage(body=clean, attributes=message_attributes(event))], client=sqs
        )
        return None

    return handle


def say(line: str) -> None:
    """One readable line per message on stderr (the JSON summary stays alone on stdout)."""
    print(line, file=sys.stderr, flush=True)


def describe(preview: dict[str, Any]) -> str:
    """One message of a dry run, as a person reads it."""
    number = f"message #{preview['message']}"
    if preview["status"] == "deliver":
        events = ", ".join(f"{e['event']} [{e['externalId']}]" for e in preview["events"])
        return f"{number}: would deliver {events} (rule {preview['rule']!r})"
    if preview["status"] == "skip":
        return f"{number}: would be skipped by rule {preview['rule']!r}: {preview['reason']}"
    return f"{number}: still {preview['status']}: {preview['reason']}"


def preview_record(record: dict[str, Any]) -> list[dict[str, Any]]:
    """What replaying ``record`` would do per message, with the current mappings, changing nothing."""
    from dmhub_adapter.ingest.unmapped import RecordError, request_from_record, resolve_record
    from dmhub_adapter.settings import Settings
    from dmhub_adapter.sources.registry import source_for
    from dmhub_adapter_tools.dryrun import preview_messages
    from dmhub_adapter_tools.replay import ReplayError

    try:
        full = resolve_record(record)
        request = request_from_record(full)
    except RecordError as exc:
        raise ReplayError(str(exc)) from exc
    source = source_for(request.source, Settings.from_env().mappings_dir)
    if source is None:
        raise ReplayError(f"source {request.source!r} has no mapping config any more")
    return preview_messages(source, request, record=full)


def unmapped_handler(summary: ReplaySummary) -> Handler:
    from dmhub_adapter.ingest.bootstrap import build_pipeline
    from dmhub_adapter.ingest.pipeline import IngestPipeline
    from dmhub_adapter.settings import IngestSettings
    from dmhub_adapter_tools.dryrun import DryRunError
    from dmhub_adapter_tools.replay import ReplayError, replay_unmapped_record

    pipeline: IngestPipeline | None = None

    def handle(message: dict[str, Any]) -> str | None:
        nonlocal pipeline
        try:
            record = json.loads(message["Body"])
        except ValueError:
            return "not replayable: body is not JSON"
        if not isinstance(record, dict):
            return "not replayable: body is not a JSON object"
        if summary.dry_run:
            try:
                previews = preview_record(record)
            except (ReplayError, DryRunError) as exc:
                say(f"{message['MessageId']}: not replayable: {exc}")
                return f"not replayable: {exc}"
            pending = [p for p in previews if p["status"] in ("unmapped", "rejected")]
            summary.would_replay.append(
                {
                    "messageId": message["MessageId"],
                    "source": record.get("source"),
                    "account": record.get("account"),
                    "storedReasons": record.get("reasons") or [],
                    "now": previews,
                    **({"storedAt": record["payload_ref"]} if record.get("payload_ref") else {}),
                }
            )
            for preview in previews:
                say(f"{message['MessageId']} {describe(preview)}")
            return ("still unmapped: " + "; ".join(f"message #{p['message']}: {p['reason']}" for p in pending)
                    if pending else None)
        if pipeline is None:
            pipeline = build_pipeline(IngestSettings.from_env())
        try:
            result = replay_unmapped_record(record, pipeline=pipeline)
        except ReplayError as exc:
            return f"not replayable: {exc}"
        return None if result.resolved else "still unmapped: " + "; ".join(result.reasons)

    return handle


def run(args: argparse.Namespace) -> int:
    from dmhub_adapter import aws
    from dmhub_adapter.settings import Settings
    from dmhub_adapter_tools.cli import CommandError

    if args.limit is not None and args.limit < 1:
        raise CommandError("--limit must be at least 1")
    settings = Settings.from_env()
    summary = ReplaySummary(queue=args.queue, dry_run=args.dry_run)
    try:
        sqs = aws.client("sqs")
        if args.queue == "dlq":
            url = settings.require("dead_letter_queue_url")
            handle = dlq_handler(sqs, settings.require("event_queue_url"), summary)
        else:
            url = settings.require("unmapped_queue_url")
            if not args.dry_run:
                settings.require("event_queue_url")
                settings.require("idempotency_table")
            handle = unmapped_handler(summary)
        total = _approximate(sqs, url)
        if total is not None and args.limit is not None:
            total = min(total, args.limit)
        label = f"replay {args.queue}" + (" (dry run)" if args.dry_run else "")
        drain(
            sqs,
            url,
            handle,
            summary,
            limit=args.limit,
            wait_seconds=max(0, min(20, args.wait_seconds)),
            progress=Progress(label, total),
            ids=set(args.ids),
        )
    except RuntimeError as exc:  # a missing environment variable
        raise CommandError(str(exc)) from exc
    except Exception as exc:
        json.dump(summary.to_json(), sys.stdout, ensure_ascii=False, indent=2)
        sys.stdout.write("\n")
        raise CommandError(f"stopped after {summary.seen} message(s): {type(exc).__name__}: {exc}") from exc
    json.dump(summary.to_json(), sys.stdout, ensure_ascii=False, indent=2)
    sys.stdout.write("\n")
    return 1 if summary.kept else 0
