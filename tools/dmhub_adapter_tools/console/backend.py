"""What the console's pages read and do, kept apart from the web layer so it can be tested
without a browser. Every read is bounded: queues are peeked (first ``limit`` messages, made
visible again at once), claims are read by key or by one bounded, cached scan."""

from __future__ import annotations

import base64
import json
import logging
import re
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from dmhub_adapter_tools.console.target import Target
from dmhub_adapter_tools.sqs_peek import release

log = logging.getLogger("dmhub_adapter_tools.console")

#: messages read from a queue for a listing (a page may ask for up to 200)
PEEK_LIMIT = 20
#: a queue deeper than this is listed from the background refresher's last peek when its depth
#: changed, rather than peeked while the page waits (each receive scans the whole queue in moto)
SYNC_DEPTH = 100
#: how long a peeked message stays hidden while the console reads its batch
PEEK_VISIBILITY = 5
#: pages (1 MB each) scanned for the last hour's local counts: a bounded read; the page says
#: when it stopped
SCAN_PAGES = 50
#: seconds the overview's counts are reused before being read again
COUNTS_TTL = 10.0
#: seconds a queue's last peek may be shown; the refresher renews it after SNAPSHOT_RENEW
SNAPSHOT_TTL = 120.0
SNAPSHOT_RENEW = 60.0
#: the background refresher's tick, and how long after the last page view it keeps going
REFRESH_INTERVAL = 3.0
REFRESH_IDLE = 300.0
#: the payload viewer shows this much of a body at most
VIEW_LIMIT = 256 * 1024
QUEUES = {"events": "EVENT_QUEUE_URL", "dlq": "DEAD_LETTER_QUEUE_URL", "unmapped": "UNMAPPED_QUEUE_URL"}
QUEUE_TITLES = {"events": "EventQueue", "dlq": "Dead letters (DLQ)", "unmapped": "UnmappedQueue"}
OUTCOMES = ("enqueued", "duplicate", "skipped", "unmapped", "refused")


class ConsoleError(Exception):
    """A failure the page shows as a message (never a traceback)."""


class NotFound(ConsoleError):
    """What the page names is not there (an unknown queue, a message no longer queued): 404."""


def _iso(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def age_text(seconds: float | None) -> str:
    """A short human age: 42 s, 5 min, 3 h, 2 d."""
    if seconds is None:
        return "-"
    seconds = max(0.0, seconds)
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / 86400:.0f} d"


@dataclass
class QueueMessage:
    """One peeked SQS message, decoded for display."""

    message_id: str
    body: str
    sent_at: float | None
    receive_count: int
    attributes: dict[str, str]
    data: Any = None
    source: str = "-"
    account: str = "-"
    reason: str = "-"
    external_id: str | None = None
    claim_key: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    payload: str | None = None
    payload_type: str | None = None

    @property
    def age(self) -> str:
        """How long ago SQS received the message."""
        return age_text(time.time() - self.sent_at if self.sent_at else None)

    @property
    def pretty(self) -> str:
        """The body, pretty-printed when it is JSON."""
        if self.data is None:
            return self.body[:VIEW_LIMIT]
        return json.dumps(self.data, ensure_ascii=False, indent=2)[:VIEW_LIMIT]

    @property
    def pretty_payload(self) -> str:
        """An unmapped record's payload, decoded and pretty-printed where it is JSON or XML."""
        if self.payload is None:
            return ""
        text = self.payload
        try:
            return json.dumps(json.loads(text), ensure_ascii=False, indent=2)[:VIEW_LIMIT]
        except ValueError:
            pass
        if text.lstrip().startswith("<"):
            try:
                from defusedxml import minidom

                return str(minidom.parseString(text).toprettyxml(indent="  "))[:VIEW_LIMIT]
            except Exception:  # noqa: S110 - shown as it came when it is not well-formed XML
                pass
        return text[:VIEW_LIMIT]


