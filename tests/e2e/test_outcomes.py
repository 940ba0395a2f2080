"""What the local stack says about each webhook: the gateway's line per request and its
``/_local/requests`` endpoint, read over the gateway's socket while ``dmhub-adapter dev`` runs."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from dmhub_adapter_tools.local.accounts import load_accounts
from dmhub_adapter_tools.local.samples import build_sample
from tests.e2e.conftest import RunningStack, start_stack, wait_for

pytestmark = pytest.mark.e2e

WECHAT = load_accounts().secret("wechat", "demo") or {}


@pytest.fixture(scope="module")
def json_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    running = start_stack(tmp_path_factory.mktemp("json-stack"), "--json")
    try:
        yield running
    finally:
        running.stop()


def requests_since(stack: RunningStack, since: int = 0) -> dict[str, Any]:
    response = httpx.get(f"{stack.gateway}/_local/requests", params={"since": since}, timeout=10)
    assert response.status_code == 200
    return dict(response.json())


def test_each_request_is_served_with_its_outcome(stack: RunningStack) -> None:
    cursor = requests_since(stack)["next"]
    sample = build_sample("wechat-follow", WECHAT, openid="oOutcome" + "x" * 20)
    for _ in range(2):  # WeChat retrying the same push: enqueued, then a duplicate
        response = httpx.post(sample.url(stack.gateway), content=sample.body, headers=sample.headers, timeout=30)
        assert response.status_code == 200
    httpx.post(f"{stack.gateway}/webhooks/wechat/demo?signature=0&timestamp=1&nonce=2", content=b"<xml/>")

    answer = requests_since(stack, cursor)

    first, second, forged = answer["requests"]
    assert answer["next"] == forged["seq"] == cursor + 3
    assert first["outcome"] == {"enqueued": 1, "duplicate": 0, "skipped": 0, "unmapped": 0, "refused": 0}
    assert second["outcome"]["duplicate"] == 1 and second["outcome"]["enqueued"] == 0
    assert first["externalIds"] == second["externalIds"] and first["externalIds"][0].startswith("wechat:demo:")
    assert forged["status"] == 401 and forged["outcome"]["refused"] == 1 and forged["reason"]
    ext = first["externalIds"][0]
    log = wait_for(lambda: stack.log() if "duplicate 1" in stack.log() else None, 5, what="the gateway lines")
    lines = [line for line in log.splitlines() if " gateway POST /webhooks/wechat/demo " in line]
    assert any(line.endswith(f"enqueued 1 [{ext}]") for line in lines), lines
    assert any(f"duplicate 1 [{ext}]" in line for line in lines), lines
    assert any(" 401 " in line and "refused 1 (" in line for line in lines), lines


def test_json_lines_carry_the_same_records(json_stack: RunningStack) -> None:
    sample = build_sample("wechat-follow", WECHAT, openid="oJsonLines" + "y" * 18)
    httpx.post(sample.url(json_stack.gateway), content=sample.body, headers=sample.headers, timeout=30)
    (served,) = requests_since(json_stack)["requests"]

    def gateway_records() -> list[dict[str, Any]]:
        records = [json.loads(line) for line in json_stack.log().splitlines() if line.startswith("{")]
        return [r for r in records if r.get("component") == "gateway"]

    (printed,) = wait_for(gateway_records, 5, what="a JSON gateway line")
    assert printed == {"component": "gateway", **served}



def test_a_dead_lettered_event_is_said_so_with_its_reason_and_logged_as_the_sender(stack: RunningStack) -> None:
    wait_for(stack.drained, what="a quiet queue")
    refusal = {"code": 400, "message": "event type c_wechat_follow is not defined"}
    stack.control("fail-next", {"count": 1, "status": 400, "endpoint": "events.create", "body": refusal})
    sample = build_sample("wechat-follow", WECHAT, openid="oDeadLetter" + "z" * 17)
    response = httpx.post(sample.url(stack.gateway), content=sample.body, headers=sample.headers, timeout=30)
    assert response.status_code == 200
    (record,) = requests_since(stack, requests_since(stack)["next"] - 1)["requests"]
    ext = record["externalIds"][0]

    def batch_line() -> str | None:
        lines = [line for line in stack.log().splitlines() if " sender  delivery batch" in line and ext in line]
        return lines[-1] if lines else None

    line = wait_for(batch_line, 20, what="the poller's line")
    assert "delivered 0" in line and "dead-lettered 1" in line and f"dead-lettered {ext}: " in line, line
    assert " 1 done" not in line
    log = stack.log()
    assert '"_aws"' not in log  # no metrics blobs without --verbose
    sender_lines = [json.loads(x) for x in log.splitlines() if x.startswith("{") and "permanent failure" in x]
    assert sender_lines and all(x["function_name"] == "SenderFunction" for x in sender_lines)
    assert all(x["service"] == "dmhub-adapter-sender" for x in sender_lines)
