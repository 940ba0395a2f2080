"""P3 (sender throughput against the emulator) and the requests each event costs.

Both run the real handlers (``functions/*/app.py``, loaded by path) against moto_server and
the DM Hub emulator over HTTP on 127.0.0.1.
"""

from __future__ import annotations

import gc
import os
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from bench.common import FUNCTIONS, local_aws

LATENCY = 0.05


def Context() -> Any:
    from dmhub_adapter_tools.local.context import new_context

    return new_context("bench", timeout_seconds=30)


@dataclass
class Throughput:
    concurrency: int
    batch_size: int
    events: int
    seconds: float
    dmhub_calls: Counter[str] = field(default_factory=Counter)
    #: ``DMHUB_EVENT_ENDPOINT`` of the run: customerevents or collector (v1)
    endpoint: str = "customerevents"

    @property
    def per_second(self) -> float:
        return self.events / self.seconds

    @property
    def events_per_call(self) -> float:
        """Events delivered per DM Hub call in the timed run (every call counted)."""
        calls = sum(self.dmhub_calls.values())
        return self.events / calls if calls else float("nan")


@dataclass
class RequestCounts:
    webhooks: int
    events: int
    redeliveries: int
    aws_first: Counter[str]
    aws_redelivery: Counter[str]
    dmhub_per_event: dict[str, float]
    #: DynamoDB writes by the sender per delivered event, warm caches (mark DELIVERED)
    sender_writes_per_event: float = 0.0
    #: the same on the first delivery, identities new to the cache
    sender_writes_first: float = 0.0


def load_handler(name: str) -> Any:
    from dmhub_adapter_tools.local.handlers import load_handler as load

    return load(FUNCTIONS, name)


@contextmanager
def stack(latency: float = 0.0) -> Iterator[tuple[Any, Any]]:
    import boto3

    from bench.common import RemoteEmulator
    from dmhub_adapter.secrets import clear_credentials_cache
    from dmhub_adapter_tools.local.accounts import load_accounts
    from dmhub_adapter_tools.local.resources import put_accounts

    with local_aws() as aws, RemoteEmulator(latency) as dmhub:
        os.environ["DMHUB_BASE_URL"] = dmhub.base_url
        accounts = load_accounts(None)
        put_accounts(boto3.session.Session(), aws.resources.secrets_prefix,
                     {"appId": dmhub.app_id, "secret": dmhub.secret}, accounts.accounts)
        clear_credentials_cache()
        try:
            yield aws, dmhub
        finally:
            clear_credentials_cache()


def _queued(n: int, identity: int, run: str) -> dict[str, Any]:
    from dmhub_adapter.model.customer_event import QueuedEvent
    from dmhub_adapter.store.claims import claim_key

    external = f"bench-{run}-{n}"
    return QueuedEvent.model_validate({
        "source": "acme", "account": "shop1", "claim_key": claim_key("acme", "shop1", external),
        "identity": {"type": "acme-uid", "value": f"user-{identity}", "create": True},
        "event": {"event": "c_order_paid", "date": "2024-05-01T10:00:00Z", "externalId": external},
    }).model_dump(mode="json")


def _claim(bodies: list[dict[str, Any]], table: str) -> None:
    from dmhub_adapter import aws as aws_clients
    from dmhub_adapter.store.claims import ClaimTable

    claims = ClaimTable(table, aws_clients.dynamodb())
    for body in bodies:
        claim = claims.claim(body["claim_key"])
        if claim.acquired and claim.lease is not None:
            claims.mark_queued(body["claim_key"], claim.lease, "bench")


def _collect_garbage() -> None:
    """Collect the garbage earlier runs left (their handlers, clients and stacks: ~100,000
    objects, ~200 ms) before a timed run, so that a full collection they trigger does not land
    inside it: one did in P3's bare POSTs, a 240 ms call in a run of 100."""
    gc.collect()


