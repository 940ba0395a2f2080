"""The sender's partial batch response: failures by message id in record order, an answer even
when every record fails, a bounded pool, and no payload in the log."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import pytest

from dmhub_adapter.sender.batch import SqsRecord, process_partial_response, records_of
from dmhub_adapter.sender.events import sqs_event


class Expected(Exception):
    pass


def event(n: int) -> dict[str, Any]:
    return sqs_event([{"n": i} for i in range(n)])


def test_records_that_raise_are_reported_by_message_id_in_record_order() -> None:
    batch = event(6)
    ids = [r["messageId"] for r in batch["Records"]]

    def handler(record: SqsRecord) -> None:
        if record.body.endswith(("1}", "4}")):
            raise Expected("retry later")

    response = process_partial_response(batch, handler, concurrency=3, expected=(Expected,))
    assert response == {"batchItemFailures": [{"itemIdentifier": ids[1]}, {"itemIdentifier": ids[4]}]}


@pytest.mark.parametrize("concurrency", [1, 10])
def test_an_answer_even_when_every_record_fails(concurrency: int) -> None:
    batch = event(4)

    def handler(record: SqsRecord) -> None:
        raise RuntimeError("DynamoDB down")

    response = process_partial_response(batch, handler, concurrency=concurrency)
    assert [f["itemIdentifier"] for f in response["batchItemFailures"]] == [r["messageId"] for r in batch["Records"]]


def test_an_empty_batch_has_no_failures() -> None:
    assert process_partial_response({"Records": []}, lambda record: None) == {"batchItemFailures": []}


def test_the_pool_is_bounded_by_concurrency() -> None:
    lock = threading.Lock()
    running = [0, 0]  # now, most

    def handler(record: SqsRecord) -> None:
        with lock:
            running[0] += 1
            running[1] = max(running[1], running[0])
        time.sleep(0.05)
        with lock:
            running[0] -= 1

    assert process_partial_response(event(10), handler, concurrency=3) == {"batchItemFailures": []}
    assert 2 <= running[1] <= 3


def test_a_given_executor_runs_the_records_and_failures_keep_record_order() -> None:
    from concurrent.futures import ThreadPoolExecutor

    batch = event(5)
    ids = [r["messageId"] for r in batch["Records"]]
    ran_on: set[str] = set()

    def handler(record: SqsRecord) -> None:
        ran_on.add(threading.current_thread().name)
        if record.body.endswith(("0}", "3}")):
            raise Expected("retry later")

    with ThreadPoolExecutor(2, thread_name_prefix="given") as pool:
        response = process_partial_response(batch, handler, concurrency=2, expected=(Expected,), executor=pool)
    assert response == {"batchItemFailures": [{"itemIdentifier": ids[0]}, {"itemIdentifier": ids[3]}]}
    assert ran_on and all(name.startswith("given") for name in ran_on)


def test_unexpected_failures_are_logged_by_type_only(caplog: pytest.LogCaptureFixture) -> None:
    def handler(record: SqsRecord) -> None:
        raise RuntimeError(f"payload {record.body}")

    with caplog.at_level(logging.DEBUG):
        process_partial_response(event(1), handler, expected=(Expected,))
    assert "record failed; left to SQS" in caplog.text
    assert "payload" not in caplog.text
    assert caplog.records[0].error == "RuntimeError"  # type: ignore[attr-defined]


def test_expected_failures_are_not_logged_again(caplog: pytest.LogCaptureFixture) -> None:
    def handler(record: SqsRecord) -> None:
        raise Expected("the handler logged it")

    with caplog.at_level(logging.DEBUG):
        response = process_partial_response(event(2), handler, expected=(Expected,))
    assert len(response["batchItemFailures"]) == 2
    assert caplog.records == []


@pytest.mark.parametrize(
    "bad",
    [
        {},
        {"Records": "x"},
        {"Records": [{"body": "{}"}]},
        {"Records": [{"messageId": 5, "body": "{}"}]},
        {"Records": [7]},
    ],
)
def test_an_event_that_is_not_an_sqs_batch_fails_the_invocation(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        process_partial_response(bad, lambda record: None)


def test_records_carry_id_body_and_the_raw_record() -> None:
    batch = event(1)
    (record,) = records_of(batch)
    assert record.message_id == batch["Records"][0]["messageId"]
    assert record.body == '{"n":0}'
    assert record.raw is batch["Records"][0]
