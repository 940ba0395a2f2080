"""The real ingest handler against moto over HTTP: table items and queue contents."""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path
from typing import Any

import pytest

from dmhub_adapter_tools.replay import replay_unmapped_record
from tests.integration.ingest.conftest import Ingest, order


def test_event_is_claimed_enqueued_and_marked_queued(ingest: Ingest) -> None:
    response = ingest.invoke(order("A1", user="u-9"))

    assert response.status == 200 and response.json() == {"success": True, "enqueued": 1, "duplicates": 0}
    (message,) = ingest.events()
    body = message["body"]
    assert body["source"] == "acme" and body["account"] == "shop1"
    assert body["claim_key"] == "acme#shop1#order|A1"
    assert body["rule"] == "order"
    assert body["identity"] == {"type": "acme-user", "value": "u-9", "name": None, "create": True}
    assert body["event"] == {"event": "c_acme_order", "externalId": "acme:shop1:order|A1",
                             "date": "2024-11-28T08:00:00Z", "order_id": "A1"}
    assert body["trace_id"]
    assert message["attributes"] == {"source": "acme", "account": "shop1", "event": "c_acme_order"}
    item = ingest.claim("order|A1")
    assert item is not None and item["status"] == "QUEUED" and item["messageId"] != "-"
    assert "leaseUntil" not in item
    assert item["expiresAt"] - item["claimedAt"] == 7 * 86400
    assert ingest.unmapped() == []


def test_a_redelivery_is_acknowledged_and_not_enqueued_again(ingest: Ingest) -> None:
    first = ingest.invoke(order("A1"))
    second = ingest.invoke(order("A1"))

    assert (first.status, second.status) == (200, 200)
    assert second.json() == {"success": True, "enqueued": 0, "duplicates": 1}
    assert len(ingest.events()) == 1


def test_delivered_and_failed_claims_also_count_as_duplicates(ingest: Ingest) -> None:
    from dmhub_adapter.store.claims import ClaimTable

    ingest.invoke(order("A1"))
    ingest.invoke(order("A2"))
    store = ClaimTable(ingest.stack.table, client=ingest.session.client("dynamodb"))
    store.mark_delivered("acme#shop1#order|A1", 42)
    store.mark_failed("acme#shop1#order|A2", "validation")
    ingest.events()

    assert ingest.invoke({"events": [order("A1"), order("A2")]}).status == 200
    assert ingest.events() == []


def test_a_multi_event_payload_is_sent_as_one_batch_and_repeats_inside_collapse(ingest: Ingest) -> None:
    payload = {"events": [order(f"B{i}") for i in range(12)] + [order("B0"), {"type": "ping"}]}

    assert ingest.invoke(payload).status == 200

    messages = ingest.events()
    expected = sorted(f"acme:shop1:order|B{i}" for i in range(12))
    assert sorted(m["body"]["event"]["externalId"] for m in messages) == expected
    assert all(ingest.claim(f"order|B{i}")["status"] == "QUEUED" for i in range(12))  # type: ignore[index]


def test_skipped_messages_are_acknowledged_without_events(ingest: Ingest) -> None:
    assert ingest.invoke({"type": "ping"}).status == 200
    assert ingest.events() == [] and ingest.unmapped() == []


def test_unmapped_payload_is_kept_whole_and_still_acknowledged(ingest: Ingest) -> None:
    payload = {"events": [order("C1"), {"type": "refund", "id": "R1", "user": "u-1"},
                          order("C2", at="not-a-time")]}

    response = ingest.invoke(payload, headers={"content-type": "application/json", "x-secret": "no"})

    assert response.status == 200
    assert [m["body"]["event"]["externalId"] for m in ingest.events()] == ["acme:shop1:order|C1"]
    (kept,) = ingest.unmapped()
    record = kept["body"]
    assert record["source"] == "acme" and record["account"] == "shop1"
    assert json.loads(record["payload"]) == payload and record["payload_encoding"] == "utf-8"
    assert record["payload_type"] == "application/json"
    assert record["headers"] == {"content-type": "application/json"}
    assert record["reasons"][0] == "message #2: no rule matched this message"
    assert record["reasons"][1].startswith("message #3: rule 'order', field 'date'")
    assert record["received_at"] > 1.7e9 and record["request_id"]
    assert kept["attributes"]["source"] == "acme"


