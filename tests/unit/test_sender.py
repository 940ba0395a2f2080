"""Sender logic: classification, retries within the time budget, DLQ, claims, concurrency.

DM Hub is an httpx.MockTransport; DynamoDB and SQS are moto in-process."""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import httpx
import pytest
from moto import mock_aws

from dmhub_adapter.dmhub.client import DmhubClient, StaticToken
from dmhub_adapter.dmhub.errors import HttpError, RateLimited, TransportError
from dmhub_adapter.dmhub.identity import IdentityResolver
from dmhub_adapter.model.customer_event import QueuedEvent
from dmhub_adapter.sender.core import RetryLater, Sender, parse_body
from dmhub_adapter.sender.events import sqs_event
from dmhub_adapter.sender.retry import RetryPolicy
from dmhub_adapter.store.claims import ClaimTable, claim_key
from dmhub_adapter.store.identities import IdentityTable
from dmhub_adapter_tools.local.resources import create_stack


def queued(n: int = 1, *, event: str = "c_order_paid", customer_id: int | None = None, **extra: Any) -> dict[str, Any]:
    body = QueuedEvent.model_validate(
        {
            "source": "acme",
            "account": "shop1",
            "claim_key": claim_key("acme", "shop1", f"ext-{n}"),
            "trace_id": f"trace-{n}",
            "rule": "order",
            "identity": None if customer_id else {"type": "acme-uid", "value": f"u{n}", "create": True},
            "event": {
                "event": event,
                "date": "2024-05-01T10:00:00Z",
                "externalId": f"ext-{n}",
                **({"customerId": customer_id} if customer_id else {}),
                **extra,
            },
        }
    )
    return body.model_dump(mode="json")


