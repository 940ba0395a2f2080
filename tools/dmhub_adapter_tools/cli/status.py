"""``dmhub-adapter status``: how the stack stands, in one screen.

Per queue (EventQueue, DeadLetterQueue, UnmappedQueue): messages waiting and in flight, and the
age of the oldest — CloudWatch's ``ApproximateAgeOfOldestMessage`` where it has data (a deployed
stack), else read from the messages themselves: the DLQ's and the UnmappedQueue's are peeked
(received and made visible again at once; those queues have no redrive, so the extra receive
count is harmless), the EventQueue's from the oldest QUEUED claim (peeking it would count
toward its redrive to the DLQ). Then the claims by status and the age of the DM Hub token the
senders share, both from the idempotency table. Works against the local stack (after
``eval "$(dmhub-adapter dev --print-env)"``) or, with AWS credentials and the stack's outputs as
variables, a deployed one.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from dmhub_adapter_tools.sqs_peek import release

QUEUES = (("EventQueue", "event_queue_url"), ("DeadLetterQueue", "dead_letter_queue_url"),
          ("UnmappedQueue", "unmapped_queue_url"))
#: messages peeked per queue for the oldest one's age
PEEK_MAX = 100


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "status",
        help="queue depths and oldest-message ages, claims by status, the DM Hub token's age",
        description=__doc__.split("\n\n", 1)[1] if __doc__ else None,
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    parser.add_argument("--max-scan", type=int, default=100_000, metavar="N",
                        help="read at most N items of the idempotency table (default 100000)")
    parser.set_defaults(func=run)


def _cloudwatch_age(name: str) -> float | None:
    from dmhub_adapter import aws

    try:
        now = datetime.now(UTC)
        points = aws.client("cloudwatch").get_metric_statistics(
            Namespace="AWS/SQS", MetricName="ApproximateAgeOfOldestMessage",
            Dimensions=[{"Name": "QueueName", "Value": name}], StartTime=now - timedelta(minutes=10),
            EndTime=now, Period=60, Statistics=["Maximum"]).get("Datapoints") or []
    except Exception:
        return None
    latest = max(points, key=lambda p: p["Timestamp"]) if points else None
    return float(latest["Maximum"]) if latest else None


def _peek_age(sqs: Any, url: str) -> float | None:
    from dmhub_adapter_tools.cli.queues import SCAN_VISIBILITY

    received: list[dict[str, Any]] = []
    try:
        while len(received) < PEEK_MAX:
            messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=SCAN_VISIBILITY,
                                           WaitTimeSeconds=0, AttributeNames=["SentTimestamp"]).get("Messages", [])
            if not messages:
                break
            received.extend(messages)
    finally:
        release(sqs, url, [m["ReceiptHandle"] for m in received])
    stamps = [int(m["Attributes"]["SentTimestamp"]) / 1000 for m in received
              if "SentTimestamp" in m.get("Attributes", {})]
    return time.time() - min(stamps) if stamps else None


def _queue(sqs: Any, label: str, url: str, oldest_claim: float | None) -> dict[str, Any]:
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=[
        "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
    waiting = int(attributes.get("ApproximateNumberOfMessages", 0))
    in_flight = int(attributes.get("ApproximateNumberOfMessagesNotVisible", 0))
    age = _cloudwatch_age(url.rsplit("/", 1)[-1])
    how = "cloudwatch"
    if age is None and waiting + in_flight:
        if label == "EventQueue":
            age, how = ((time.time() - oldest_claim) if oldest_claim else None), "oldest QUEUED claim"
        else:
            age, how = _peek_age(sqs, url), "peeked"
    return {"queue": label, "waiting": waiting, "inFlight": in_flight,
            "oldestAgeSeconds": round(age, 1) if age is not None else None, "ageFrom": how if age is not None else None}


def _table(table: str, max_scan: int) -> dict[str, Any]:
    from dmhub_adapter import aws

    statuses: Counter[str] = Counter()
    oldest_queued: float | None = None
    token: dict[str, Any] | None = None
    scanned = 0
    kwargs: dict[str, Any] = {"TableName": table,
                              "ProjectionExpression": "pk, #s, queuedAt, fetchedAt, tokenExpiresAt",
                              "ExpressionAttributeNames": {"#s": "status"}}
    client = aws.dynamodb()
    while scanned < max_scan:
        page = client.scan(**kwargs, Limit=min(1000, max_scan - scanned))
        for item in page.get("Items", []):
            scanned += 1
            status = item.get("status", {}).get("S")
            if status:
                statuses[status] += 1
                if status == "QUEUED" and "queuedAt" in item:
                    at = float(item["queuedAt"]["N"])
                    oldest_queued = at if oldest_queued is None else min(oldest_queued, at)
            if "tokenExpiresAt" in item:
                fetched = float(item.get("fetchedAt", {}).get("N", 0))
                expires = float(item["tokenExpiresAt"]["N"])
                if token is None or fetched > token["fetchedAt"]:
                    token = {"fetchedAt": fetched, "expiresAt": expires}
        if "LastEvaluatedKey" not in page:
            break
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    now = time.time()
    return {
        "claims": {s: statuses.get(s, 0) for s in ("PENDING", "QUEUED", "DELIVERED", "FAILED")},
        "scanned": scanned,
        "complete": scanned < max_scan,
        "oldestQueuedClaim": oldest_queued,
        "token": None if token is None else {"ageSeconds": round(now - token["fetchedAt"], 1),
                                              "expiresInSeconds": round(token["expiresAt"] - now, 1)},
    }


def human(seconds: float | None) -> str:
    """``12 s``, ``4 min``, ``2 h 5 min``, ``3 d 4 h``."""
    if seconds is None:
        return "—"
    seconds = max(0, int(seconds))
    if seconds < 120:
        return f"{seconds} s"
    minutes = seconds // 60
    if minutes < 120:
        return f"{minutes} min"
    hours = minutes // 60
    return f"{hours} h {minutes % 60} min" if hours < 48 else f"{hours // 24} d {hours % 24} h"


def run(args: argparse.Namespace) -> int:
    import os

    from dmhub_adapter import aws
    from dmhub_adapter.settings import Settings
    from dmhub_adapter_tools.cli import CommandError

    settings = Settings.from_env()
    try:
        urls = {label: settings.require(attribute) for label, attribute in QUEUES}
        table = settings.require("idempotency_table")
    except RuntimeError as exc:
        raise CommandError(str(exc)) from exc
    try:
        facts = _table(table, args.max_scan)
        sqs = aws.client("sqs")
        queues = [_queue(sqs, label, url, facts["oldestQueuedClaim"]) for label, url in urls.items()]
    except Exception as exc:
        if type(exc).__name__ in ("NoRegionError", "NoCredentialsError"):
            raise
        raise CommandError(f"cannot read the stack: {type(exc).__name__}: {exc}") from exc
    endpoint = os.environ.get("AWS_ENDPOINT_URL")
    report = {"stack": f"local ({endpoint})" if endpoint else f"AWS {sqs.meta.region_name}", "queues": queues,
              "claims": facts["claims"], "claimsScanned": facts["scanned"], "claimsComplete": facts["complete"],
              "dmhubToken": facts["token"]}
    if args.json:
        json.dump(report, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    print(f"stack            {report['stack']}")
    for queue in queues:
        age = (f", oldest {human(queue['oldestAgeSeconds'])} ({queue['ageFrom']})"
               if queue["oldestAgeSeconds"] is not None else "")
        print(f"{queue['queue']:<16} {queue['waiting']} waiting, {queue['inFlight']} in flight{age}")
    claims = ", ".join(f"{k} {v}" for k, v in facts["claims"].items())
    scanned = "" if facts["complete"] else f" (first {facts['scanned']} items only: --max-scan)"
    print(f"claims           {claims}{scanned}")
    token = facts["token"]
    print("DM Hub token     " + (f"fetched {human(token['ageSeconds'])} ago, expires in "
                                  f"{human(token['expiresInSeconds'])}" if token else "none shared yet"))
    return 0
