"""API Gateway HTTP API v2 events ⇄ requests: what signatures see must be what was sent."""

from __future__ import annotations

from dmhub_adapter.apigw import is_apigw_v2_event, request_from_event, response_to_event
from dmhub_adapter.webhook import WebhookResponse
from dmhub_adapter_tools.local.apigw_event import make_event


def test_round_trip_keeps_raw_query_body_and_lower_case_headers() -> None:
    body = b"<xml><Encrypt><![CDATA[a+b/c==]]></Encrypt></xml>"
    event = make_event(
        method="post",
        source="wechat",
        account="demo",
        body=body,
        raw_query="signature=abc&timestamp=1&nonce=2&encrypt_type=aes&msg_signature=x%2By",
        headers={"Content-Type": "text/xml; charset=GBK"},
        now_ms=1_700_000_000_000,
    )
    assert is_apigw_v2_event(event)
    request = request_from_event(event)
    assert request.method == "POST" and (request.source, request.account) == ("wechat", "demo")
    assert request.body == body
    assert request.raw_query.endswith("msg_signature=x%2By")
    assert request.query["msg_signature"] == "x+y"
    assert request.header("CONTENT-TYPE") == "text/xml; charset=GBK" and request.charset == "gbk"
    assert request.received_at == 1_700_000_000.0


def test_binary_bodies_travel_base64() -> None:
    body = bytes(range(256))
    event = make_event(method="POST", source="s", account="a", body=body)
    assert event["isBase64Encoded"] is True
    assert request_from_event(event).body == body


def test_first_value_wins_for_repeated_query_parameters() -> None:
    request = request_from_event(make_event(method="GET", source="s", account="a", raw_query="a=1&a=2"))
    assert request.query["a"] == "1"


def test_response_event_shape() -> None:
    out = response_to_event(WebhookResponse(status=200, body="success"))
    assert out == {
        "statusCode": 200,
        "headers": {"Content-Type": "text/plain; charset=utf-8"},
        "body": "success",
        "isBase64Encoded": False,
    }
