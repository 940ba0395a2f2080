"""The local gateway: API Gateway HTTP API v2 events in, API Gateway's reading of the answer out,
over a real socket on 127.0.0.1."""

from __future__ import annotations

import base64
import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from dmhub_adapter.apigw import request_from_event
from dmhub_adapter_tools.local.context import LambdaContext
from dmhub_adapter_tools.local.gateway import (
    LocalGateway,
    build_event,
    is_text_content_type,
    translate_result,
)


class Recorder:
    """A stand-in ingest handler that records what it was called with."""

    def __init__(self, result: Any = None, error: Exception | None = None) -> None:
        self.calls: list[tuple[dict[str, Any], Any]] = []
        self.result = result if result is not None else {
            "statusCode": 200, "headers": {"Content-Type": "text/plain"}, "body": "success", "isBase64Encoded": False
        }
        self.error = error
        self.lock = threading.Lock()

    def __call__(self, event: dict[str, Any], context: Any) -> Any:
        with self.lock:
            self.calls.append((event, context))
        if self.error:
            raise self.error
        return self.result

    @property
    def event(self) -> dict[str, Any]:
        assert len(self.calls) == 1, self.calls
        return self.calls[0][0]


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def gateway(recorder: Recorder) -> Iterator[LocalGateway]:
    lines: list[str] = []
    server = LocalGateway(recorder, port=0, on_request=lambda record: lines.append(record.text())).start()
    server.lines = lines  # type: ignore[attr-defined]
    try:
        yield server
    finally:
        server.stop()


# -- pure parts ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content_type", "text"),
    [
        ("text/xml", True),
        ("text/plain; charset=GBK", True),
        ("application/json; charset=utf-8", True),
        ("application/xml", True),
        ("application/vnd.api+json", True),
        ("application/atom+xml", True),
        ("application/x-www-form-urlencoded", False),
        ("application/octet-stream", False),
        ("image/png", False),
        (None, False),
        ("", False),
    ],
)
def test_text_content_types(content_type: str | None, text: bool) -> None:
    assert is_text_content_type(content_type) is text


def test_event_shape_for_a_text_body() -> None:
    event = build_event(
        method="POST",
        raw_path="/webhooks/wechat/demo",
        raw_query="signature=abc&timestamp=1&nonce=2&nonce=3&x=a%2Bb",
        headers=[("Content-Type", "text/xml"), ("X-Dup", "a"), ("x-dup", "b"), ("Cookie", "k=v; s=t"),
                 ("Connection", "keep-alive")],
        body="<xml>你好</xml>".encode(),
        source="wechat",
        account="demo",
        request_id="req-1",
        now_ms=1_700_000_000_123,
    )
    assert event["version"] == "2.0"
    assert event["routeKey"] == "POST /webhooks/{source}/{account}"
    assert event["rawPath"] == "/webhooks/wechat/demo"
    assert event["rawQueryString"] == "signature=abc&timestamp=1&nonce=2&nonce=3&x=a%2Bb"
    assert event["queryStringParameters"]["nonce"] == "2,3"
    assert event["queryStringParameters"]["x"] == "a+b"
    assert event["pathParameters"] == {"source": "wechat", "account": "demo"}
    assert event["isBase64Encoded"] is False
    assert event["body"] == "<xml>你好</xml>"
    headers = event["headers"]
    assert headers["content-type"] == "text/xml"
    assert headers["x-dup"] == "a,b"
    assert "cookie" not in headers and "connection" not in headers
    assert event["cookies"] == ["k=v", "s=t"]
    assert headers["content-length"] == str(len("<xml>你好</xml>".encode()))
    assert headers["x-amzn-trace-id"].startswith("Root=1-")
    context = event["requestContext"]
    assert context["requestId"] == "req-1"
    assert context["timeEpoch"] == 1_700_000_000_123
    assert context["http"]["method"] == "POST"
    assert context["http"]["path"] == "/webhooks/wechat/demo"
    # what the ingest will see
    request = request_from_event(event)
    assert request.body == "<xml>你好</xml>".encode()
    assert request.query["nonce"] == "2"
    assert request.source == "wechat" and request.account == "demo"


def test_binary_and_form_bodies_are_base64() -> None:
    for content_type, body in (("application/octet-stream", b"\x00\xff\x10"), ("application/x-www-form-urlencoded",
                                                                               b"a=1&b=%E4%BD%A0")):
        event = build_event(method="POST", raw_path="/webhooks/x/y", raw_query="", headers=[("content-type",
                            content_type)], body=body, source="x", account="y")
        assert event["isBase64Encoded"] is True
        assert base64.b64decode(event["body"]) == body
        assert request_from_event(event).body == body


