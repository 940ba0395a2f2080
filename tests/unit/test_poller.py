"""The local SQS event source: Lambda-shaped events, partial batch responses, redelivery and
redrive — against moto_server over HTTP."""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
from collections.abc import Callable
from typing import Any

import boto3
import pytest

from dmhub_adapter_tools.local.poller import QueuePoller, failed_message_ids, sqs_record


def _sqs(endpoint: str) -> Any:
    return boto3.session.Session(region_name="eu-west-1").client("sqs", endpoint_url=endpoint)


@pytest.fixture
def sqs(aws: Any, moto_endpoint: str) -> Any:
    return _sqs(moto_endpoint)


def _queue_with_dlq(sqs: Any, name: str, *, visibility: int, max_receive: int) -> tuple[str, str]:
    dlq = sqs.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    url = sqs.create_queue(
        QueueName=name,
        Attributes={
            "VisibilityTimeout": str(visibility),
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(max_receive)}),
        },
    )["QueueUrl"]
    return url, dlq


def _count(sqs: Any, url: str) -> int:
    attributes = sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"])


def _wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.05)


class Sender:
    """A stand-in sender handler: fails the messages whose body is in ``fail``."""

    def __init__(self, fail: set[str] | None = None, raise_error: bool = False) -> None:
        self.fail = fail or set()
        self.raise_error = raise_error
        self.events: list[dict[str, Any]] = []
        self.contexts: list[Any] = []
        self.called = threading.Event()

    def __call__(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        self.events.append(event)
        self.contexts.append(context)
        self.called.set()
        if self.raise_error:
            raise RuntimeError("sender crashed")
        return {"batchItemFailures": [{"itemIdentifier": r["messageId"]} for r in event["Records"]
                                      if json.loads(r["body"])["n"] in self.fail]}

    def bodies(self) -> list[str]:
        return [json.loads(r["body"])["n"] for event in self.events for r in event["Records"]]


# -- Lambda's rules --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("result", "expected"),
    [
        (None, set()),
        ({}, set()),
        ({"batchItemFailures": []}, set()),
        ({"batchItemFailures": [{"itemIdentifier": "b"}]}, {"b"}),
        ({"batchItemFailures": [{"itemIdentifier": "a"}, {"itemIdentifier": "b"}]}, {"a", "b"}),
        ({"batchItemFailures": [{"itemIdentifier": "zzz"}]}, {"a", "b", "c"}),  # not of this batch
        ({"batchItemFailures": [{"itemIdentifier": ""}]}, {"a", "b", "c"}),
        ({"batchItemFailures": [{}]}, {"a", "b", "c"}),
        ({"batchItemFailures": "b"}, {"a", "b", "c"}),
        ("not a dict", {"a", "b", "c"}),
        ({"other": 1}, set()),
    ],
)
def test_partial_batch_response_rules(result: Any, expected: set[str]) -> None:
    assert failed_message_ids(result, ["a", "b", "c"]) == expected


def test_record_shape_matches_lambda() -> None:
    message = {
        "MessageId": "m-1",
        "ReceiptHandle": "rh",
        "Body": '{"x":1}',
        "MD5OfBody": hashlib.md5(b'{"x":1}').hexdigest(),
        "Attributes": {"ApproximateReceiveCount": "2", "SentTimestamp": "1700000000000"},
        "MD5OfMessageAttributes": "abc",
        "MessageAttributes": {
            "trace": {"StringValue": "t-1", "DataType": "String"},
            "blob": {"BinaryValue": b"\x00\x01", "DataType": "Binary"},
        },
    }
    record = sqs_record(message, queue_arn="arn:aws:sqs:eu-west-1:123456789012:q", region="eu-west-1")
    assert record == {
        "messageId": "m-1",
        "receiptHandle": "rh",
        "body": '{"x":1}',
        "attributes": {"ApproximateReceiveCount": "2", "SentTimestamp": "1700000000000"},
        "messageAttributes": {
            "trace": {"stringValue": "t-1", "stringListValues": [], "binaryListValues": [], "dataType": "String"},
            "blob": {"binaryValue": base64.b64encode(b"\x00\x01").decode(), "stringListValues": [],
                     "binaryListValues": [], "dataType": "Binary"},
        },
        "md5OfBody": hashlib.md5(b'{"x":1}').hexdigest(),
        "md5OfMessageAttributes": "abc",
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:eu-west-1:123456789012:q",
        "awsRegion": "eu-west-1",
    }