class FakeDmhub:
    """Answers the event and identity calls; ``script`` lets a test queue responses for POSTs."""

    def __init__(self) -> None:
        self.script: list[Callable[[httpx.Request], httpx.Response]] = []
        self.posted: list[dict[str, Any]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.delay = 0.0
        #: called first on every request (on the sending thread)
        self.hook: Callable[[], None] | None = None
        self.lock = threading.Lock()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if self.hook is not None:
            self.hook()
        if request.url.path == "/v1/customeridentities":
            return httpx.Response(200, json=[])
        if request.url.path == "/v1/customerandidentities":
            value = json.loads(request.content)["customerIdentities"][0]["identityValue"]
            return httpx.Response(201, json={"id": 1000 + int(value[1:])})
        with self.lock:
            scripted = self.script.pop(0) if self.script else None
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.delay:
                time.sleep(self.delay)
            if scripted is not None:
                return scripted(request)
            body = json.loads(request.content)
            with self.lock:
                self.posted.append(body)
                return httpx.Response(201, json={"id": 500 + len(self.posted), **body})
        finally:
            with self.lock:
                self.in_flight -= 1


@dataclass
class Env:
    sender: Sender
    fake: FakeDmhub
    claims: ClaimTable
    sqs: Any
    dlq: str
    sleeps: list[float]

    def dlq_messages(self) -> list[dict[str, Any]]:
        out = self.sqs.receive_message(QueueUrl=self.dlq, MaxNumberOfMessages=10, MessageAttributeNames=["All"])
        return [json.loads(m["Body"]) for m in out.get("Messages", [])]


@pytest.fixture
def env() -> Iterator[Env]:
    fake = FakeDmhub()
    with mock_aws():
        session = boto3.session.Session()
        stack = create_stack(session)
        ddb, sqs = session.client("dynamodb"), session.client("sqs")
        client = DmhubClient("https://dmhub.test", token_source=StaticToken("t"), transport=httpx.MockTransport(fake))
        claims = ClaimTable(stack.table, ddb)
        sleeps: list[float] = []
        sender = Sender(
            dmhub=client,
            resolver=IdentityResolver(client, store=IdentityTable(stack.table, ddb)),
            claims=claims,
            dead_letter_queue_url=stack.dead_letter_queue_url,
            sqs=sqs,
            policy=RetryPolicy(base_delay=0.01, max_delay=0.05, safety_margin=0.0),
            sleep=sleeps.append,
            rng=random.Random(7),
        )
        yield Env(sender, fake, claims, sqs, stack.dead_letter_queue_url, sleeps)


def claim(env: Env, n: int) -> dict[str, Any]:
    item = env.claims.get(claim_key("acme", "shop1", f"ext-{n}"))
    assert item is not None
    return item


def plain(status: int, text: str = "", **headers: str) -> Callable[[httpx.Request], httpx.Response]:
    return lambda request: httpx.Response(status, text=text, headers=headers)


def test_happy_batch_is_delivered_and_claims_marked(env: Env) -> None:
    response, stats = env.sender.process_batch(sqs_event([queued(1), queued(2, customer_id=99)]), None)
    assert response == {"batchItemFailures": []}
    assert stats.delivered == 2
    by_external = {p["externalId"]: p for p in env.fake.posted}
    assert by_external["ext-1"]["customerId"] == 1001  # resolved (created) from the identity
    assert by_external["ext-2"]["customerId"] == 99
    for n in (1, 2):
        item = claim(env, n)
        assert item["status"] == "DELIVERED" and int(item["dmhubId"]) > 500


def test_validation_error_goes_to_dlq_and_the_rest_is_delivered(env: Env) -> None:
    invalid = {
        "error": {
            "code": "400001",
            "message": "field validation exception",
            "fieldErrors": [{"fieldName": "event", "message": "unknown event type c_bad"}],
        }
    }

    def route(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        if body["event"] == "c_bad":
            return httpx.Response(200, json=invalid)
        env.fake.posted.append(body)
        return httpx.Response(201, json={"id": 900, **body})

    env.fake.script = [route, route]
    event = sqs_event([queued(1, event="c_bad", customerId=5), queued(2, customer_id=5)])
    response, stats = env.sender.process_batch(event, None)
    assert response == {"batchItemFailures": []}  # the permanent failure is not left to SQS
    assert stats.dead_lettered == 1 and stats.delivered == 1
    (dead,) = env.dlq_messages()
    assert dead["event"]["externalId"] == "ext-1"
    assert dead["failure"]["kind"] == "validation"
    assert dead["failure"]["fieldErrors"] == [{"fieldName": "event", "message": "unknown event type c_bad"}]
    assert "unknown event type" in dead["failure"]["reason"]
    assert dead["failure"]["at"].endswith("Z")
    assert claim(env, 1)["status"] == "FAILED" and "validation" in claim(env, 1)["reason"]
    assert claim(env, 2)["status"] == "DELIVERED"


def test_retryable_errors_are_retried_with_backoff_then_delivered(env: Env) -> None:
    env.fake.script = [plain(503, "busy"), plain(502, "bad gateway")]
    response, stats = env.sender.process_batch(sqs_event([queued(1, customer_id=5)]), None)
    assert response == {"batchItemFailures": []}
    assert stats.retried == 2 and stats.delivered == 1
    assert len(env.sleeps) == 2 and all(0 < s <= 0.05 for s in env.sleeps)
    assert len(env.fake.posted) == 1


def test_429_honours_retry_after(env: Env) -> None:
    env.fake.script = [plain(429, "slow", **{"Retry-After": "0.3"})]
    env.sender.process_batch(sqs_event([queued(1, customer_id=5)]), None)
    assert env.sleeps[0] >= 0.3
    assert claim(env, 1)["status"] == "DELIVERED"


class Context:
    def __init__(self, millis: int) -> None:
        self.millis = millis

    def get_remaining_time_in_millis(self) -> int:
        return self.millis


def test_retryable_failure_without_time_left_is_reported_for_redelivery(env: Env) -> None:
    env.fake.script = [plain(503)] * 20
    env.sender.policy = RetryPolicy(base_delay=0.5, max_delay=1.0, safety_margin=0.0)
    event = sqs_event([queued(1, customer_id=5)])
    response, stats = env.sender.process_batch(event, Context(millis=600))
    assert response == {"batchItemFailures": [{"itemIdentifier": event["Records"][0]["messageId"]}]}
    assert stats.left_for_retry == 1
    assert env.dlq_messages() == []
    assert env.claims.get(claim_key("acme", "shop1", "ext-1")) is None  # untouched
    assert len(env.sleeps) == 1  # one retry fitted in the budget, the next did not


def test_attempts_are_bounded_too(env: Env) -> None:
    env.fake.script = [plain(500)] * 20
    env.sender.policy = RetryPolicy(base_delay=0.001, max_delay=0.001, max_attempts=3, safety_margin=0.0)
    with pytest.raises(RetryLater):
        env.sender.deliver(json.dumps(queued(1, customer_id=5)), message_id="m", deadline=time.monotonic() + 30)
    assert len(env.fake.script) == 17


def test_malformed_message_goes_to_dlq_with_raw_body(env: Env) -> None:
    event = sqs_event(["not json", json.dumps({"source": "acme"})])
    response, stats = env.sender.process_batch(event, None)
    assert response == {"batchItemFailures": []}
    assert stats.dead_lettered == 2
    dead = env.dlq_messages()
    assert {d["failure"]["kind"] for d in dead} == {"malformed"}
    kept = sorted(json.dumps({k: v for k, v in d.items() if k != "failure"}) for d in dead)
    assert kept == sorted([json.dumps({"raw": "not json"}), json.dumps({"source": "acme"})])
    assert any("not a queued event" in d["failure"]["reason"] for d in dead)


def test_unknown_identity_not_creatable_is_permanent(env: Env) -> None:
    body = queued(1)
    body["identity"]["create"] = False
    env.sender.process_batch(sqs_event([body]), None)
    (dead,) = env.dlq_messages()
    assert dead["failure"]["kind"] == "unknown_identity"
    assert env.fake.posted == []


def test_records_are_sent_concurrently_with_a_bound(env: Env) -> None:
    env.fake.delay = 0.05
    env.sender.concurrency = 4
    response, stats = env.sender.process_batch(sqs_event([queued(n, customer_id=5) for n in range(10)]), None)
    assert response == {"batchItemFailures": []} and stats.delivered == 10
    assert 2 <= env.fake.max_in_flight <= 4


def test_batches_share_one_pool_started_once(env: Env) -> None:
    """A warm container's batches run on the threads the pool started once (``2 x concurrency``
    at most): every record waits until all four are in, so each batch needs four threads at
    once, and a pool per batch would start four new ones each time."""
    env.sender.concurrency = 4
    together = threading.Barrier(4, timeout=10)
    workers: set[threading.Thread] = set()  # the objects, so an id cannot be reused

    def meet() -> None:
        workers.add(threading.current_thread())
        together.wait()

    env.fake.hook = meet
    for batch in range(4):
        bodies = [queued(batch * 4 + n, customer_id=5) for n in range(4)]
        response, stats = env.sender.process_batch(sqs_event(bodies), None)
        assert response == {"batchItemFailures": []} and stats.delivered == 4
    assert 4 <= len(workers) <= 8
    first = set(workers)
    env.sender.close()
    response, stats = env.sender.process_batch(sqs_event([queued(90 + n, customer_id=5) for n in range(4)]), None)
    assert stats.delivered == 4  # a closed sender makes a new pool for its next batch
    assert len(workers - first) == 4
    env.sender.close()


def test_a_claim_write_does_not_hold_a_dm_hub_slot(env: Env) -> None:
    """Two DM Hub slots, three records: the first two records' claim writes wait until the third
    record's DM Hub call has started, which they could not if a record kept its slot (or its
    thread of ``concurrency``) through the write."""
    env.sender.concurrency = 2
    third_called = threading.Event()
    posted: list[str] = []
    lock = threading.Lock()

    def called() -> None:
        with lock:
            posted.append(threading.current_thread().name)
            if len(posted) == 3:
                third_called.set()

    env.fake.hook = called
    original = env.claims.mark_delivered
    waited: list[bool] = []

    def mark_delivered(key: str, dmhub_id: int | str | None) -> None:
        with lock:
            first_two = len(waited) < 2
            waited.append(True)
        if first_two:
            assert third_called.wait(timeout=10), "the third record's call never started"
        original(key, dmhub_id)

    env.claims.mark_delivered = mark_delivered  # type: ignore[method-assign]
    response, stats = env.sender.process_batch(sqs_event([queued(n, customer_id=5) for n in range(3)]), None)
    assert response == {"batchItemFailures": []} and stats.delivered == 3
    assert env.fake.max_in_flight <= 2
    env.sender.close()


def test_a_leftover_failure_block_is_ignored() -> None:
    body = {**queued(1), "failure": {"reason": "earlier", "fieldErrors": [], "at": "2024-01-01T00:00:00Z"}}
    _, event = parse_body(json.dumps(body))
    assert event.event.externalId == "ext-1"


def test_retry_policy_delays() -> None:
    policy = RetryPolicy(base_delay=0.2, max_delay=5.0)
    rng = random.Random(1)
    for attempt, ceiling in [(1, 0.2), (2, 0.4), (3, 0.8), (10, 5.0)]:
        delay = policy.delay(attempt, HttpError(503, "x"), rng)
        assert ceiling / 2 <= delay <= ceiling
    assert policy.delay(1, RateLimited("x", retry_after=7), rng) == 7
    assert not policy.should_retry(1, HttpError(400, "x"), 0.1, 10)
    assert not policy.should_retry(1, TransportError("x"), 2.0, 1.0)
    assert policy.should_retry(1, TransportError("x"), 0.1, 1.0)