def test_text_type_with_undecodable_bytes_falls_back_to_base64() -> None:
    body = "<xml>你好</xml>".encode("gbk")
    event = build_event(method="POST", raw_path="/webhooks/x/y", raw_query="",
                        headers=[("content-type", "text/xml; charset=GBK")], body=body, source="x", account="y")
    assert event["isBase64Encoded"] is True
    assert request_from_event(event).body == body


def test_get_without_body_has_no_body_field() -> None:
    event = build_event(method="GET", raw_path="/webhooks/x/y", raw_query="echostr=1", headers=[], body=b"",
                        source="x", account="y")
    assert "body" not in event and event["isBase64Encoded"] is False
    assert "content-length" not in event["headers"]


def test_translate_result_reads_lambda_answers_like_api_gateway() -> None:
    plain = translate_result({"statusCode": 201, "headers": {"X-A": "1"}, "body": "ok", "cookies": ["c=1"]})
    assert (plain.status, plain.body) == (201, b"ok")
    assert ("X-A", "1") in plain.headers and ("set-cookie", "c=1") in plain.headers
    binary = translate_result({"statusCode": 200, "body": base64.b64encode(b"\x00\x01").decode(),
                               "isBase64Encoded": True})
    assert binary.body == b"\x00\x01"
    bare = translate_result({"ok": True})
    assert bare.status == 200 and json.loads(bare.body) == {"ok": True}
    assert ("content-type", "application/json") in bare.headers
    assert translate_result(None).body == b"null"
    assert translate_result({"statusCode": "nope"}).status == 500
    assert translate_result({"statusCode": 204}).body == b""


def test_context_counts_down_from_its_timeout() -> None:
    context = LambdaContext("IngestFunction", timeout_seconds=3, region="eu-west-1")
    remaining = context.get_remaining_time_in_millis()
    assert 0 < remaining <= 3000
    assert context.invoked_function_arn == "arn:aws:lambda:eu-west-1:000000000000:function:IngestFunction"
    assert context.memory_limit_in_mb == 512
    assert context.aws_request_id != LambdaContext("IngestFunction").aws_request_id
    assert LambdaContext("f", timeout_seconds=0).get_remaining_time_in_millis() == 0


# -- over the socket -----------------------------------------------------------------------------


def test_post_reaches_the_handler_and_its_answer_comes_back(gateway: LocalGateway, recorder: Recorder) -> None:
    response = httpx.post(
        f"{gateway.url}/webhooks/wechat/demo?signature=s&timestamp=1&nonce=n",
        content=b"<xml><A>1</A></xml>",
        headers={"content-type": "text/xml", "user-agent": "Mozilla/4.0"},
    )
    assert response.status_code == 200
    assert response.text == "success"
    assert response.headers["content-type"] == "text/plain"
    assert response.headers["apigw-requestid"] == recorder.event["requestContext"]["requestId"]
    event = recorder.event
    assert event["rawQueryString"] == "signature=s&timestamp=1&nonce=n"
    assert event["body"] == "<xml><A>1</A></xml>"
    assert event["requestContext"]["http"]["userAgent"] == "Mozilla/4.0"
    assert event["requestContext"]["http"]["sourceIp"] == "127.0.0.1"
    context = recorder.calls[0][1]
    assert context.function_name == "IngestFunction"
    assert 0 < context.get_remaining_time_in_millis() <= 10_000  # template.yaml: Timeout 10
    assert context.memory_limit_in_mb == 1024
    # the gateway prints its line after the answer has gone out: give it a moment
    deadline = time.monotonic() + 5
    while not gateway.lines and time.monotonic() < deadline:  # type: ignore[attr-defined]
        time.sleep(0.01)
    assert gateway.lines[-1].startswith("POST /webhooks/wechat/demo 200 ")  # type: ignore[attr-defined]
    assert "signature" not in gateway.lines[-1]  # type: ignore[attr-defined]


def test_percent_encoded_path_segments_are_decoded_in_path_parameters(
    gateway: LocalGateway, recorder: Recorder
) -> None:
    httpx.get(f"{gateway.url}/webhooks/my%20source/shop%2F1")
    assert recorder.event["pathParameters"] == {"source": "my source", "account": "shop/1"}
    assert recorder.event["rawPath"] == "/webhooks/my%20source/shop%2F1"


@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", "/"), ("POST", "/webhooks/wechat"), ("POST", "/webhooks/wechat/demo/extra"), ("GET", "/other/a/b"),
     ("POST", "/webhooks//demo"), ("PUT", "/webhooks/wechat/demo"), ("DELETE", "/webhooks/wechat/demo")],
)
def test_other_routes_are_404_json_without_calling_the_handler(
    gateway: LocalGateway, recorder: Recorder, method: str, path: str
) -> None:
    response = httpx.request(method, f"{gateway.url}{path}", content=b"{}")
    assert response.status_code == 404
    assert response.json() == {"message": "Not Found"}
    assert recorder.calls == []