def decode_message(queue: str, raw: Mapping[str, Any]) -> QueueMessage:
    """A DLQ message (queued event + failure block) or an UnmappedQueue record, for display."""
    attributes = raw.get("Attributes") or {}
    sent = attributes.get("SentTimestamp")
    message = QueueMessage(
        message_id=str(raw["MessageId"]),
        body=str(raw.get("Body", "")),
        sent_at=int(sent) / 1000 if sent else None,
        receive_count=int(attributes.get("ApproximateReceiveCount", 0)),
        attributes={k: str(v.get("StringValue", "")) for k, v in (raw.get("MessageAttributes") or {}).items()},
    )
    try:
        message.data = json.loads(message.body)
    except ValueError:
        message.reason = "body is not JSON"
        return message
    data = message.data
    if not isinstance(data, dict):
        return message
    message.source = str(data.get("source") or "-")
    message.account = str(data.get("account") or "-")
    if queue == "dlq":
        failure = data.get("failure") or {}
        message.reason = str(failure.get("reason") or "-") if isinstance(failure, dict) else "-"
        event = data.get("event") if isinstance(data.get("event"), dict) else {}
        message.external_id = str(event.get("externalId")) if event and event.get("externalId") else None
        message.claim_key = str(data.get("claim_key")) if data.get("claim_key") else None
    else:
        message.reason = "; ".join(str(r) for r in data.get("reasons") or []) or "-"
        message.headers = {str(k): str(v) for k, v in (data.get("headers") or {}).items()}
        message.payload_type = str(data.get("payload_type") or "") or None
        if data.get("payload_ref"):
            message.payload = None
            message.reason += f" (payload stored in S3: {data.get('payload_ref')})"
        elif isinstance(data.get("payload"), str):
            if data.get("payload_encoding") == "base64":
                try:
                    message.payload = base64.b64decode(data["payload"]).decode("utf-8", "replace")
                except ValueError:
                    message.payload = data["payload"]
            else:
                message.payload = data["payload"]
    return message


@dataclass
class Snapshot:
    """One peek of a queue: when, the depth it saw, the messages."""

    taken_at: float
    depth: int
    messages: list[QueueMessage]

    def serves(self, limit: int, depth: int | None) -> bool:
        """Whether this peek may stand in for a new one of ``limit`` messages: fresh enough,
        long enough, and taken at the queue's current depth unless the queue is deep."""
        if time.time() - self.taken_at > SNAPSHOT_TTL:
            return False
        if depth is not None and depth != self.depth and depth <= SYNC_DEPTH:
            return False
        return len(self.messages) >= limit or len(self.messages) >= self.depth

    @property
    def age(self) -> str:
        """How old this peek is."""
        return age_text(time.time() - self.taken_at)


