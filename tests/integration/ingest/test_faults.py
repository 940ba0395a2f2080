"""Fault injection on every step of the hand-off, through the real handler and moto over HTTP.

Faults are injected on the package's shared boto3 clients (the ones the handler uses), so the
rest of each request runs against moto for real.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest
from botocore.exceptions import ClientError

from dmhub_adapter import aws as aws_clients
from dmhub_adapter.records import replace
from dmhub_adapter.store import claims as claims_module
from tests.integration.ingest.conftest import Ingest, order


def client_error(code: str, operation: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": f"injected {code}"}}, operation)


def failing(code: str, operation: str, calls: list[Any] | None = None) -> Callable[..., Any]:
    def fail(**kwargs: Any) -> Any:
        if calls is not None:
            calls.append(kwargs)
        raise client_error(code, operation)

    return fail


def test_dynamodb_throttling_on_claim_is_503_and_nothing_is_enqueued(ingest: Ingest, fault: Any) -> None:
    dynamodb = aws_clients.client("dynamodb")
    outage = fault(dynamodb, "put_item", failing("ProvisionedThroughputExceededException", "PutItem"))

    response = ingest.invoke(order("T1"))

    assert response.status == 503 and response.json()["error"] == "unavailable"
    assert "Throughput" not in response.body
    assert ingest.events() == [] and ingest.unmapped() == []
    assert ingest.claim("order|T1") is None
    outage.stop()
    assert ingest.invoke(order("T1")).status == 200
    assert len(ingest.events()) == 1


def test_throttling_midway_releases_the_claims_already_taken(ingest: Ingest, monkeypatch: pytest.MonkeyPatch) -> None:
    dynamodb = aws_clients.client("dynamodb")
    real_put = dynamodb.put_item
    puts: list[str] = []

    def second_put_throttled(**kwargs: Any) -> Any:
        puts.append(kwargs["Item"]["pk"]["S"])
        if len(puts) == 2:
            raise client_error("ThrottlingException", "PutItem")
        return real_put(**kwargs)

    monkeypatch.setattr(dynamodb, "put_item", second_put_throttled)

    response = ingest.invoke({"events": [order("M1"), order("M2"), order("M3")]})

    assert response.status == 503
    assert puts == ["acme#shop1#order|M1", "acme#shop1#order|M2"]
    assert ingest.claim("order|M1") is None and ingest.claim("order|M2") is None
    assert ingest.events() == []


def test_sqs_failure_after_claim_releases_it_and_the_retry_enqueues_exactly_once(ingest: Ingest, fault: Any) -> None:
    sqs = aws_clients.client("sqs")
    calls: list[list[str]] = []

    def all_failed(**kwargs: Any) -> dict[str, Any]:
        calls.append([entry["Id"] for entry in kwargs["Entries"]])
        return {"Successful": [], "Failed": [
            {"Id": entry["Id"], "SenderFault": False, "Code": "InternalError", "Message": "injected"}
            for entry in kwargs["Entries"]
        ]}

    outage = fault(sqs, "send_message_batch", all_failed)

    response = ingest.invoke(order("S1"))

    assert response.status == 503
    assert calls == [["0"], ["0"], ["0"]]  # the failed entry retried, then given up
    assert ingest.claim("order|S1") is None  # released: the platform's retry is not blocked
    outage.stop()

    retry = ingest.invoke(order("S1"))

    assert retry.status == 200 and retry.json()["enqueued"] == 1
    assert [m["body"]["event"]["externalId"] for m in ingest.events()] == ["acme:shop1:order|S1"]
    assert ingest.claim("order|S1")["status"] == "QUEUED"  # type: ignore[index]
    assert ingest.invoke(order("S1")).json()["duplicates"] == 1
    assert ingest.events() == []


def test_a_partially_failed_batch_keeps_what_was_sent_and_releases_the_rest(ingest: Ingest, fault: Any) -> None:
    sqs = aws_clients.client("sqs")
    real_send = sqs.send_message_batch

    def entry_one_fails(**kwargs: Any) -> dict[str, Any]:
        keep = [entry for entry in kwargs["Entries"] if entry["Id"] != "1"]
        response = real_send(QueueUrl=kwargs["QueueUrl"], Entries=keep) if keep else {"Successful": []}
        failed = [{"Id": "1", "SenderFault": False, "Code": "InternalError", "Message": "injected"}]
        dropped = len(keep) < len(kwargs["Entries"])
        return {"Successful": response.get("Successful", []), "Failed": failed if dropped else []}

    outage = fault(sqs, "send_message_batch", entry_one_fails)
    payload = {"events": [order("P0"), order("P1"), order("P2")]}

    assert ingest.invoke(payload).status == 503
    assert ingest.claim("order|P0")["status"] == "QUEUED"  # type: ignore[index]
    assert ingest.claim("order|P1") is None
    assert ingest.claim("order|P2")["status"] == "QUEUED"  # type: ignore[index]
    outage.stop()

    retry = ingest.invoke(payload)

    assert retry.status == 200 and (retry.json()["enqueued"], retry.json()["duplicates"]) == (1, 2)
    ids = sorted(m["body"]["event"]["externalId"] for m in ingest.events())
    assert ids == ["acme:shop1:order|P0", "acme:shop1:order|P1", "acme:shop1:order|P2"]


class Died(BaseException):
    """The process dying (timeout, out of memory) between two steps: nothing catches it."""


def test_crash_between_enqueue_and_mark_is_recovered_after_the_lease_lapses(
    ingest: Ingest, fault: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    def die(*args: Any, **kwargs: Any) -> bool:
        raise Died()

    outage = fault(claims_module.ClaimTable, "mark_queued", die)
    with pytest.raises(Died):
        ingest.invoke(order("X1"), remaining_ms=10_000)
    outage.stop()
    item = ingest.claim("order|X1")
    assert item is not None and item["status"] == "PENDING"
    assert item["leaseUntil"] <= (time.time() + 10.5) * 1000  # as long as the invocation could live

    # A retry while the lease runs: the holder might still be working, so neither ack nor enqueue.
    early = ingest.invoke(order("X1"))
    assert early.status == 503

    # The retry after the lease lapsed (the claim store's clock moved past it).
    later = time.time() + 60
    monkeypatch.setattr(claims_module, "time", SimpleNamespace(time=lambda: later))
    retry = ingest.invoke(order("X1"))

    assert retry.status == 200 and retry.json()["enqueued"] == 1
    messages = ingest.events()
    assert len(messages) == 2
    assert {m["body"]["event"]["externalId"] for m in messages} == {"acme:shop1:order|X1"}
    assert {m["body"]["claim_key"] for m in messages} == {"acme#shop1#order|X1"}
    assert ingest.claim("order|X1")["status"] == "QUEUED"  # type: ignore[index]


def test_mark_failing_after_a_successful_send_still_acknowledges(
    ingest: Ingest, monkeypatch: pytest.MonkeyPatch
) -> None:
    dynamodb = aws_clients.client("dynamodb")
    real_update = dynamodb.update_item
    throttled = failing("ThrottlingException", "UpdateItem")

    def mark_throttled(**kwargs: Any) -> Any:  # the claim (also an UpdateItem) goes through
        if ":queued" in kwargs["ExpressionAttributeValues"]:
            return throttled(**kwargs)
        return real_update(**kwargs)

    monkeypatch.setattr(dynamodb, "update_item", mark_throttled)

    response = ingest.invoke(order("Y1"))

    assert response.status == 200  # the event is on the queue; the lease lapses on its own
    assert len(ingest.events()) == 1
    assert ingest.claim("order|Y1")["status"] == "PENDING"  # type: ignore[index]


def test_unmapped_queue_failure_is_503_and_the_retry_keeps_the_payload(ingest: Ingest, fault: Any) -> None:
    sqs = aws_clients.client("sqs")
    real_send = sqs.send_message_batch
    unmapped_url = ingest.stack.unmapped_queue_url

    def unmapped_down(**kwargs: Any) -> Any:
        if kwargs["QueueUrl"] == unmapped_url:
            raise client_error("ServiceUnavailable", "SendMessageBatch")
        return real_send(**kwargs)

    outage = fault(sqs, "send_message_batch", unmapped_down)
    payload = {"events": [order("U1"), {"type": "refund", "id": "R9", "user": "u"}]}

    assert ingest.invoke(payload).status == 503
    outage.stop()
    retry = ingest.invoke(payload)

    assert retry.status == 200 and retry.json()["duplicates"] == 1
    assert [m["body"]["event"]["externalId"] for m in ingest.events()] == ["acme:shop1:order|U1"]
    (kept,) = ingest.unmapped()
    assert kept["body"]["reasons"] == ["message #2: no rule matched this message"]


def test_secrets_manager_failures_are_503_and_not_cached(ingest: Ingest, fault: Any) -> None:
    secrets = aws_clients.client("secretsmanager")
    for code in ("ThrottlingException", "InternalServiceError", "AccessDeniedException"):
        outage = fault(secrets, "get_secret_value", failing(code, "GetSecretValue"))

        response = ingest.invoke(order("Z1"))

        assert response.status == 503 and response.json()["error"] == "unavailable", code
        outage.stop()
    assert ingest.invoke(order("Z1")).status == 200


def test_unknown_accounts_are_remembered_briefly(ingest: Ingest, monkeypatch: pytest.MonkeyPatch) -> None:
    secrets = aws_clients.client("secretsmanager")
    real_get = secrets.get_secret_value
    names: list[str] = []

    def counting(**kwargs: Any) -> Any:
        names.append(kwargs["SecretId"])
        return real_get(**kwargs)

    monkeypatch.setattr(secrets, "get_secret_value", counting)

    statuses = [ingest.invoke(order(), account="ghost").status for _ in range(3)]

    assert statuses == [404, 404, 404]
    assert names == ["dmhub-adapter/acme/ghost"]


def test_concurrent_duplicates_enqueue_exactly_once(ingest: Ingest) -> None:
    # Threads share one pipeline the way concurrent Lambda containers share the table; the
    # Powertools handler wrapper is left out because a Lambda process never runs two
    # invocations at once and its metric set is process-global.
    from dmhub_adapter.apigw import request_from_event
    from dmhub_adapter.ingest.bootstrap import build_pipeline
    from dmhub_adapter.observability import RecordingMetrics
    from dmhub_adapter.settings import IngestSettings
    from dmhub_adapter_tools.local.apigw_event import make_event

    pipeline = build_pipeline(replace(IngestSettings.from_env(), claim_wait_seconds=20.0))
    body = b'{"type": "order", "id": "K1", "user": "u", "at": 1732780800}'
    threads = 8
    barrier = threading.Barrier(threads)
    results: list[tuple[int, str]] = []
    sinks = [RecordingMetrics() for _ in range(threads)]

    def deliver(index: int) -> None:
        request = request_from_event(make_event(method="POST", source="acme", account="shop1", body=body,
                                                headers={"content-type": "application/json"}))
        barrier.wait()
        response = pipeline.handle(request, metrics=sinks[index])
        results.append((response.status, response.body))

    workers = [threading.Thread(target=deliver, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()

    assert [status for status, _ in results] == [200] * threads
    assert sum(sink.counts["Enqueued"] for sink in sinks) == 1
    assert sum(sink.counts["Duplicate"] for sink in sinks) == threads - 1
    assert [m["body"]["event"]["externalId"] for m in ingest.events()] == ["acme:shop1:order|K1"]