# -- against moto_server ---------------------------------------------------------------------------


def test_deletes_only_what_succeeded_and_redrives_the_rest(sqs: Any) -> None:
    url, dlq = _queue_with_dlq(sqs, "poller-partial", visibility=1, max_receive=2)
    for n in ("ok-1", "bad", "ok-2"):
        sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"n": n}),
                         MessageAttributes={"source": {"StringValue": "wechat", "DataType": "String"}})
    sender = Sender(fail={"bad"})
    lines: list[str] = []
    poller = QueuePoller(sqs, url, sender, wait_seconds=1, timeout_seconds=60, max_receive_count=2,
                         on_batch=lambda report: lines.append(report.text()))

    report = poller.poll_once()
    assert report is not None and (report.received, report.failed) == (3, 1)
    record = sender.events[0]["Records"][0]
    assert record["eventSource"] == "aws:sqs"
    assert record["eventSourceARN"].endswith(":poller-partial")
    assert record["attributes"]["ApproximateReceiveCount"] == "1"
    assert {"SentTimestamp", "ApproximateFirstReceiveTimestamp"} <= set(record["attributes"])
    assert record["messageAttributes"]["source"]["stringValue"] == "wechat"
    assert record["md5OfBody"] == hashlib.md5(record["body"].encode()).hexdigest()
    assert 0 < sender.contexts[0].get_remaining_time_in_millis() <= 60_000
    assert sender.contexts[0].function_name == "SenderFunction"
    assert "3 message(s) (receive count 1)" in lines[0] and "delivered 2, back to the queue 1" in lines[0]

    # The failed one is invisible until its visibility timeout ends, then comes back.
    assert poller.poll_once(wait_seconds=0) is None
    _wait_for(lambda: poller.poll_once(wait_seconds=1) is not None)
    assert sender.bodies()[-1] == "bad"
    assert sender.events[-1]["Records"][0]["attributes"]["ApproximateReceiveCount"] == "2"

    # Received maxReceiveCount times and failed: SQS moves it to the DLQ on the next receive.
    def in_dlq() -> bool:
        poller.poll_once(wait_seconds=1)
        return _count(sqs, dlq) == 1

    _wait_for(in_dlq)
    assert "(receive count 2)" in lines[-1] and "dead-lettered 1" in lines[-1] and "the redrive moves it" in lines[-1]
    assert _count(sqs, url) == 0
    assert sender.bodies().count("bad") == 2
    assert sender.bodies().count("ok-1") == 1 and sender.bodies().count("ok-2") == 1


def test_a_crashing_sender_fails_the_whole_batch(sqs: Any) -> None:
    url, _ = _queue_with_dlq(sqs, "poller-crash", visibility=30, max_receive=5)
    for n in ("a", "b"):
        sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"n": n}))
    poller = QueuePoller(sqs, url, Sender(raise_error=True), wait_seconds=1, on_batch=lambda _l: None)
    report = poller.poll_once()
    assert report is not None and report.failed == 2 and report.error == "RuntimeError: sender crashed"
    assert _count(sqs, url) == 2  # both still there (in flight)
    assert poller.stats.deleted == 0


def test_background_thread_delivers_and_stops(sqs: Any) -> None:
    url, _ = _queue_with_dlq(sqs, "poller-thread", visibility=30, max_receive=5)
    sender = Sender()
    poller = QueuePoller(sqs, url, sender, wait_seconds=1, batch_size=2, on_batch=lambda _l: None).start()
    try:
        for n in ("1", "2", "3"):
            sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"n": n}))
        _wait_for(lambda: sorted(sender.bodies()) == ["1", "2", "3"])
        assert all(len(event["Records"]) <= 2 for event in sender.events)
        _wait_for(lambda: _count(sqs, url) == 0)
    finally:
        poller.stop()
    assert not poller.running


def test_argument_limits_follow_sqs() -> None:
    with pytest.raises(ValueError, match="batch_size"):
        QueuePoller(None, "u", Sender(), batch_size=11)
    with pytest.raises(ValueError, match="wait_seconds"):
        QueuePoller(None, "u", Sender(), wait_seconds=21)
