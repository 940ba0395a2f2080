"""The console's pieces without a browser: the webhooks feed read from a fake gateway over
HTTP, the queue message decoding, the field errors of a mapping failure, the access rules."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from dmhub_adapter_tools.console.app import _headers
from dmhub_adapter_tools.console.backend import Backend, ConsoleError, decode_message, preview_mapping
from dmhub_adapter_tools.console.target import Target

RECORDS = [
    {"seq": 1, "time": "2026-12-04T15:02:11.120+00:00", "method": "POST", "path": "/webhooks/wechat/demo",
     "source": "wechat", "account": "demo", "status": 200, "ms": 168.2,
     "outcome": {"enqueued": 1, "duplicate": 0, "skipped": 0, "unmapped": 0, "refused": 0},
     "reason": None, "externalIds": ["wechat:demo:gh_1|7364"]},
    {"seq": 2, "time": "2026-12-04T15:02:12.000+00:00", "method": "POST", "path": "/webhooks/taobao/demo",
     "source": "taobao", "account": "demo", "status": 401, "ms": 3.0,
     "outcome": {"enqueued": 0, "duplicate": 0, "skipped": 0, "unmapped": 0, "refused": 1},
     "reason": "signature mismatch", "externalIds": []},
]


@pytest.fixture
def fake_gateway() -> Iterator[tuple[str, list[str]]]:
    """A gateway answering /_local/requests with RECORDS; returns its URL and the paths asked."""
    asked: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            asked.append(self.path)
            body = json.dumps({"requests": RECORDS, "next": 2}).encode()
            status = 200 if self.path.startswith("/_local/requests") else 404
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", asked
    finally:
        server.shutdown()
        server.server_close()


def local(gateway: str | None) -> Backend:
    return Backend(Target(mode="local", environment={}, region="eu-west-1", stack_name="local",
                          allow_actions=True, gateway=gateway))


def test_feed_reads_the_gateway_newest_first(fake_gateway: tuple[str, list[str]]) -> None:
    url, asked = fake_gateway
    rows = local(url).requests()
    assert asked == ["/_local/requests?since=0"]
    assert [r["seq"] for r in rows] == [2, 1]
    assert rows[0]["outcome"] == "refused" and rows[0]["outcome_text"] == "refused 1"
    assert rows[1]["outcome"] == "enqueued" and rows[1]["at"] == "15:02:11"
    assert rows[1]["externalIds"] == ["wechat:demo:gh_1|7364"]


def test_feed_failures_are_messages() -> None:
    with pytest.raises(ConsoleError, match="request log"):
        local("http://127.0.0.1:9").requests()
    with pytest.raises(ConsoleError, match="only for the local stack"):
        local(None).requests()


def test_a_dead_letter_is_decoded() -> None:
    body = {"source": "wechat", "account": "demo", "claim_key": "wechat#demo#k",
            "event": {"event": "c_x", "externalId": "wechat:demo:k"}, "failure": {"reason": "refused type"}}
    message = decode_message("dlq", {"MessageId": "m1", "Body": json.dumps(body),
                                     "Attributes": {"SentTimestamp": "1000", "ApproximateReceiveCount": "2"}})
    assert (message.source, message.reason, message.claim_key, message.receive_count) == (
        "wechat", "refused type", "wechat#demo#k", 2)
    assert '"failure"' in message.pretty
    broken = decode_message("dlq", {"MessageId": "m2", "Body": "<not json>"})
    assert broken.reason == "body is not JSON" and broken.pretty == "<not json>"


def test_an_unmapped_record_is_decoded() -> None:
    record = {"source": "wechat", "account": "demo", "payload": "PHhtbD48YT4xPC9hPjwveG1sPg==",
              "payload_encoding": "base64", "payload_type": "text/xml", "headers": {"user-agent": "x"},
              "reasons": ["message #1: no rule matched this message"]}
    message = decode_message("unmapped", {"MessageId": "m", "Body": json.dumps(record)})
    assert message.payload == "<xml><a>1</a></xml>"
    assert "<a>1</a>" in message.pretty_payload and message.pretty_payload.count("\n") >= 3
    assert message.reason == "message #1: no rule matched this message"


def test_a_field_error_is_named() -> None:
    from dmhub_adapter_tools.local.samples import wechat_event_xml

    xml = wechat_event_xml("subscribe", openid="o1", EventKey="qrscene_1")
    yaml = "source: wechat\nadapter: wechat\nformat: xml\nrules:\n  - name: r\n    event: c_x\n" \
           "    externalId: {path: Nope}\n    date: {path: CreateTime, convert: [nosuch]}\n"
    result = preview_mapping("wechat", xml.encode(), {}, yaml_text=yaml)
    assert result["config_errors"]
    assert {"field": "date", "problem": result["config_fields"][0]["problem"]} in result["config_fields"]
    current = preview_mapping("wechat", xml.encode(), {})
    assert current["messages"][0]["status"] == "mapped" and current["messages"][0]["events"]


def test_headers_are_lines_or_json() -> None:
    assert _headers("Content-Type: text/xml\n\nX-A: 1:2") == {"Content-Type": "text/xml", "X-A": "1:2"}
    assert _headers('{"a": 1}') == {"a": "1"}
    with pytest.raises(ValueError, match="line 1"):
        _headers("no colon")
    with pytest.raises(ValueError, match="JSON"):
        _headers("{broken")


def test_templates_need_no_inline_script_or_style() -> None:
    """The pages' Content-Security-Policy forbids inline scripts, handlers and styles."""
    import re
    from pathlib import Path

    from dmhub_adapter_tools.console import app

    for template in (Path(app.__file__).parent / "templates").glob("*.html"):
        text = template.read_text(encoding="utf-8")
        assert not re.search(r"\sstyle=|\son[a-z]+=|<script>|<style", text), template.name
        assert "|safe" not in text.replace(" ", ""), template.name  # nothing bypasses autoescaping