def test_a_crashing_handler_is_a_500(gateway: LocalGateway, recorder: Recorder) -> None:
    recorder.error = RuntimeError("boom")
    response = httpx.post(f"{gateway.url}/webhooks/x/y", content=b"{}")
    assert response.status_code == 500
    assert response.json() == {"message": "Internal Server Error"}
    assert len(recorder.calls) == 1
    # the server survives it
    recorder.error = None
    assert httpx.post(f"{gateway.url}/webhooks/x/y", content=b"{}").status_code == 200


def test_body_over_the_cap_is_413(recorder: Recorder) -> None:
    server = LocalGateway(recorder, port=0, max_payload_bytes=100, on_request=lambda _line: None).start()
    try:
        response = httpx.post(f"{server.url}/webhooks/x/y", content=b"x" * 101)
        assert response.status_code == 413
        assert recorder.calls == []
        ok = httpx.post(f"{server.url}/webhooks/x/y", content=b"x" * 100)
        assert ok.status_code == 200
        assert len(base64.b64decode(recorder.event["body"])) == 100
    finally:
        server.stop()


def test_chunked_bodies_are_reassembled(gateway: LocalGateway, recorder: Recorder) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"a":'
        yield b' 1}'

    response = httpx.post(f"{gateway.url}/webhooks/x/y", content=chunks(),
                          headers={"content-type": "application/json"})
    assert response.status_code == 200
    assert recorder.event["body"] == '{"a": 1}'
    assert "transfer-encoding" not in recorder.event["headers"]


def test_keep_alive_connection_serves_several_requests(gateway: LocalGateway, recorder: Recorder) -> None:
    with httpx.Client() as client:
        for index in range(3):
            assert client.post(f"{gateway.url}/webhooks/x/y", content=str(index).encode(),
                               headers={"content-type": "text/plain"}).status_code == 200
    assert [event["body"] for event, _ in recorder.calls] == ["0", "1", "2"]


def test_it_listens_on_loopback_only(gateway: LocalGateway) -> None:
    host, port = gateway.server.server_address[:2]
    assert host == "127.0.0.1"
    with socket.create_connection(("127.0.0.1", port), timeout=2):
        pass


# -- the recent requests' outcomes ---------------------------------------------------------------


class Publishing(Recorder):
    """An ingest stand-in that reports an outcome, as the pipeline does."""

    def __call__(self, event: dict[str, Any], context: Any) -> Any:
        from dmhub_adapter.ingest.outcome import RequestOutcome
        from dmhub_adapter.observability import publish_outcome as publish

        result = super().__call__(event, context)
        params = event["pathParameters"]
        publish(RequestOutcome(params["source"], params["account"], status=200, enqueued=1,
                               external_ids=[f"{params['source']}:{params['account']}:1"]))
        return result


def test_requests_are_served_with_their_outcomes_since_a_cursor() -> None:
    lines: list[str] = []
    server = LocalGateway(Publishing(), port=0, on_request=lambda record: lines.append(record.text())).start()
    try:
        assert httpx.get(f"{server.url}/_local/requests").json() == {"requests": [], "next": 0}
        httpx.post(f"{server.url}/webhooks/wechat/demo?signature=secret", content=b"<xml/>")
        httpx.post(f"{server.url}/nowhere", content=b"{}")

        answer = httpx.get(f"{server.url}/_local/requests?since=0")
        assert answer.status_code == 200 and answer.headers["content-type"] == "application/json"
        first, second = answer.json()["requests"]
        assert answer.json()["next"] == 2
        assert (first["path"], first["source"], first["account"], first["status"]) == (
            "/webhooks/wechat/demo", "wechat", "demo", 200)
        assert first["outcome"]["enqueued"] == 1 and first["externalIds"] == ["wechat:demo:1"]
        assert isinstance(first["ms"], float) and first["reason"] is None
        assert (second["status"], second["outcome"]["refused"], second["source"]) == (404, 1, None)
        assert lines[0].startswith("POST /webhooks/wechat/demo 200 ") and "enqueued 1 [wechat:demo:1]" in lines[0]
        assert "secret" not in lines[0]  # the query string is not printed
        assert len(lines) == 2  # reading /_local/requests is not itself a request line
        assert httpx.get(f"{server.url}/_local/requests?since=2").json() == {"requests": [], "next": 2}
        assert httpx.get(f"{server.url}/_local/requests?since=x").status_code == 400
        assert httpx.post(f"{server.url}/_local/requests").status_code == 405
        assert httpx.get(f"{server.url}/_local/other").status_code == 404
    finally:
        server.stop()
