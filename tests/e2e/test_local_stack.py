"""End to end through ``dmhub-adapter dev``: signed webhooks into the gateway's socket, CustomerEvents
out of the DM Hub emulator's — exactly once, with identities resolved, through retries, forged
requests, a revoked token and DM Hub 503s; and a clean shutdown."""

from __future__ import annotations

import json
import secrets
import signal
import socket
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import httpx
import pytest

from dmhub_adapter_tools.local.accounts import load_accounts
from dmhub_adapter_tools.local.samples import SampleRequest, build_sample, taobao_request
from tests.e2e.conftest import RunningStack, pid_alive, start_stack, wait_for

pytestmark = pytest.mark.e2e

ACCOUNTS = load_accounts()
WECHAT = ACCOUNTS.secret("wechat", "demo") or {}
TAOBAO = ACCOUNTS.secret("taobao", "demo") or {}


def new_openid() -> str:
    return "oE2e" + secrets.token_urlsafe(18)[:24]


def send(stack: RunningStack, sample: SampleRequest) -> httpx.Response:
    return httpx.request(sample.method, sample.url(stack.gateway), content=sample.body or None,
                         headers=sample.headers, timeout=30)


def events_matching(state: dict[str, Any], needle: str) -> list[dict[str, Any]]:
    return [e for e in state["events"] if needle in str(e.get("externalId", ""))]


def creates(stack: RunningStack, state: dict[str, Any]) -> int:
    """Event calls to DM Hub so far (the mode's endpoint)."""
    return int(state["counters"]["requests"].get(stack.event_endpoint, 0))


def identity_of(state: dict[str, Any], value: str) -> dict[str, Any]:
    found = [i for i in state["identities"] if i["identityValue"] == value]
    assert len(found) == 1, found
    return found[0]


def delivered(stack: RunningStack, needles: Iterable[str], timeout: float = 25.0) -> dict[str, Any]:
    """Wait until an event per needle is in DM Hub and EventQueue is empty; return the state."""
    needles = list(needles)

    def done() -> dict[str, Any] | None:
        state = stack.emulator_state()
        if all(events_matching(state, n) for n in needles) and stack.drained():
            return state
        return None

    state: dict[str, Any] = wait_for(done, timeout, what=f"delivery of {needles}")
    return state


def test_wechat_follow_retried_three_times_arrives_once(stack: RunningStack) -> None:
    before = creates(stack, stack.emulator_state())
    openid = new_openid()
    sample = build_sample("wechat-follow", WECHAT, openid=openid)
    assert b"<Encrypt>" in sample.body and "encrypt_type=aes" in sample.raw_query  # safe mode
    # WeChat retries the same push (same signature) when an answer is slow: three deliveries.
    for _ in range(3):
        response = send(stack, sample)
        assert response.status_code == 200, response.text
        assert response.text == "success"

    state = delivered(stack, [openid])
    events = events_matching(state, openid)
    assert len(events) == 1
    event = events[0]
    assert event["event"]
    assert creates(stack, state) - before == 1  # the duplicates never left the ingest
    identity = identity_of(state, openid)
    assert identity["identityType"] == "wechat"
    assert event["customerId"] == identity["customerId"]


def test_signed_taobao_payment_sent_twice_arrives_once(stack: RunningStack) -> None:
    before = creates(stack, stack.emulator_state())
    sample = build_sample("taobao-paid", TAOBAO)
    tid = str(sample.facts["tid"])
    # The relay sends the same TMC message again later, signed afresh.
    again = taobao_request("taobao-paid", json.loads(sample.body), TAOBAO, "demo", time.time() + 1, sample.facts)
    assert again.raw_query != sample.raw_query and again.body == sample.body
    for request in (sample, again):
        response = send(stack, request)
        assert response.status_code == 200, response.text

    state = delivered(stack, [tid])
    events = events_matching(state, tid)
    assert len(events) == 1
    assert creates(stack, state) - before == 1
    identity = identity_of(state, str(sample.facts["buyer_open_uid"]))
    assert events[0]["customerId"] == identity["customerId"]


@pytest.mark.parametrize("name", ["wechat-follow", "taobao-paid"])
def test_forged_requests_are_refused_and_nothing_arrives(stack: RunningStack, name: str) -> None:
    wait_for(stack.drained, what="a quiet queue")
    before = stack.emulator_state()
    forged_secret = {**(WECHAT if name.startswith("wechat") else TAOBAO)}
    if name.startswith("wechat"):
        forged_secret["token"] = "not-the-token"
    else:
        forged_secret["appSecret"] = "not-the-secret"
    forged = build_sample(name, forged_secret, openid=new_openid()) if name.startswith("wechat") else \
        build_sample(name, forged_secret)
    response = send(stack, forged)
    assert response.status_code == 401, response.text
    # The ingest answered after deciding: had it enqueued anything, the queue would show it now.
    assert stack.queue_depth("EVENT_QUEUE_URL") == 0
    assert stack.queue_depth("UNMAPPED_QUEUE_URL") == 0
    after = stack.emulator_state()
    assert creates(stack, after) == creates(stack, before)
    assert len(after["events"]) == len(before["events"])


def test_delivery_continues_after_the_token_is_revoked(stack: RunningStack) -> None:
    first = new_openid()
    assert send(stack, build_sample("wechat-follow", WECHAT, openid=first)).status_code == 200
    state = delivered(stack, [first])
    fetches = state["counters"]["token_fetches"]
    revoked = stack.control("revoke-token", {})
    assert revoked["revoked"]

    second = new_openid()
    assert send(stack, build_sample("wechat-follow", WECHAT, openid=second)).status_code == 200
    state = delivered(stack, [second])
    assert len(events_matching(state, second)) == 1
    errors = stack.emulator_state()["counters"]["token_errors"]
    assert errors >= 1  # the sender met the revoked token …
    assert state["counters"]["token_fetches"] == fetches + 1  # … and fetched exactly one new one
    assert state["counters"]["token_rejections"] == 0