def sender_throughput(concurrency: int, *, batches: int = 10, batch_size: int = 10,
                      latency: float = LATENCY, claim_write_seconds: float | None = None,
                      endpoint: str = "customerevents") -> Throughput:
    """Warm caches (token, identities) first; then ``batches`` SQS events straight into the
    handler, one after another, as one container receives them.

    ``endpoint`` is ``DMHUB_EVENT_ENDPOINT`` (v1): ``customerevents`` makes one DM Hub call per
    event, ``collector`` one ``batchPushEvents`` call per up to 100 events of the SQS batch.

    ``claim_write_seconds`` replaces the sender's per-event DynamoDB write (mark DELIVERED) with
    a wait of that length, as DynamoDB's own single-digit-millisecond latency with no shared
    lock: moto_server serialises its requests, so ten parallel writes queue there, which
    says more about moto than about the sender."""
    from dmhub_adapter.sender.events import sqs_event
    from dmhub_adapter.store.claims import ClaimTable

    os.environ["SENDER_CONCURRENCY"] = str(concurrency)
    original_mark = ClaimTable.mark_delivered
    if claim_write_seconds is not None:
        def mark_delivered(self: ClaimTable, key: str, dmhub_id: int | str | None) -> None:
            time.sleep(claim_write_seconds)

        ClaimTable.mark_delivered = mark_delivered  # type: ignore[method-assign]
    try:
        with stack(latency) as (aws, dmhub):
            os.environ["DMHUB_EVENT_ENDPOINT"] = endpoint  # read when the handler is imported
            sender = load_handler("sender")
            identities = batch_size
            warm = [_queued(n, n % identities, "warm") for n in range(batch_size)]
            _claim(warm, aws.resources.table)
            assert sender(sqs_event(warm), Context()) == {"batchItemFailures": []}
            run = uuid.uuid4().hex[:8]
            events = [[_queued(b * batch_size + i, i % identities, run) for i in range(batch_size)]
                      for b in range(batches)]
            for batch in events:
                _claim(batch, aws.resources.table)
            sqs_events = [sqs_event(batch) for batch in events]
            before = Counter(dmhub.state.counters()["requests"])
            _collect_garbage()
            started = time.perf_counter()
            for event in sqs_events:
                response = sender(event, Context())
                assert response == {"batchItemFailures": []}, response
            seconds = time.perf_counter() - started
            calls = Counter(dmhub.state.counters()["requests"]) - before
            created = dmhub.state.counters()["events_created"]
            assert created == batch_size * (batches + 1), created
            return Throughput(concurrency, batch_size, batches * batch_size, seconds, calls, endpoint)
    finally:
        ClaimTable.mark_delivered = original_mark  # type: ignore[method-assign]
        os.environ.pop("SENDER_CONCURRENCY", None)


def bare_posts(concurrency: int, *, batches: int = 10, batch_size: int = 10, latency: float = LATENCY) -> float:
    """Events per second of bare ``POST /v1/customerevents`` calls from a thread pool of
    ``concurrency`` over one pooled httpx client: the transport's own ceiling on this machine."""
    from concurrent.futures import ThreadPoolExecutor

    import httpx

    from bench.common import RemoteEmulator

    with RemoteEmulator(latency) as dmhub, httpx.Client(
        limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    ) as client:
        token = client.get(f"{dmhub.base_url}/security/accesstoken", params={
            "grant_type": "client_credentials", "appid": dmhub.app_id, "secret": dmhub.secret,
        }).json()["access_token"]
        run = uuid.uuid4().hex[:8]

        def post(n: int) -> None:
            response = client.post(f"{dmhub.base_url}/v1/customerevents", params={"access_token": token}, json={
                "customerId": 1, "event": "c_order_paid", "date": "2024-05-01T10:00:00Z",
                "externalId": f"bare-{run}-{n}",
            })
            assert response.status_code == 201, response.text

        with ThreadPoolExecutor(concurrency) as pool:
            list(pool.map(post, range(-batch_size, 0)))  # open the connections
            _collect_garbage()
            started = time.perf_counter()
            for batch in range(batches):
                list(pool.map(post, range(batch * batch_size, (batch + 1) * batch_size)))
            return batches * batch_size / (time.perf_counter() - started)


def _count_calls(clients: dict[str, Any], counter: Counter[str]) -> None:
    def hook(model: Any, **_: Any) -> None:
        counter[f"{model.service_model.service_name}.{model.name}"] += 1

    for service_client in clients.values():
        service_client.meta.events.register("before-call", hook)