def test_an_unmapped_payload_at_the_body_cap_still_fits_its_queue(ingest: Ingest) -> None:
    # 250 KiB of authentic payload plus its record exceeds SQS's old 256 KiB default.
    payload = {"type": "refund", "id": "R1", "user": "u-1", "note": "x" * (250 * 1024)}

    response = ingest.invoke(payload)

    assert response.status == 200
    (kept,) = ingest.unmapped()
    assert json.loads(kept["body"]["payload"]) == payload


def test_replay_maps_an_unmapped_record_with_the_fixed_config(ingest: Ingest, mappings_dir: Path) -> None:
    from dmhub_adapter.ingest.bootstrap import build_pipeline
    from dmhub_adapter.settings import IngestSettings

    ingest.invoke({"events": [order("D1"), {"type": "refund", "id": "R1", "user": "u-1", "at": 1732780800}]})
    ingest.events()
    (kept,) = ingest.unmapped()
    path = mappings_dir / "acme.yaml"
    path.write_text(path.read_text() + """
  - name: refund
    when: "type == 'refund'"
    event: c_acme_refund
    externalId: {template: "refund|{id}"}
    date: {path: at, convert: unix_seconds}
""")

    result = replay_unmapped_record(kept["body"], pipeline=build_pipeline(IngestSettings.from_env()))

    assert result.resolved and result.reasons == []
    assert (result.outcome.enqueued, result.outcome.duplicates) == (1, 1)
    assert [m["body"]["event"]["externalId"] for m in ingest.events()] == ["acme:shop1:refund|R1"]
    again = replay_unmapped_record(kept["body"], pipeline=build_pipeline(IngestSettings.from_env()))
    assert (again.outcome.enqueued, again.outcome.duplicates) == (0, 2)
    assert ingest.events() == [] and ingest.unmapped() == []


def test_replay_reports_what_is_still_unmapped(ingest: Ingest) -> None:
    ingest.invoke({"type": "refund", "id": "R1", "user": "u-1"})
    (kept,) = ingest.unmapped()

    result = replay_unmapped_record(kept["body"])

    assert not result.resolved and result.outcome.unmapped == 1
    assert result.reasons == ["message #1: no rule matched this message"]
    assert ingest.unmapped() == []  # a replay never writes there


def test_unknown_source_or_account_is_404_json(ingest: Ingest) -> None:
    for source, account in [("nosuch", "shop1"), ("acme", "nosuch"), ("acme", "bad%20name")]:
        response = ingest.invoke(order(), source=source, account=account)

        assert response.status == 404, (source, account)
        assert response.headers["Content-Type"] == "application/json"
        assert response.json()["error"] == "not_found"
    assert ingest.events() == []


def test_malformed_body_is_400_and_oversized_body_is_413(ingest: Ingest, monkeypatch: pytest.MonkeyPatch) -> None:
    assert ingest.invoke(b"{not json").status == 400
    monkeypatch.setenv("MAX_BODY_BYTES", "64")
    ingest.app = __import__("tests.integration.ingest.conftest", fromlist=["load_app"]).load_app()
    big = ingest.invoke(order(pad="x" * 100))
    assert big.status == 413 and big.json()["error"] == "payload_too_large"
    assert ingest.events() == [] and ingest.unmapped() == []


def test_methods_other_than_get_and_post_are_405(ingest: Ingest) -> None:
    assert ingest.invoke(method="PUT").status == 405
    assert ingest.invoke(method="GET").status == 405  # the generic source has no handshake