@pytest.mark.parametrize("after", [False, True], ids=["503-before-processing", "503-after-processing"])
def test_dmhub_503s_still_deliver_everything_once(stack: RunningStack, after: bool) -> None:
    wait_for(stack.drained, what="a quiet queue")
    # DM Hub fails the next posts; with after=True it stores the event and still answers 503,
    # so only the externalId keeps the retry from doubling it.
    stack.control("fail-next", {"count": 3, "status": 503, "endpoint": stack.event_endpoint, "after": after})
    openids = [new_openid() for _ in range(3)]
    tids: list[str] = []
    for openid in openids:
        assert send(stack, build_sample("wechat-follow", WECHAT, openid=openid)).status_code == 200
    for _ in range(2):
        sample = build_sample("taobao-created", TAOBAO)
        tids.append(str(sample.facts["tid"]))
        assert send(stack, sample).status_code == 200

    state = delivered(stack, [*openids, *tids], timeout=40)
    for needle in [*openids, *tids]:
        assert len(events_matching(state, needle)) == 1, needle
    assert state["pending_failures"] == 0
    assert state["counters"]["responses"].get("503", 0) >= 3
    assert stack.queue_depth("DEAD_LETTER_QUEUE_URL") == 0


def test_gateway_routes_and_handshake(stack: RunningStack) -> None:
    verify = build_sample("wechat-verify", WECHAT)
    response = send(stack, verify)
    assert response.status_code == 200
    assert response.text == verify.facts["echostr"]
    assert response.headers["apigw-requestid"]

    missing = httpx.get(f"{stack.gateway}/health", timeout=10)
    assert missing.status_code == 404 and missing.json() == {"message": "Not Found"}
    unknown = httpx.post(f"{stack.gateway}/webhooks/wechat/no-such-account", content=b"<xml/>",
                         headers={"content-type": "text/xml"}, timeout=10)
    assert unknown.status_code == 404
    assert unknown.headers["content-type"].startswith("application/json")
    # the gateway logs a request after answering it: wait for the line rather than race it
    wait_for(lambda: "gateway POST /webhooks/wechat/no-such-account 404" in stack.log(), 5, what="the log line")


def _port_closed(url: str) -> bool:
    host, port = url.removeprefix("http://").split(":")
    try:
        with socket.create_connection((host, int(port)), timeout=0.5):
            return False
    except OSError:
        return True


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_shutdown_stops_everything_it_started(tmp_path: Path, sig: int) -> None:
    running = start_stack(tmp_path)
    moto_pid = int(running.info["moto_pid"])
    assert pid_alive(moto_pid)
    assert httpx.get(f"{running.dmhub}/_emulator/config", timeout=10).status_code == 200

    code = running.stop(sig)
    assert code == 0, running.log()
    assert "stopped." in running.log()
    wait_for(lambda: not pid_alive(moto_pid), timeout=5, what="moto_server to exit")
    for url in (running.gateway, running.dmhub, running.info["moto"]):
        assert _port_closed(url), url
    assert not (tmp_path / "ready.json").exists()


def test_an_external_dmhub_is_used_with_the_accounts_file_credentials(tmp_path: Path) -> None:
    from dmhub_adapter_tools.emulator.server import EmulatorServer

    accounts = tmp_path / "accounts.yaml"
    accounts.write_text(
        "dmhub: {appId: other-app, secret: other-secret}\n"
        "accounts:\n"
        f"  - {{source: wechat, account: shop, secret: {json.dumps(WECHAT)}}}\n",
        encoding="utf-8",
    )
    with EmulatorServer(port=0, app_id="other-app", secret="other-secret") as dmhub:
        running = start_stack(tmp_path, "--accounts", str(accounts), env={"DMHUB_BASE_URL": dmhub.base_url})
        try:
            assert running.info["emulator"] is False
            assert running.info["dmhub"] == dmhub.base_url
            assert running.info["webhooks"] == {"wechat/shop": f"{running.gateway}/webhooks/wechat/shop"}
            openid = new_openid()
            response = send(running, build_sample("wechat-follow", WECHAT, account="shop", openid=openid))
            assert response.status_code == 200, response.text
            wait_for(lambda: events_matching(dmhub.state.snapshot(), openid), what="the event at the external DM Hub")
            assert dmhub.state.counters()["token_rejections"] == 0
            # the demo account is not configured in this file
            assert send(running, build_sample("wechat-follow", WECHAT, openid=new_openid())).status_code == 404
        finally:
            assert running.stop() == 0


def test_print_env_points_another_shell_at_the_stack(stack: RunningStack) -> None:
    import subprocess

    from tests.e2e.conftest import dev_command

    port = stack.gateway.rsplit(":", 1)[1]
    result = subprocess.run(dev_command("--print-env", "--port", port), capture_output=True, text=True, timeout=30,
                            check=False)
    assert result.returncode == 0, result.stderr
    exports = dict(line.removeprefix("export ").split("=", 1) for line in result.stdout.splitlines())
    assert exports["AWS_ENDPOINT_URL"] == stack.info["moto"]
    assert exports["DMHUB_BASE_URL"] == stack.dmhub
    assert exports["DMHUB_ADAPTER_GATEWAY"] == stack.gateway
    assert exports["EVENT_QUEUE_URL"] == stack.info["environment"]["EVENT_QUEUE_URL"]
    assert exports["AWS_ACCESS_KEY_ID"] == "testing"