def request_counts(webhooks: int = 40) -> RequestCounts:
    """Ingest ``webhooks`` unique webhooks (half WeChat safe-mode follows, half Taobao payments)
    and the same again as redeliveries, counting boto3 calls; then deliver them with warm caches
    and count DM Hub calls per delivered event."""
    from bench.ingest_cost import TAOBAO_SECRET, WECHAT_SECRET
    from dmhub_adapter import aws as aws_clients
    from dmhub_adapter.sender.events import sqs_event_from_messages
    from dmhub_adapter_tools.local.apigw_event import make_event
    from dmhub_adapter_tools.local.samples import build_sample

    with stack(0.0) as (aws, dmhub):
        ingest = load_handler("ingest")
        sender = load_handler("sender")
        clients = {s: aws_clients.client(s) for s in ("dynamodb", "sqs", "secretsmanager")}
        calls: Counter[str] = Counter()
        _count_calls(clients, calls)
        samples = []
        for n in range(webhooks):
            if n % 2:
                samples.append(build_sample("taobao-paid", TAOBAO_SECRET))
            else:
                samples.append(build_sample("wechat-follow", WECHAT_SECRET, openid=f"oBench{n:06d}"))

        def post(sample: Any) -> None:
            event = make_event(method="POST", source=sample.source, account="demo", body=sample.body,
                               raw_query=sample.raw_query, headers=sample.headers)
            result = ingest(event, Context())
            assert result["statusCode"] == 200, result

        post(samples[0])  # the secrets cache and clients are warm in a warm container
        calls.clear()
        for sample in samples[1:]:
            post(sample)
        first = Counter(calls)
        calls.clear()
        for sample in samples[1:]:
            post(sample)
        again = Counter(calls)

        sqs = clients["sqs"]
        calls.clear()
        delivered = 0
        warm_counters: Counter[str] | None = None
        while True:
            got = sqs.receive_message(QueueUrl=aws.resources.event_queue_url, MaxNumberOfMessages=10,
                                      AttributeNames=["All"], WaitTimeSeconds=0).get("Messages", [])
            if not got:
                break
            if warm_counters is None:  # the first batch warms the token; identities are all new
                warm_counters = Counter(dmhub.state.counters()["requests"])
            response = sender(sqs_event_from_messages(got), Context())
            assert response == {"batchItemFailures": []}, response
            for message in got:
                sqs.delete_message(QueueUrl=aws.resources.event_queue_url, ReceiptHandle=message["ReceiptHandle"])
            delivered += len(got)
        assert dmhub.state.counters()["events_created"] == webhooks, dmhub.state.counters()
        first_writes = _writes(calls) / delivered
        # warm caches: redeliver every event once more (same identities, token held)
        before = Counter(dmhub.state.counters()["requests"])
        calls.clear()
        again_events = _redeliver_all(aws, dmhub, sender)
        warm = Counter(dmhub.state.counters()["requests"]) - before
        per_event = {name: count / again_events for name, count in sorted(warm.items())}
        return RequestCounts(webhooks - 1, webhooks - 1, webhooks - 1, first, again, per_event,
                             sender_writes_per_event=_writes(calls) / again_events, sender_writes_first=first_writes)


WRITE_CALLS = ("PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems")


def _writes(calls: Counter[str]) -> int:
    return sum(count for name, count in calls.items()
               if name.startswith("dynamodb.") and name.split(".")[1] in WRITE_CALLS)


def _redeliver_all(aws: Any, dmhub: Any, sender: Any) -> int:
    """Send every stored event's queued body again (a redelivery after a lost ack): with the
    identity cache and the token warm, this is the steady state's DM Hub cost."""
    from dmhub_adapter.model.customer_event import QueuedEvent
    from dmhub_adapter.sender.events import sqs_event
    from dmhub_adapter.store.claims import claim_key

    idents = {i["customerId"]: i for i in dmhub.state.identities()}
    queued = []
    for stored in dmhub.state.events():
        ident = idents[stored["customerId"]]
        source = "wechat" if ident["identityType"] == "wechat" else "taobao"
        event = {k: v for k, v in stored.items() if k not in ("id", "lastUpdated", "customerId")}
        queued.append(QueuedEvent.model_validate({
            "source": source, "account": "demo", "claim_key": claim_key(source, "demo", event["externalId"]),
            "identity": {"type": ident["identityType"], "value": ident["identityValue"], "create": True},
            "event": event,
        }).model_dump(mode="json"))
    for start in range(0, len(queued), 10):
        response = sender(sqs_event(queued[start:start + 10]), Context())
        assert response == {"batchItemFailures": []}, response
    return len(queued)