def test_a_peek_is_reused_only_while_it_still_describes_the_queue() -> None:
    import time

    from dmhub_adapter_tools.console.backend import SNAPSHOT_TTL, SYNC_DEPTH, Snapshot, decode_message

    messages = [decode_message("dlq", {"MessageId": str(i), "Body": "{}"}) for i in range(3)]
    fresh = Snapshot(time.time(), 3, messages)
    assert fresh.serves(20, 3)  # the whole queue, depth unchanged
    assert fresh.serves(2, None)
    assert not fresh.serves(20, 4)  # a message arrived: peek again while the page waits
    deep = Snapshot(time.time(), SYNC_DEPTH + 50, messages * 10)
    assert deep.serves(20, SYNC_DEPTH + 51)  # a deep queue: shown as last read, renewed in the background
    assert not deep.serves(100, SYNC_DEPTH + 50)  # asks for more than it holds
    assert not Snapshot(time.time() - SNAPSHOT_TTL - 1, 3, messages).serves(3, 3)  # too old


def test_an_unreachable_stack_is_a_message_not_a_traceback() -> None:
    """Pages and actions over a stack whose AWS endpoint is gone answer with a message."""
    import socket
    import time

    import httpx
    import uvicorn

    from dmhub_adapter_tools.console.app import ConsoleConfig, create_app

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    target = Target(mode="local", region="eu-west-1", stack_name="local", allow_actions=True, gateway=None,
                    environment={"AWS_ENDPOINT_URL": "http://127.0.0.1:9", "IDEMPOTENCY_TABLE": "t",
                                 "DEAD_LETTER_QUEUE_URL": "http://127.0.0.1:9/1/dlq",
                                 "EVENT_QUEUE_URL": "http://127.0.0.1:9/1/events",
                                 "UNMAPPED_QUEUE_URL": "http://127.0.0.1:9/1/unmapped"})
    config = ConsoleConfig.new(port)
    server = uvicorn.Server(uvicorn.Config(create_app(Backend(target), config), host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        while not server.started:
            time.sleep(0.02)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as web:
            web.get(f"/?token={config.access_token}")
            for path in ("/", "/dlq", "/trace?q=wechat%23demo%23k"):
                page = web.get(path)
                assert page.status_code == 200 and 'class="error"' in page.text, path
            action = web.post("/queues/dlq/act", data={"csrf": config.csrf_token, "action": "replay", "id": "m"})
            assert action.status_code == 502 and "error" in action.text
            assert web.get("/queues/nope/messages/x").status_code == 404
    finally:
        server.should_exit = True
        thread.join(10)
