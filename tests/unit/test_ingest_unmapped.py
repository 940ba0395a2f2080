"""UnmappedQueue records: what they keep, and the request a replay rebuilds from them."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from dmhub_adapter.ingest.unmapped import RecordError, build_record, request_from_record
from dmhub_adapter.sources.base import Inbound
from dmhub_adapter.webhook import WebhookRequest


def request(**overrides: Any) -> WebhookRequest:
    values: dict[str, Any] = {
        "method": "POST", "source": "wechat", "account": "oa1", "body": b"<xml>encrypted</xml>",
        "raw_query": "signature=s&encrypt_type=aes", "query": {"signature": "s", "encrypt_type": "aes"},
        "headers": {"content-type": "text/xml", "x-forwarded-for": "1.2.3.4", "user-agent": "Mozilla"},
        "received_at": 1732780800.5, "request_id": "req-9",
    }
    values.update(overrides)
    return WebhookRequest(**values)


def test_a_record_keeps_the_clear_text_payload_and_only_the_headers_that_matter() -> None:
    inbound = Inbound(messages=[], payload="<xml>明文</xml>".encode(), payload_type="application/xml",
                      context={"mode": "safe", "odd": {1, 2}})

    record = build_record(request(), inbound, ["message #1: no rule matched this message"])

    assert record["payload"] == "<xml>明文</xml>" and record["payload_encoding"] == "utf-8"
    assert record["headers"] == {"content-type": "text/xml", "user-agent": "Mozilla"}
    assert record["reasons"] == ["message #1: no rule matched this message"]
    assert (record["source"], record["account"], record["request_id"]) == ("wechat", "oa1", "req-9")
    assert record["received_at"] == 1732780800.5
    assert record["context"]["mode"] == "safe"
    assert "raw_query" not in record and "query" not in record


def test_a_replay_request_is_the_clear_payload_without_the_original_query() -> None:
    inbound = Inbound(messages=[], payload=b"<xml>plain</xml>", payload_type="application/xml")
    record = build_record(request(), inbound, ["x"])

    rebuilt = request_from_record(record)

    assert rebuilt.body == b"<xml>plain</xml>"
    assert rebuilt.query == {} and rebuilt.raw_query == ""
    assert rebuilt.header("content-type") == "application/xml"  # the clear text's type, not the envelope's
    assert (rebuilt.source, rebuilt.account, rebuilt.method) == ("wechat", "oa1", "POST")
    assert rebuilt.received_at == 1732780800.5 and rebuilt.request_id == "req-9"


def test_binary_payloads_round_trip_as_base64() -> None:
    payload = bytes(range(256))
    record = build_record(request(), Inbound(messages=[], payload=payload), ["x"])

    assert record["payload_encoding"] == "base64"
    assert base64.b64decode(record["payload"]) == payload
    assert request_from_record(record).body == payload
    assert request_from_record(record).header("content-type") == "text/xml"  # octet-stream says nothing


@pytest.mark.parametrize(
    "change",
    [{"version": 2}, {"source": ""}, {"account": None}, {"payload": None},
     {"payload_encoding": "rot13"}, {"payload_encoding": "base64", "payload": "***"}],
)
def test_records_that_cannot_be_replayed_are_refused(change: dict[str, Any]) -> None:
    record = build_record(request(), Inbound(messages=[], payload=b"{}"), ["x"])
    record.update(change)

    with pytest.raises(RecordError):
        request_from_record(record)


# ---- records over the queue's size limit (issue 14, item 9b) ---------------------------------


def huge_record() -> dict[str, Any]:
    inbound = Inbound(messages=[], payload=b"[" + b"{}," * 27_999 + b"{}]", payload_type="application/json")
    reasons = [f"message #{n}: no rule matched this message" for n in range(1, 28_001)]
    return build_record(request(source="doudian", account="shop1"), inbound, reasons)


def test_an_oversize_record_without_a_bucket_is_a_clear_413(monkeypatch: pytest.MonkeyPatch) -> None:
    from dmhub_adapter.errors import PayloadTooLarge
    from dmhub_adapter.ingest.unmapped import BUCKET_ENV, send_record

    monkeypatch.delenv(BUCKET_ENV, raising=False)
    with pytest.raises(PayloadTooLarge, match=BUCKET_ENV) as info:
        send_record("https://sqs.invalid/q", huge_record(), client=object())
    assert info.value.status == 413


def test_an_oversize_record_goes_to_s3_and_reads_back() -> None:
    import json

    import boto3
    from moto import mock_aws

    from dmhub_adapter.ingest.unmapped import INLINE_MAX, OBJECT_PREFIX, resolve_record, send_record
    from dmhub_adapter_tools.local.resources import create_stack

    record = huge_record()
    assert len(json.dumps(record).encode()) > INLINE_MAX
    with mock_aws():
        session = boto3.session.Session(region_name="eu-west-1")
        stack = create_stack(session)
        sqs, s3 = session.client("sqs"), session.client("s3")
        send_record(stack.unmapped_queue_url, record, client=sqs, bucket=stack.unmapped_bucket, s3=s3)
        (message,) = sqs.receive_message(QueueUrl=stack.unmapped_queue_url)["Messages"]
        pointer = json.loads(message["Body"])
        assert "payload" not in pointer and pointer["payload_ref"]["key"].startswith(f"{OBJECT_PREFIX}doudian/shop1/")
        assert len(pointer["reasons"]) == 21 and "27980 more" in pointer["reasons"][-1]
        assert resolve_record(pointer, s3=s3) == record
        assert request_from_record(resolve_record(pointer, s3=s3)).body == record["payload"].encode()
        s3.delete_object(Bucket=stack.unmapped_bucket, Key=pointer["payload_ref"]["key"])
        with pytest.raises(RecordError, match="gone"):
            resolve_record(pointer, s3=s3)


def test_a_small_record_stays_inline() -> None:
    from dmhub_adapter.ingest.unmapped import resolve_record

    record = build_record(request(), Inbound(messages=[], payload=b"<xml/>"), ["message #1: x"])
    assert resolve_record(record, s3=object()) is record


def test_a_record_keeps_what_the_source_names_and_never_a_credential() -> None:
    from dmhub_adapter.sources.base import RequestNames

    headers = {"content-type": "application/json", "x-github-event": "push", "webhook-id": "msg_1",
               "authorization": "Bearer t", "x-hub-signature-256": "sha256=ab", "x-gitlab-token": "t",
               "webhook-signature": "v1,x", "x-api-key": "k", "x-other": "not named"}
    query = {"openid": "o1", "signature": "s", "msg_signature": "m", "sign": "S", "access_token": "a", "nonce": "n"}
    names = RequestNames(headers=frozenset({"X-GitHub-Event", "webhook-id", *headers}), query=frozenset(query))
    record = build_record(request(headers=headers, query=query), Inbound(messages=[], payload=b"{}"), ["x"], names)

    assert record["headers"] == {"content-type": "application/json", "webhook-id": "msg_1",
                                 "x-github-event": "push", "x-other": "not named"}
    assert record["query"] == {"nonce": "n", "openid": "o1"}
    rebuilt = request_from_record(record)
    assert rebuilt.header("x-github-event") == "push" and rebuilt.header("webhook-id") == "msg_1"
    assert rebuilt.query == {"nonce": "n", "openid": "o1"} and rebuilt.raw_query == "nonce=n&openid=o1"


def _shipped() -> list[str]:
    from dmhub_adapter.mapping.config import available_sources

    return available_sources()


@pytest.mark.parametrize("source", _shipped())
def test_no_shipped_source_asks_to_keep_its_signature(source: str) -> None:
    from dmhub_adapter.ingest.pipeline import request_names
    from dmhub_adapter.ingest.unmapped import is_secret_name
    from dmhub_adapter.sources.registry import source_for

    found = source_for(source)
    assert found is not None
    names = request_names(found)
    assert not [n for n in (*names.headers, *names.query) if is_secret_name(n)]
    signature_names = {"wechat": {"signature", "msg_signature"}, "taobao": {"sign"},
                       "standard-webhooks": {"webhook-signature", "svix-signature"},
                       "wechatpay": {"wechatpay-signature"}, "shopify": {"x-shopify-hmac-sha256"}}.get(source, set())
    assert not signature_names & {*names.headers, *names.query}
    if source == "standard-webhooks":
        assert names.headers == {"webhook-id", "webhook-timestamp", "svix-id", "svix-timestamp"}


def test_a_record_kept_before_headers_were_kept_replays_to_its_live_externalid() -> None:
    """A Standard Webhooks record without the webhook-id header (kept by an older version) still
    has the value in its context; the dry run (and the replay) use it: swh|msg_…, not swh|type|time."""
    from dmhub_adapter_tools.cli.replay import preview_record

    body = '{"type":"invoice.paid","timestamp":"2026-12-04T10:00:00Z","data":{"id":"i1","customer":{"id":"c1"}}}'
    legacy = {"version": 1, "source": "standard-webhooks", "account": "demo", "payload": body,
              "payload_encoding": "utf-8", "payload_type": "application/json",
              "headers": {"content-type": "application/json"}, "reasons": ["message #1: no rule matched"],
              "received_at": 1796398000.0, "request_id": "r1", "context": {"request": {"webhookId": "msg_legacy1"}}}

    (preview,) = preview_record(legacy)

    assert preview["status"] == "deliver"
    assert preview["events"][0]["externalId"] == "standard-webhooks:demo:swh|msg_legacy1"
    without = {**legacy, "context": {}}
    assert preview_record(without)[0]["events"][0]["externalId"].startswith("standard-webhooks:demo:swh|invoice.paid|")
