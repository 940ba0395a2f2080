"""One fault per step of the flow; each ends with the event in DM Hub exactly once (by
externalId) or in a dead-letter queue with its reason.

Faults are injected on the package's shared boto3 clients (the ones the handlers use) or with
the emulator's knobs; everything else runs for real over HTTP on 127.0.0.1.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from typing import Any
from unittest import mock

import pytest
from botocore.exceptions import ClientError

from dmhub_adapter import aws as aws_clients
from dmhub_adapter_tools.cli import main as cli_main
from dmhub_adapter_tools.local.handlers import load_handler
from tests.reliability.conftest import FUNCTIONS, Crash, Flow, taobao_external_id, taobao_paid
from tests.sender_app import handler as sender_module

_tids = itertools.count(3_900_000_000_000_000_001)


def new_tid() -> int:
    return next(_tids)


def throttled(operation: str) -> ClientError:
    return ClientError({"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "injected"}},
                       operation)


def failing_first(real: Callable[..., Any], exc: BaseException, times: int = 1,
                  when: Callable[[dict[str, Any]], bool] = lambda _: True) -> Callable[..., Any]:
    left = [times]

    def call(**kwargs: Any) -> Any:
        if left[0] > 0 and when(kwargs):
            left[0] -= 1
            raise exc
        return real(**kwargs)

    return call


def deliver_and_check(flow: Flow, tid: int) -> None:
    flow.drain()
    flow.assert_exactly_once(taobao_external_id(tid))
    assert flow.claim_status("taobao", taobao_external_id(tid)) == "DELIVERED"


# -- ingest ---------------------------------------------------------------------------------------


def test_claim_write_failure_answers_503_then_the_retry_delivers_once(flow: Flow, fault: Any) -> None:
    dynamodb = aws_clients.client("dynamodb")
    fault(dynamodb, "put_item", failing_first(dynamodb.put_item, throttled("PutItem"), times=10))
    sample = taobao_paid(tid := new_tid())
    assert flow.post(sample) == 503
    assert flow.receive() == []  # nothing was enqueued
    mock.patch.stopall()
    fault(dynamodb, "put_item", dynamodb.put_item)  # keep the fixture's bookkeeping simple
    assert flow.post(sample) == 200
    deliver_and_check(flow, tid)


def test_sqs_send_failure_releases_the_claim_so_the_retry_delivers_once(flow: Flow, fault: Any) -> None:
    sqs = aws_clients.client("sqs")
    real = sqs.send_message_batch
    outage = fault(sqs, "send_message_batch", failing_first(real, throttled("SendMessageBatch"), times=100))
    sample = taobao_paid(tid := new_tid())
    assert flow.post(sample) == 503
    assert flow.claim_status("taobao", taobao_external_id(tid)) is None  # released, not blocking
    outage.stop()
    assert flow.post(sample) == 200
    deliver_and_check(flow, tid)


def test_mark_queued_failure_still_delivers_once_even_when_the_platform_retries(flow: Flow, fault: Any) -> None:
    dynamodb = aws_clients.client("dynamodb")
    fault(dynamodb, "update_item", failing_first(dynamodb.update_item, throttled("UpdateItem"), times=50))
    sample = taobao_paid(tid := new_tid())
    first = flow.post(sample)
    assert first in (200, 503)
    mock.patch.stopall()
    flow.post(sample)  # the platform may retry either way
    deliver_and_check(flow, tid)


def test_crash_after_enqueue_then_redelivery_after_the_lease_delivers_once(
    flow: Flow, fault: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLAIM_LEASE_SECONDS", "1")
    flow.ingest = load_handler(FUNCTIONS, "ingest")  # settings are read when the function loads
    dynamodb = aws_clients.client("dynamodb")
    real_update = dynamodb.update_item

    def crash_on_mark(**kwargs: Any) -> Any:  # the claim (also an UpdateItem) goes through
        if ":queued" in kwargs["ExpressionAttributeValues"]:
            raise Crash()
        return real_update(**kwargs)

    crash = fault(dynamodb, "update_item", crash_on_mark)
    sample = taobao_paid(tid := new_tid())
    with pytest.raises(Crash):
        flow.post(sample)
    crash.stop()
    assert len(flow.receive(limit=10)) == 1  # the message made it before the crash
    assert flow.claim_status("taobao", taobao_external_id(tid)) == "PENDING"
    time.sleep(1.2)  # the dead invocation's lease lapses
    assert flow.post(sample) == 200  # the platform retries; enqueued a second time
    deliver_and_check(flow, tid)  # DM Hub deduplicates on externalId


# -- sender ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 503, 429])
def test_dmhub_5xx_and_429_are_retried_into_exactly_one_event(flow: Flow, status: int) -> None:
    sample = taobao_paid(tid := new_tid())
    assert flow.post(sample) == 200
    flow.dmhub.fail_next(2, status, endpoint=flow.event_endpoint, retry_after=0 if status == 429 else None)
    deliver_and_check(flow, tid)
    assert flow.dmhub.state.counters()["responses"].get(str(status), 0) == 2


def test_timeout_after_dmhub_stored_the_event_does_not_double_it(flow: Flow) -> None:
    sample = taobao_paid(tid := new_tid())
    assert flow.post(sample) == 200
    flow.dmhub.fail_next(1, 504, endpoint=flow.event_endpoint, after=True)  # stored, answer lost
    deliver_and_check(flow, tid)
    counters = flow.dmhub.state.counters()
    assert counters["requests"][flow.event_endpoint] == 2 and counters["events_updated"] == 1


def test_read_timeout_is_retried_into_exactly_one_event(flow: Flow, monkeypatch: pytest.MonkeyPatch) -> None:
    # Generous margins: on a loaded machine a healthy call must not look like a timeout.
    monkeypatch.setenv("DMHUB_READ_TIMEOUT", "1.0")
    sender_module.reset_runtime()
    first, second = taobao_paid(tid1 := new_tid()), taobao_paid(tid2 := new_tid())
    assert flow.post(first) == 200 and flow.post(second) == 200
    flow.dmhub.configure(latency=2.0)
    calls = sum(flow.dmhub.state.counters()["requests"].values())

    def heal() -> None:  # the first request (whichever endpoint) times out, then DM Hub is fast again
        while sum(flow.dmhub.state.counters()["requests"].values()) <= calls:
            time.sleep(0.01)
        flow.dmhub.configure(latency=0.0)

    import threading

    healer = threading.Thread(target=heal)
    healer.start()
    flow.drain(timeout=60.0)
    healer.join()
    flow.assert_exactly_once(taobao_external_id(tid1), taobao_external_id(tid2))


def test_revoked_token_is_refreshed_once_and_the_event_delivered_once(flow: Flow) -> None:
    first, second = taobao_paid(tid1 := new_tid()), taobao_paid(tid2 := new_tid())
    assert flow.post(first) == 200
    flow.drain()
    flow.dmhub.revoke_token()
    assert flow.post(second) == 200
    flow.drain()
    flow.assert_exactly_once(taobao_external_id(tid1), taobao_external_id(tid2))
    counters = flow.dmhub.state.counters()
    assert counters["token_fetches"] == 2 and counters["token_rejections"] + counters["token_errors"] >= 1


def test_validation_error_goes_to_the_dlq_with_its_reason(flow: Flow) -> None:
    flow.dmhub.configure(event_types=["c_wechat_follow"])  # c_taobao_order_paid unknown to DM Hub
    sample = taobao_paid(tid := new_tid())
    assert flow.post(sample) == 200
    flow.drain()
    assert flow.dmhub.state.events() == []
    dead = flow.dead_letters()
    assert len(dead) == 1
    assert dead[0]["event"]["externalId"] == f"taobao:demo:{taobao_external_id(tid)}"
    assert dead[0]["failure"]["reason"]
    assert flow.claim_status("taobao", taobao_external_id(tid)) == "FAILED"


def test_identity_api_failure_is_retried_into_exactly_one_event(flow: Flow) -> None:
    sample = taobao_paid(tid := new_tid())
    assert flow.post(sample) == 200
    flow.dmhub.fail_next(2, 500, endpoint="identities.query")
    deliver_and_check(flow, tid)
    requests = flow.dmhub.state.counters()["requests"]
    if flow.mode == "v1-customerevents":
        assert requests["identities.query"] >= 3
    else:  # identity-keyed calls: DM Hub binds the identity, the identity API is never asked
        assert "identities.query" not in requests and "customers.upsert" not in requests


def test_sender_crash_mid_batch_redelivers_and_each_event_lands_once(
    flow: Flow, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SENDER_CONCURRENCY", "1")
    sender_module.reset_runtime()
    tids = [new_tid() for _ in range(4)]
    for tid in tids:
        assert flow.post(taobao_paid(tid)) == 200
    runtime = sender_module.runtime()
    # per event: die before the third delivery; collector: one call stored all four, die while
    # marking the third claim
    target, name = (runtime.sender.claims, "mark_delivered") if flow.collector else (runtime.sender, "deliver")
    real = getattr(target, name)
    done = [0]

    def crashing(*args: Any, **kwargs: Any) -> Any:
        if done[0] == 2:
            raise Crash()
        done[0] += 1
        return real(*args, **kwargs)

    messages = flow.receive(limit=10)
    assert len(messages) == 4
    with mock.patch.object(target, name, crashing), pytest.raises(Crash):
        flow.run_sender(messages)  # dies: nothing is deleted, SQS redelivers after the timeout
    assert flow.dmhub.state.counters()["events_created"] == (4 if flow.collector else 2)
    flow.drain()
    flow.assert_exactly_once(*(taobao_external_id(t) for t in tids))


def test_dlq_replay_after_a_fix_delivers_exactly_once(flow: Flow, capsys: pytest.CaptureFixture[str]) -> None:
    flow.dmhub.configure(event_types=["c_wechat_follow"])
    sample = taobao_paid(tid := new_tid())
    assert flow.post(sample) == 200
    flow.drain()
    assert flow.dmhub.state.events() == []
    flow.dmhub.configure(event_types=None)  # the fix: DM Hub now knows the event type
    assert cli_main(["replay", "dlq", "--wait-seconds", "0"]) == 0
    capsys.readouterr()
    deliver_and_check(flow, tid)
    assert flow.receive(flow.stack.dead_letter_queue_url) == []


def test_persistent_5xx_ends_in_the_dlq_after_max_receives(flow: Flow, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SENDER_MAX_ATTEMPTS", "1")
    sender_module.reset_runtime()
    flow.dmhub.configure(error_rate=1.0, fault_endpoints=[flow.event_endpoint])
    sample = taobao_paid(tid := new_tid())
    assert flow.post(sample) == 200
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        messages = flow.receive(wait=1)
        if messages:
            flow.run_sender(messages)
        attrs = flow.sqs.get_queue_attributes(
            QueueUrl=flow.stack.dead_letter_queue_url, AttributeNames=["ApproximateNumberOfMessages"]
        )["Attributes"]
        if int(attrs["ApproximateNumberOfMessages"]) > 0:
            break
    dead = flow.dead_letters()
    assert [d["event"]["externalId"] for d in dead] == [f"taobao:demo:{taobao_external_id(tid)}"]
    assert flow.dmhub.state.events() == []