def test_every_refusal_of_an_adapter_holds_through_the_handler(
    ingest: Ingest, mappings_dir: Path, fake_adapter: Any
) -> None:
    fake_adapter(str(mappings_dir))
    ingest.put_account("fake", "shop1", {"token": "t"})

    for status in (400, 401, 403, 405, 413):
        response = ingest.invoke(order(), source="fake", headers={"x-fail": str(status)})

        assert response.status == status
        assert response.json()["message"] == f"refused with {status}"
    assert ingest.events() == [] and ingest.unmapped() == []


def test_handshake_gets_the_account_secret(ingest: Ingest, mappings_dir: Path, fake_adapter: Any) -> None:
    fake_adapter(str(mappings_dir))
    ingest.put_account("fake", "shop1", {"token": "t"})

    ok = ingest.invoke(method="GET", source="fake", raw_query="token=t&echo=hello")
    bad = ingest.invoke(method="GET", source="fake", raw_query="token=x&echo=hello")

    assert (ok.status, ok.body) == (200, "hello")
    assert bad.status == 401


def test_an_adapter_bug_is_503_with_a_generic_body(ingest: Ingest, mappings_dir: Path, fake_adapter: Any) -> None:
    fake_adapter(str(mappings_dir))
    ingest.put_account("fake", "shop1", {"token": "t"})
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    ingest.app.telemetry.logger.addHandler(handler)
    try:
        response = ingest.invoke(order(), source="fake", headers={"x-fail": "crash"})
    finally:
        ingest.app.telemetry.logger.removeHandler(handler)

    assert response.status == 503
    assert response.json() == {"error": "unavailable", "message": "temporarily unavailable; please retry"}
    assert "adapter bug" not in response.body
    (logged,) = [r for r in records if r.exc_info]
    assert str(logged.exc_info[1]) == "adapter bug with internals"  # type: ignore[index]


def test_a_secret_that_is_not_a_json_object_is_503(ingest: Ingest) -> None:
    ingest.put_account("acme", "broken", "not json")
    ingest.put_account("acme", "listy", "[1, 2]")

    assert ingest.invoke(order(), account="broken").status == 503
    assert ingest.invoke(order(), account="listy").status == 503
    assert ingest.events() == []


def test_a_broken_mapping_config_is_503_not_404(ingest: Ingest, mappings_dir: Path) -> None:
    (mappings_dir / "acme.yaml").write_text("source: acme\nrules: []\n")

    response = ingest.invoke(order())

    assert response.status == 503 and response.json()["error"] == "unavailable"


def test_metrics_are_emitted_as_emf(ingest: Ingest, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    ingest.invoke({"events": [order("E1"), order("E1"), {"type": "ping"}, {"type": "x", "user": "u"}]})
    ingest.invoke(order(), account="nosuch")

    blobs = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]

    def value(name: str, **dims: str) -> float:
        total = 0.0
        for blob in blobs:
            names = [m["Name"] for d in blob["_aws"]["CloudWatchMetrics"] for m in d["Metrics"]]
            if name in names and all(blob.get(k) == v for k, v in dims.items()):
                raw = blob[name]
                total += sum(raw) if isinstance(raw, list) else raw
        return total

    assert value("Received", source="acme") == 2
    assert value("Enqueued", source="acme") == 1
    assert value("Duplicate", source="acme") == 1
    assert value("Skipped", source="acme") == 1
    assert value("Unmapped", source="acme") == 1
    assert value("Rejected", source="acme", reason="not_found") == 1


def test_disabled_metrics_do_not_pile_up_across_invocations(
    ingest: Ingest, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")  # as the local stack runs it
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "Dimension 'source' has already been added" fails the test
        ingest.invoke(order("M1"))
        ingest.invoke(order("M2"))
    assert ingest.app.telemetry.metrics.metric_set == {}
    assert "source" not in ingest.app.telemetry.metrics.dimension_set
