"""The gateway's request records: numbering, the 1,000 kept, the ``since`` cursor, the line."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from dmhub_adapter.ingest.outcome import RequestOutcome
from dmhub_adapter_tools.local.request_log import RequestLog

KEYS = {"seq", "time", "method", "path", "source", "account", "status", "ms", "outcome", "reason", "externalIds"}


def add(log: RequestLog, outcome: RequestOutcome | None = None, status: int = 200) -> None:
    log.add(method="POST", path="/webhooks/wechat/demo", source="wechat", account="demo", status=status,
            ms=12.34, outcome=outcome)


def test_a_record_has_the_console_shape() -> None:
    log = RequestLog()
    outcome = RequestOutcome("wechat", "demo", status=200, enqueued=1, external_ids=["wechat:demo:gh|1"])
    log.add(method="POST", path="/webhooks/wechat/demo", source="wechat", account="demo", status=200,
            ms=168.04, outcome=outcome, at=datetime(2026, 12, 4, 15, 2, 11, 120000, tzinfo=UTC))

    answer = json.loads(json.dumps(log.since(0)))

    (record,) = answer["requests"]
    assert set(record) == KEYS and answer["next"] == 1
    assert record["seq"] == 1 and record["time"] == "2026-12-04T15:02:11.120+00:00"
    assert record["status"] == 200 and record["ms"] == 168.0
    assert record["outcome"] == {"enqueued": 1, "duplicate": 0, "skipped": 0, "unmapped": 0, "refused": 0}
    assert record["reason"] is None and record["externalIds"] == ["wechat:demo:gh|1"]
    assert datetime.fromisoformat(record["time"]).tzinfo is not None


def test_since_is_a_cursor_and_next_is_what_to_pass_back() -> None:
    log = RequestLog()
    assert log.since(0) == {"requests": [], "next": 0}
    for _ in range(5):
        add(log)

    first = log.since(0, limit=2)
    assert [r["seq"] for r in first["requests"]] == [1, 2] and first["next"] == 2
    rest = log.since(first["next"])
    assert [r["seq"] for r in rest["requests"]] == [3, 4, 5] and rest["next"] == 5
    assert log.since(rest["next"]) == {"requests": [], "next": 5}
    # a cursor from before a restart (ahead of this log) resynchronises on the next answer
    assert log.since(900) == {"requests": [], "next": 5}


def test_only_the_last_thousand_are_kept() -> None:
    log = RequestLog()
    for _ in range(1005):
        add(log)

    answer = log.since(0)

    assert len(log) == 1000 and len(answer["requests"]) == 1000
    assert answer["requests"][0]["seq"] == 6 and answer["next"] == 1005


def test_a_request_the_ingest_never_saw_counts_as_refused_with_the_gateways_reason() -> None:
    log = RequestLog()
    record = log.add(method="POST", path="/nope", source=None, account=None, status=404, ms=1.0,
                     reason="no such route")
    assert record.outcome["refused"] == 1 and record.reason == "no such route"
    assert record.text() == "POST /nope 404 1ms refused 1 (no such route)"


def test_the_readable_line_names_counts_reason_and_externalids() -> None:
    log = RequestLog()
    outcome = RequestOutcome("wechat", "demo", status=200, enqueued=1, duplicate=1, skipped=1,
                             reasons=["message #3 skipped: rule 'x': no event"], external_ids=["a", "b"])
    record = log.add(method="POST", path="/webhooks/wechat/demo", source="wechat", account="demo",
                     status=200, ms=168.4, outcome=outcome)
    assert record.text() == ("POST /webhooks/wechat/demo 200 168ms enqueued 1, duplicate 1, skipped 1 "
                             "(message #3 skipped: rule 'x': no event) [a, b]")
    empty = log.add(method="POST", path="/webhooks/x/y", source="x", account="y", status=200, ms=3,
                    outcome=RequestOutcome("x", "y", status=200))
    assert empty.text() == "POST /webhooks/x/y 200 3ms nothing to deliver"