class Backend:
    """The console's reads and actions against one :class:`Target`."""

    def __init__(self, target: Target, *, http: httpx.Client | None = None) -> None:
        self.target = target
        self.env = target.environment
        self.http = http or httpx.Client(timeout=5.0)
        self._clients: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._counts: tuple[float, dict[str, Any]] | None = None
        #: the last peek of each queue, reused while the queue's depth is unchanged and it is fresh
        self._snapshots: dict[str, Snapshot | None] = {"dlq": None, "unmapped": None}
        self._peek_lock = threading.Lock()
        self._stale: set[str] = set()
        self._refresher: threading.Thread | None = None
        self._stop = threading.Event()
        self._last_visit = 0.0

    def client(self, service: str) -> Any:
        """A cached boto3 client for the target."""
        with self._lock:
            if service not in self._clients:
                self._clients[service] = self.target.client(service)
            return self._clients[service]

    def queue_url(self, queue: str) -> str:
        """The URL of ``events``, ``dlq`` or ``unmapped``."""
        url = self.env.get(QUEUES[queue])
        if not url:
            raise ConsoleError(f"the stack has no {QUEUES[queue]}")
        return url

    # -- overview ------------------------------------------------------------------------------

    def queue_stats(self, queue: str) -> dict[str, Any]:
        """Depth (visible, in flight) and the oldest message's age of one queue."""
        sqs = self.client("sqs")
        url = self.queue_url(queue)
        attributes = sqs.get_queue_attributes(
            QueueUrl=url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        visible = int(attributes.get("ApproximateNumberOfMessages", 0))
        in_flight = int(attributes.get("ApproximateNumberOfMessagesNotVisible", 0))
        oldest: float | None = None
        if self.target.deployed:
            oldest = self._metric_latest("AWS/SQS", "ApproximateAgeOfOldestMessage",
                                         [{"Name": "QueueName", "Value": url.rsplit("/", 1)[-1]}], "Maximum")
        elif visible and queue in self._snapshots:
            # moto reports no age: the oldest message of the last peek (never a receive on
            # EventQueue, where a receive would count towards moving a message to the DLQ)
            snapshot = self._snapshots[queue]
            sent = [m.sent_at for m in snapshot.messages if m.sent_at] if snapshot else []
            oldest = time.time() - min(sent) if sent else None
        return {
            "name": queue,
            "title": QUEUE_TITLES[queue],
            "visible": visible,
            "in_flight": in_flight,
            "oldest": age_text(oldest) if oldest is not None else "-",
        }

    def counts(self, *, force: bool = False) -> dict[str, Any]:
        """Delivered, dead-lettered and unmapped in the last hour (cached for COUNTS_TTL)."""
        now = time.time()
        cached = self._counts
        if cached is not None and now - cached[0] < COUNTS_TTL and not force:
            return cached[1]
        result = self._cloudwatch_counts() if self.target.deployed else self._local_counts(now)
        self._counts = (now, result)
        return result

    def _local_counts(self, now: float) -> dict[str, Any]:
        """The local stack's counters: claims delivered or failed since an hour ago (one bounded
        scan of the table), unmapped and received from the gateway's request log."""
        since = int(now - 3600)
        dynamodb = self.client("dynamodb")
        delivered = failed = pages = 0
        truncated = False
        kwargs: dict[str, Any] = {
            "TableName": self.env["IDEMPOTENCY_TABLE"],
            "ProjectionExpression": "#s, deliveredAt, failedAt",
            "FilterExpression": "deliveredAt >= :since OR failedAt >= :since",
            "ExpressionAttributeNames": {"#s": "status"},
            "ExpressionAttributeValues": {":since": {"N": str(since)}},
        }
        while True:
            page = dynamodb.scan(**kwargs)
            pages += 1
            for item in page.get("Items", []):
                status = item.get("status", {}).get("S")
                if status == "DELIVERED":
                    delivered += 1
                elif status == "FAILED":
                    failed += 1
            if "LastEvaluatedKey" not in page:
                break
            if pages >= SCAN_PAGES:
                truncated = True
                break
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        note = "delivered and dead-lettered: claims whose deliveredAt/failedAt is in the last hour" + (
            f" (stopped after {SCAN_PAGES} MB of the table)" if truncated else "")
        try:
            requests = self.requests(limit=None)
        except ConsoleError as exc:
            return {"delivered": delivered, "dead_lettered": failed, "unmapped": "-", "received": "-",
                    "outcomes": {}, "note": f"{note}; {exc}"}
        recent = [r for r in requests if r["epoch"] >= since]
        outcomes = {name: sum(r["counts"].get(name, 0) for r in recent) for name in OUTCOMES}
        return {
            "delivered": delivered,
            "dead_lettered": failed,
            "unmapped": outcomes["unmapped"],
            "received": len(recent),
            "outcomes": outcomes,
            "note": f"{note}; received and unmapped: the gateway's request log",
        }

    def _cloudwatch_counts(self) -> dict[str, Any]:
        """The stack's DmhubAdapter metrics (service = stack name), summed over the last hour."""
        cloudwatch = self.client("cloudwatch")
        end = time.time()
        names = {"delivered": "Delivered", "dead_lettered": "Failed", "unmapped": "Unmapped", "received": "Received"}
        queries = [
            {
                "Id": key,
                "MetricStat": {
                    "Metric": {
                        "Namespace": "DmhubAdapter",
                        "MetricName": metric,
                        "Dimensions": [{"Name": "service", "Value": self.target.stack_name}],
                    },
                    "Period": 300,
                    "Stat": "Sum",
                },
            }
            for key, metric in names.items()
        ]
        # EndTime a minute ahead: the API truncates times, and the current second's points count too
        response = cloudwatch.get_metric_data(
            MetricDataQueries=queries, StartTime=end - 3600, EndTime=end + 60, ScanBy="TimestampDescending"
        )
        values = {r["Id"]: int(sum(r.get("Values") or [0])) for r in response.get("MetricDataResults", [])}
        result: dict[str, Any] = {key: values.get(key, 0) for key in names}
        result["outcomes"] = {}
        result["note"] = f"CloudWatch, namespace DmhubAdapter, service={self.target.stack_name}"
        return result

    def _metric_latest(self, namespace: str, metric: str, dimensions: list[dict[str, str]], stat: str
                       ) -> float | None:
        end = time.time()
        response = self.client("cloudwatch").get_metric_data(
            MetricDataQueries=[{"Id": "m", "MetricStat": {
                "Metric": {"Namespace": namespace, "MetricName": metric, "Dimensions": dimensions},
                "Period": 60, "Stat": stat}}],
            StartTime=end - 900, EndTime=end + 60, ScanBy="TimestampDescending",
        )
        for result in response.get("MetricDataResults", []):
            if result.get("Values"):
                return float(result["Values"][0])
        return None

    def alarms(self) -> list[dict[str, str]]:
        """The stack's CloudWatch alarms (named ``{stack}-…``) and their states; none locally."""
        if not self.target.deployed:
            return []
        response = self.client("cloudwatch").describe_alarms(AlarmNamePrefix=f"{self.target.stack_name}-",
                                                             MaxRecords=100)
        return [
            {"name": a["AlarmName"], "state": a.get("StateValue", "-"), "reason": a.get("StateReason", "")}
            for a in response.get("MetricAlarms", [])
        ]

    def token_age(self) -> str:
        """How old the senders' shared DM Hub token is (the token itself is never read out)."""
        from dmhub_adapter.store.tokens import TokenTable

        app_id = self._dmhub_app_id()
        if app_id is None:
            return "unknown (no DM Hub secret)"
        stored, _version = TokenTable(self.env["IDEMPOTENCY_TABLE"], self.client("dynamodb"), app_id=app_id).read()
        if stored is None:
            return "none yet"
        now = time.time()
        left = stored.expires_at - now
        return f"{age_text(now - stored.fetched_at)} old, " + (
            f"expires in {age_text(left)}" if left > 0 else "expired")

    def _dmhub_app_id(self) -> str | None:
        try:
            from dmhub_adapter.secrets import load_credentials
            from dmhub_adapter.settings import Settings

            return load_credentials(Settings.from_env(self.env).secret_name("dmhub")).app_id
        except Exception:
            return None

    def overview(self) -> dict[str, Any]:
        """Everything the overview page shows."""
        queues = []
        for name in QUEUES:
            try:
                queues.append(self.queue_stats(name))
            except Exception as exc:
                queues.append({"name": name, "title": QUEUE_TITLES[name], "error": _brief(exc)})
        try:
            cached = self._counts
            if self._refresher is not None:
                # the refresher counts (a scan of the table, seconds at 10,000 claims in moto):
                # the page shows its last count and never waits for one
                counts: dict[str, Any] = {**cached[1], "age": age_text(time.time() - cached[0])} if cached else {
                    "pending": True}
            else:
                counts = self.counts()
        except Exception as exc:
            counts = {"error": _brief(exc)}
        try:
            alarms: list[dict[str, str]] | str = self.alarms()
        except Exception as exc:
            alarms = _brief(exc)
        try:
            token = self.token_age()
        except Exception as exc:
            token = _brief(exc)
        return {"queues": queues, "counts": counts, "alarms": alarms, "token": token, "at": _iso(time.time())}

    # -- the gateway's request log (local) ------------------------------------------------------

    def requests(self, *, since: int = 0, limit: int | None = 500) -> list[dict[str, Any]]:
        """The local gateway's recent requests, newest first (``GET /_local/requests``)."""
        if not self.target.gateway:
            raise ConsoleError("the request feed exists only for the local stack")
        try:
            response = self.http.get(f"{self.target.gateway}/_local/requests", params={"since": since})
            response.raise_for_status()
            data = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise ConsoleError(f"cannot read the gateway's request log: {_brief(exc)}") from exc
        rows = [_request_row(r) for r in data.get("requests", []) if isinstance(r, dict)] if isinstance(
            data, dict) else []
        rows.sort(key=lambda r: int(r.get("seq") or 0), reverse=True)
        return rows if limit is None else rows[:limit]

    # -- trace ---------------------------------------------------------------------------------

    def known_accounts(self) -> list[tuple[str, str]]:
        """Source/account pairs: the local stack's accounts, or a deployed stack's secrets' names."""
        if self.target.accounts:
            return self.target.accounts
        prefix = self.env.get("SECRETS_PREFIX", "dmhub-adapter") + "/"
        pairs = []
        paginator = self.client("secretsmanager").get_paginator("list_secrets")
        for page in paginator.paginate(Filters=[{"Key": "name", "Values": [prefix]}]):
            for secret in page.get("SecretList", []):
                parts = str(secret.get("Name", ""))[len(prefix):].split("/")
                if len(parts) == 2 and all(parts):
                    pairs.append((parts[0], parts[1]))
        return pairs

    def find_claims(self, query: str, source: str = "", account: str = "") -> list[dict[str, Any]]:
        """Claims matching a search: a claim key (``source#account#key``), an externalId as DM Hub
        holds it (``source:account:key``), or a mapping's key under one or every known
        source/account (one BatchGetItem, never a scan)."""
        from dmhub_adapter.store.claims import claim_key

        query = query.strip()
        if not query:
            return []
        namespaced = _NAMESPACED.match(query)
        if query.count("#") >= 2 and not (source or account):
            keys = [query]
        elif namespaced and not namespaced.group(3).startswith("~sha256:"):
            # the externalId as DM Hub holds it: {source}:{account}:{the mapping's key}
            keys = [claim_key(*namespaced.groups())]
        elif source and account:
            keys = [claim_key(source, account, query)]
        else:
            keys = [claim_key(s, a, query) for s, a in self.known_accounts()
                    if (not source or s == source) and (not account or a == account)]
        found: list[dict[str, Any]] = []
        table = self.env["IDEMPOTENCY_TABLE"]
        for start in range(0, len(keys), 100):
            chunk = keys[start:start + 100]
            response = self.client("dynamodb").batch_get_item(
                RequestItems={table: {"Keys": [{"pk": {"S": k}} for k in chunk]}})
            for item in response.get("Responses", {}).get(table, []):
                found.append(_plain(item))
        return sorted(found, key=lambda i: str(i.get("pk")))

    def trace(self, key: str, *, partition: str | None = None) -> dict[str, Any]:
        """One claim: its item, its history, its message in the DLQ (if peeked there) and the
        event as DM Hub returns it."""
        from dmhub_adapter.store.claims import ClaimTable
        from dmhub_adapter_tools.cli.trace import render_claim

        item = ClaimTable(self.env["IDEMPOTENCY_TABLE"], self.client("dynamodb")).get(key)
        report: dict[str, Any] = {"key": key, "claim": None, "history": [], "message": None, "event": None}
        if item is None:
            report["explanation"] = ("no claim: the webhook never reached the ingest, was refused, went to the "
                                     "UnmappedQueue, or its claim expired")
            return report
        report["claim"] = render_claim(item)
        steps = (("claimedAt", "claimed"), ("queuedAt", "queued"), ("deliveredAt", "delivered"),
                 ("failedAt", "failed (dead-lettered)"))
        report["history"] = sorted(
            ((item[name], label) for name, label in steps if isinstance(item.get(name), (int, float))),
            key=lambda pair: pair[0])
        report["history"] = [{"at": _iso(at), "what": label} for at, label in report["history"]]
        if item.get("status") == "FAILED":
            in_dlq = [m for m in self.peek("dlq", depth=self.depth("dlq")) if m.claim_key == key]
            if in_dlq:
                report["message"] = in_dlq[0]
        dmhub_id = item.get("dmhubId")
        if item.get("status") == "DELIVERED" and dmhub_id not in (None, "-"):
            try:
                with self.dmhub_client() as client:
                    report["event"] = client.get_event(int(dmhub_id), partition=partition).model_dump(mode="json")
            except Exception as exc:
                report["event_error"] = _brief(exc)
        return report

    # -- queues --------------------------------------------------------------------------------

    def _peek_raw(self, queue: str, limit: int, *, visibility: int = PEEK_VISIBILITY) -> list[QueueMessage]:
        sqs = self.client("sqs")
        url = self.queue_url(queue)
        seen: dict[str, QueueMessage] = {}
        handles: list[str] = []
        try:
            for _ in range(limit // 10 + 2):
                if len(seen) >= limit:
                    break
                response = sqs.receive_message(
                    QueueUrl=url, MaxNumberOfMessages=min(10, limit - len(seen)), VisibilityTimeout=visibility,
                    WaitTimeSeconds=0, AttributeNames=["All"], MessageAttributeNames=["All"])
                batch = [m for m in response.get("Messages", []) if m["MessageId"] not in seen]
                if not batch:
                    break
                for raw in batch:
                    seen[raw["MessageId"]] = decode_message(queue, raw)
                    handles.append(raw["ReceiptHandle"])
        finally:
            if visibility:
                release(sqs, url, handles)
        return list(seen.values())

    def peek(self, queue: str, limit: int = PEEK_LIMIT, *, depth: int | None = None) -> list[QueueMessage]:
        """The first ``limit`` messages of a queue, left on it (visible again at once).

        The last peek is reused while it is younger than SNAPSHOT_TTL, holds ``limit`` messages
        (or the whole queue) and the queue's depth (``depth``, if the caller read it) is the
        one it saw: a receive costs a full pass over the queue in moto_server (about 1 s at
        1,000 messages), so the background refresher keeps these ready."""
        limit = max(1, min(limit, 200))
        snapshot = self._snapshots.get(queue)
        if snapshot is not None and snapshot.serves(limit, depth):
            if depth is not None and depth != snapshot.depth:
                self._stale.add(queue)  # the refresher renews it at its next tick
            return snapshot.messages[:limit]
        return self.refresh(queue, limit).messages[:limit]

    def snapshot_age(self, queue: str) -> str:
        """How old the listing of ``queue`` is."""
        snapshot = self._snapshots.get(queue)
        return snapshot.age if snapshot else "-"

    def refresh(self, queue: str, limit: int = PEEK_LIMIT) -> Snapshot:
        """Peek a queue now and keep the result as its snapshot."""
        with self._peek_lock:
            depth = self.depth(queue)
            messages = self._peek_raw(queue, max(limit, PEEK_LIMIT))
            snapshot = Snapshot(time.time(), depth, messages)
            self._snapshots[queue] = snapshot
            self._stale.discard(queue)
            return snapshot

    def depth(self, queue: str) -> int:
        """How many messages a queue holds, visible or in flight (one cheap attribute read):
        a peek in progress moves messages between the two, not out of the queue."""
        attributes = self.client("sqs").get_queue_attributes(
            QueueUrl=self.queue_url(queue),
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
        return int(attributes.get("ApproximateNumberOfMessages", 0)) + int(
            attributes.get("ApproximateNumberOfMessagesNotVisible", 0))

    def message(self, queue: str, message_id: str) -> QueueMessage | None:
        """A message of the last peek (SQS cannot fetch one by id), else peeked again."""
        snapshot = self._snapshots.get(queue)
        found = next((m for m in snapshot.messages if m.message_id == message_id), None) if snapshot else None
        if found is None:
            found = next((m for m in self.refresh(queue, 200).messages if m.message_id == message_id), None)
        return found

    def visited(self) -> None:
        """A page was served: the background refresher keeps working for REFRESH_IDLE seconds."""
        self._last_visit = time.time()

    def start_refresher(self, interval: float = REFRESH_INTERVAL) -> threading.Thread:
        """Keep the queue snapshots and the last hour's counts fresh in the background while
        the console is in use, so pages are served without waiting on slow reads."""

        def loop() -> None:
            while not self._stop.is_set():
                if time.time() - self._last_visit < REFRESH_IDLE or self._last_visit == 0.0:
                    for queue, snapshot in list(self._snapshots.items()):
                        if (snapshot is not None and queue not in self._stale
                                and time.time() - snapshot.taken_at < SNAPSHOT_RENEW):
                            continue
                        try:
                            self.refresh(queue)
                        except Exception as exc:  # shown by the page's own read; keep refreshing
                            log.debug("refreshing %s failed: %s", queue, exc)
                    try:
                        self.counts()
                    except Exception as exc:
                        log.debug("counting failed: %s", exc)
                    if self._last_visit == 0.0:
                        self._last_visit = -1.0  # warmed once at start; afterwards only while in use
                self._stop.wait(interval)

        thread = threading.Thread(target=loop, name="console-refresher", daemon=True)
        thread.start()
        self._refresher = thread
        return thread

    def stop(self) -> None:
        """Stop the background refresher."""
        self._stop.set()

    def act(self, queue: str, action: str, ids: Iterable[str] | None, *, limit: int = 1000) -> dict[str, Any]:
        """Replay or delete the messages ``ids`` (None: all, up to ``limit``) of ``dlq`` or
        ``unmapped``. Messages not selected, or kept by the replay, are made visible again."""
        from dmhub_adapter_tools.cli.replay import ReplaySummary, dlq_handler, unmapped_handler

        if not self.target.allow_actions:
            raise ConsoleError("actions on a deployed stack need `dmhub-adapter console --allow-actions`")
        if action not in ("replay", "delete"):
            raise ConsoleError(f"unknown action {action!r}")
        wanted = set(ids) if ids is not None else None
        summary = ReplaySummary(queue=queue, dry_run=False)
        handle: Callable[[dict[str, Any]], str | None]
        if action == "delete":
            def handle(_message: dict[str, Any]) -> str | None:
                return None
        elif queue == "dlq":
            handle = dlq_handler(self.client("sqs"), self.queue_url("events"), summary)
        else:
            handle = unmapped_handler(summary)
        sqs = self.client("sqs")
        url = self.queue_url(queue)
        with self._peek_lock:  # a peek in progress hides messages: wait for it to put them back
            return self._act(sqs, url, queue, action, wanted, handle, limit)

    def _act(self, sqs: Any, url: str, queue: str, action: str, wanted: set[str] | None,
             handle: Callable[[dict[str, Any]], str | None], limit: int) -> dict[str, Any]:
        done, kept = 0, []
        to_release: list[str] = []
        seen: set[str] = set()
        try:
            while len(seen) < limit and (wanted is None or not wanted <= seen):
                response = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=60,
                                               WaitTimeSeconds=0, AttributeNames=["All"],
                                               MessageAttributeNames=["All"])
                batch = [m for m in response.get("Messages", []) if m["MessageId"] not in seen]
                if not batch:
                    break
                for raw in batch:
                    seen.add(raw["MessageId"])
                    if wanted is not None and raw["MessageId"] not in wanted:
                        to_release.append(raw["ReceiptHandle"])
                        continue
                    reason = handle(raw)
                    if reason is None:
                        sqs.delete_message(QueueUrl=url, ReceiptHandle=raw["ReceiptHandle"])
                        done += 1
                    else:
                        kept.append({"messageId": raw["MessageId"], "reason": reason})
                        to_release.append(raw["ReceiptHandle"])
        finally:
            release(sqs, url, to_release)
            self._snapshots[queue] = None
        missing = sorted(wanted - seen) if wanted is not None else []
        return {"action": action, "queue": queue, "done": done, "kept": kept, "missing": missing}

    # -- mapping preview -----------------------------------------------------------------------

    def remap(self, message: QueueMessage) -> dict[str, Any]:
        """What an unmapped record becomes with today's mappings (nothing is enqueued)."""
        if message.payload is None:
            return {"error": "the record holds no inline payload"}
        return preview_mapping(message.source, message.payload.encode("utf-8"), message.headers,
                               account=message.account, mappings_dir=self.env.get("MAPPINGS_DIR"))

    # -- DM Hub --------------------------------------------------------------------------------

    def dmhub_client(self) -> Any:
        """A DM Hub client on the senders' shared token (the CLI's)."""
        from dmhub_adapter_tools.cli import CommandError
        from dmhub_adapter_tools.cli.events import dmhub_client_from_env

        try:
            return dmhub_client_from_env()
        except CommandError as exc:
            raise ConsoleError(str(exc)) from exc

    def dmhub_events(self, **filters: Any) -> list[dict[str, Any]]:
        """CustomerEvents matching filters, newest first."""
        from dmhub_adapter.dmhub.errors import DmhubError

        try:
            with self.dmhub_client() as client:
                events = client.query_events(sidx="lastUpdated", sord="desc", **filters)
        except DmhubError as exc:
            raise ConsoleError(exc.describe()) from exc
        except ValueError as exc:
            raise ConsoleError(str(exc)) from exc
        return [e.model_dump(mode="json", exclude_none=True) for e in events]


def preview_mapping(
    source: str,
    payload: bytes,
    headers: Mapping[str, str],
    *,
    account: str = "demo",
    yaml_text: str | None = None,
    mappings_dir: str | None = None,
) -> dict[str, Any]:
    """Map a payload with a source's current mapping, or with an edited YAML (checked as
    ``check-config`` does, then used from a scratch directory: nothing reaches the stack)."""
    from dmhub_adapter.errors import WebhookError
    from dmhub_adapter.mapping.config import SOURCE_NAME_RE, MappingConfigError
    from dmhub_adapter.mapping.engine import map_payload
    from dmhub_adapter.sources.base import Account
    from dmhub_adapter.sources.registry import check_directory, source_for
    from dmhub_adapter.webhook import WebhookRequest

    result: dict[str, Any] = {"config_errors": [], "messages": [], "rejected": [], "error": None}
    with tempfile.TemporaryDirectory(prefix="console-mapping-") as scratch:
        directory = mappings_dir
        if yaml_text is not None and yaml_text.strip():
            if not SOURCE_NAME_RE.match(source):
                result["error"] = "a source name is letters, digits, '-' and '_'"
                return result
            (Path(scratch) / f"{source}.yaml").write_text(yaml_text, encoding="utf-8")
            problems = next(iter(check_directory(scratch).values()), [])
            if problems:
                result["config_errors"] = problems
                result["config_fields"] = [pair for problem in problems for pair in _field_errors(problem)]
                return result
            directory = scratch
        try:
            adapter = source_for(source, directory)
        except (MappingConfigError, LookupError) as exc:
            result["error"] = f"the mapping of {source!r} is invalid: {exc}"
            return result
        if adapter is None:
            result["error"] = f"unknown source {source!r}"
            return result
        request = WebhookRequest(method="POST", source=source, account=account, body=payload,
                                 headers={k.lower(): v for k, v in headers.items()}, received_at=time.time())
        try:
            inbound = adapter.parse_unverified(request, Account(source, account, adapter.mapping, None))
        except WebhookError as exc:
            result["error"] = f"the payload cannot be parsed: {exc.message}"
            return result
        result["rejected"] = [f"message #{r.index + 1}: {r.reason}" for r in inbound.rejected]
        for index, mapped in enumerate(map_payload(adapter.mapping, inbound.messages,
                                                   {"source": source, "account": account}), 1):
            result["messages"].append({
                "index": index,
                "status": mapped.status,
                "rule": mapped.rule,
                "reason": mapped.reason,
                "field_errors": _field_errors(mapped.reason),
                "events": [
                    {
                        "rule": event.rule,
                        "identity": event.identity.model_dump(exclude_none=True) if event.identity else None,
                        "event": json.dumps(event.event.to_request(), ensure_ascii=False, indent=2),
                    }
                    for event in mapped.events
                ],
            })
    return result


_NAMESPACED = re.compile(r"^([a-z0-9-]+):([A-Za-z0-9_.-]+):(.+)$")
_FIELD_PROBLEM = re.compile(r"field '([^']+)': (.*?)(?=; rule |$)")


def _field_errors(reason: str | None) -> list[dict[str, str]]:
    """The (field, problem) pairs a mapping failure or a check-config problem names."""
    return [{"field": m.group(1), "problem": m.group(2)} for m in _FIELD_PROBLEM.finditer(reason or "")]


def _request_row(record: Mapping[str, Any]) -> dict[str, Any]:
    """One ``/_local/requests`` record with what the feed shows: epoch and clock time, the
    non-zero outcome counts, and the main outcome (the first of OUTCOMES that happened)."""
    from datetime import datetime

    row = dict(record)
    try:
        moment = datetime.fromisoformat(str(record.get("time"))).timestamp()
    except ValueError:
        moment = 0.0
    row["epoch"] = moment
    row["at"] = time.strftime("%H:%M:%S", time.gmtime(moment)) if moment else "-"
    raw = record.get("outcome")
    counts = {name: int(raw.get(name) or 0) for name in OUTCOMES} if isinstance(raw, dict) else {}
    row["counts"] = counts
    row["outcome"] = next((name for name in OUTCOMES if counts.get(name)), None)
    row["outcome_text"] = ", ".join(f"{name} {n}" for name, n in counts.items() if n)
    row["externalIds"] = [str(x) for x in record.get("externalIds") or []]
    return row


def _plain(item: Mapping[str, Any]) -> dict[str, Any]:
    """A DynamoDB item in the client's typed form, as plain values."""
    out: dict[str, Any] = {}
    for name, value in item.items():
        kind, inner = next(iter(value.items()))
        out[name] = int(inner) if kind == "N" and str(inner).lstrip("-").isdigit() else inner
    return out


def _brief(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc)[:300]}"
