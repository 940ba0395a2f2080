"""Replay maps exactly as live (issue 16, item 1), through ``dmhub-adapter dev`` and the real CLI.

For a header-routed source, Standard Webhooks, WeChat and Taobao: a delivery arrives while its
rule is missing (kept as unmapped), the rule is added (the mapping file changes under the
running stack), ``dmhub-adapter replay unmapped`` runs in another process, and exactly one event
reaches the emulator — with the externalId a live delivery gets: sending the same event again
afterwards is a duplicate of that very externalId.

The Standard Webhooks and header-routed requests are signed here with ``hmac``/``base64``
directly from the senders' specifications, not with the adapter's signer.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from dmhub_adapter.mapping.config import packaged_dir
from dmhub_adapter_tools.local.accounts import load_accounts
from dmhub_adapter_tools.local.samples import build_sample, taobao_request
from tests.e2e.conftest import RunningStack, start_stack, wait_for

pytestmark = pytest.mark.e2e

DEMO = load_accounts()
WECHAT = DEMO.secret("wechat", "demo") or {}
TAOBAO = DEMO.secret("taobao", "demo") or {}
SWH_KEY = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
HUB_SECRET = "hub-demo-secret"

#: a GitHub-style source: the event type is the X-GitHub-Event header, the body has no type
HUB_MAPPING = """
source: hub
adapter: generic
format: json
verification:
  scheme: signature
  algorithm: hmac-sha256
  key: {secret: webhookSecret}
  signature: {header: x-hub-signature-256, prefix: "sha256=", encoding: hex}
  signed: [body]
  replayWindow: {none: "GitHub-style senders sign no time; redeliveries keep the body and so the key"}
options:
  requestValues:
    event: {header: x-github-event}
defaults:
  identity: {type: hub-user, value: {path: sender.id, convert: string}}
rules:
  - name: issue
    when: "_request.event == 'issues'"
    event: c_hub_issue
    externalId: {template: "issue|{issue.id}|{action}"}
    date: {path: issue.updated_at, convert: iso8601}
RULE_PLACEHOLDER
"""
HUB_PUSH_RULE = """  - name: push
    when: "_request.event == 'push'"
    event: c_hub_push
    externalId: {template: "push|{head_commit.id}"}
    date: {path: head_commit.timestamp, convert: iso8601}
"""


def cli(*args: str) -> list[str]:
    script = Path(sys.executable).with_name("dmhub-adapter")
    return [str(script), *args] if script.exists() else [sys.executable, "-m", "dmhub_adapter_tools.cli", *args]


@dataclass
class Setup:
    stack: RunningStack
    mappings: Path

    def write(self, name: str, text: str) -> None:
        path = self.mappings / f"{name}.yaml"
        path.write_text(text, encoding="utf-8")
        # the registry reloads a file whose mtime changed; make sure it did within the clock's grain
        stamp = time.time_ns()
        os.utime(path, ns=(stamp, stamp))

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, **{k: str(v) for k, v in self.stack.info["environment"].items()}}
        return subprocess.run(cli(*args), capture_output=True, text=True, timeout=120, env=env, check=False)

    def post(self, url: str, body: bytes, headers: dict[str, str]) -> dict[str, Any]:
        """Send one request and return the gateway's record of it."""
        before = httpx.get(f"{self.stack.gateway}/_local/requests", timeout=10).json()["next"]
        response = httpx.post(url, content=body, headers=headers, timeout=30)
        assert response.status_code == 200, response.text
        (record,) = httpx.get(f"{self.stack.gateway}/_local/requests", params={"since": before},
                              timeout=10).json()["requests"]
        return dict(record)

    def events(self, needle: str) -> list[dict[str, Any]]:
        state = httpx.get(f"{self.stack.dmhub}/_emulator/state", timeout=10).json()
        return [e for e in state["events"] if needle in str(e.get("externalId", ""))]


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    root = tmp_path_factory.mktemp("replay")
    mappings = root / "mappings"
    mappings.mkdir()
    accounts = root / "accounts.yaml"
    data = {"dmhub": DEMO.dmhub, "accounts": [*DEMO.accounts,
            {"source": "hub", "account": "demo", "secret": {"webhookSecret": HUB_SECRET}}]}
    accounts.write_text(json.dumps(data), encoding="utf-8")
    # the stack refuses an account of a source it has no mapping for: hub's file exists from the start
    (mappings / "hub.yaml").write_text(HUB_MAPPING.replace("RULE_PLACEHOLDER", ""), encoding="utf-8")
    running = start_stack(root, "--accounts", str(accounts), "--mappings-dir", str(mappings))
    try:
        yield Setup(running, mappings)
    finally:
        running.stop()


def shipped(name: str) -> str:
    return (packaged_dir() / f"{name}.yaml").read_text(encoding="utf-8")


def without(text: str, *whens: str) -> str:
    """The shipped file with the rules matching ``whens`` made never to match."""
    for when in whens:
        assert when in text, when
        text = text.replace(when, "when: \"'rule' == 'missing'\"")
    return text


def replay_then_redeliver(setup: Setup, send: Callable[[], dict[str, Any]], fix: Callable[[], None],
                          needle: str) -> None:
    """The scenario every source goes through."""
    first = send()
    assert first["outcome"]["unmapped"] == 1 and first["outcome"]["enqueued"] == 0, first
    assert first["externalIds"] == []
    fix()
    replayed = setup.run("replay", "unmapped")
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    assert json.loads(replayed.stdout)["replayed"] >= 1
    (event,) = wait_for(lambda: setup.events(needle), 25, what=f"the replayed event {needle}")
    # Live again, after the fix: a duplicate of exactly the replayed externalId, nothing new sent.
    live = send()
    assert live["outcome"]["duplicate"] == 1 and live["outcome"]["enqueued"] == 0, live
    assert live["externalIds"] == [event["externalId"]]
    time.sleep(1.5)  # had anything been enqueued, the poller (1 s wait) would have sent it by now
    assert len(setup.events(needle)) == 1


def test_a_header_routed_source(setup: Setup) -> None:
    setup.write("hub", HUB_MAPPING.replace("RULE_PLACEHOLDER", ""))
    commit = secrets.token_hex(20)
    body = json.dumps({"ref": "refs/heads/main", "sender": {"id": 42},
                       "head_commit": {"id": commit, "timestamp": "2026-12-04T10:00:00+08:00"}}).encode()
    signature = "sha256=" + hmac.new(HUB_SECRET.encode(), body, hashlib.sha256).hexdigest()
    headers = {"content-type": "application/json", "x-github-event": "push", "x-hub-signature-256": signature}

    def send() -> dict[str, Any]:
        return setup.post(f"{setup.stack.gateway}/webhooks/hub/demo", body, headers)

    replay_then_redeliver(setup, send, lambda: setup.write("hub", HUB_MAPPING.replace("RULE_PLACEHOLDER",
                                                                                      HUB_PUSH_RULE)), commit)
    (event,) = setup.events(commit)
    assert event["event"] == "c_hub_push" and event["externalId"] == f"hub:demo:push|{commit}"


def test_standard_webhooks_keep_the_webhook_id_as_externalid(setup: Setup) -> None:
    text = shipped("standard-webhooks")
    setup.write("standard-webhooks", without(text, 'when: "type && data.customer.email"'))
    msg_id = "msg_" + secrets.token_hex(12)
    body = json.dumps({"type": "invoice.created", "timestamp": "2026-12-04T10:00:00Z",
                       "data": {"id": "in_1", "customer": {"email": "replay@example.com"}}}).encode()
    key = base64.b64decode(SWH_KEY.removeprefix("whsec_"))

    def send() -> dict[str, Any]:
        stamp = str(int(time.time()))
        mac = hmac.new(key, f"{msg_id}.{stamp}.".encode() + body, hashlib.sha256).digest()
        headers = {"content-type": "application/json", "webhook-id": msg_id, "webhook-timestamp": stamp,
                   "webhook-signature": "v1," + base64.b64encode(mac).decode()}
        return setup.post(f"{setup.stack.gateway}/webhooks/standard-webhooks/demo", body, headers)

    replay_then_redeliver(setup, send, lambda: setup.write("standard-webhooks", text), msg_id)
    (event,) = setup.events(msg_id)
    assert event["externalId"] == f"standard-webhooks:demo:swh|{msg_id}"  # not swh|invoice.created|…
    assert event["event"] == "c_invoice_created"


def test_wechat(setup: Setup) -> None:
    text = shipped("wechat")
    setup.write("wechat", without(
        text, "when: \"lower(MsgType) == 'event' && lower(Event) == 'subscribe' && has_prefix(EventKey, 'qrscene_')\"",
        "when: \"lower(MsgType) == 'event' && lower(Event) == 'subscribe'\""))
    openid = "oReplay" + secrets.token_urlsafe(16)[:21]
    sample = build_sample("wechat-follow", WECHAT, openid=openid)

    def send() -> dict[str, Any]:  # WeChat retries the very same signed push
        return setup.post(sample.url(setup.stack.gateway), sample.body, sample.headers)

    replay_then_redeliver(setup, send, lambda: setup.write("wechat", text), openid)


def test_taobao(setup: Setup) -> None:
    text = shipped("taobao")
    setup.write("taobao", without(text, "when: \"topic == 'taobao_trade_TradeBuyerPay'\""))
    sample = build_sample("taobao-paid", TAOBAO)
    tid = str(sample.facts["tid"])

    def send() -> dict[str, Any]:  # the relay resends the message, signed afresh
        again = taobao_request("taobao-paid", json.loads(sample.body), TAOBAO, "demo", time.time(), sample.facts)
        return setup.post(again.url(setup.stack.gateway), again.body, again.headers)

    replay_then_redeliver(setup, send, lambda: setup.write("taobao", text), tid)


# -- inspect before you act (item 2) -------------------------------------------------------------


def test_dry_runs_show_what_would_happen_and_show_prints_the_payload_for_map(setup: Setup, tmp_path: Path) -> None:
    setup.write("hub", HUB_MAPPING.replace("RULE_PLACEHOLDER", ""))
    commit = secrets.token_hex(20)
    body = json.dumps({"ref": "refs/heads/dev", "sender": {"id": 7},
                       "head_commit": {"id": commit, "timestamp": "2026-12-04T11:00:00+08:00"}}).encode()
    signature = "sha256=" + hmac.new(HUB_SECRET.encode(), body, hashlib.sha256).hexdigest()
    headers = {"content-type": "application/json", "x-github-event": "push", "x-hub-signature-256": signature}
    assert setup.post(f"{setup.stack.gateway}/webhooks/hub/demo", body, headers)["outcome"]["unmapped"] == 1

    before = setup.run("replay", "unmapped", "--dry-run")
    assert before.returncode == 1  # it would still be kept
    (entry,) = json.loads(before.stdout)["wouldReplay"]
    message_id = entry["messageId"]
    assert entry["now"][0]["status"] == "unmapped" and "no rule matched" in entry["now"][0]["reason"]
    assert f"{message_id} message #1: still unmapped: no rule matched this message" in before.stderr

    raw = tmp_path / "push.json"
    shown = setup.run("unmapped", "show", message_id, "--raw", str(raw))
    assert shown.returncode == 0, shown.stderr
    record = json.loads(shown.stdout)
    assert record["headers"]["x-github-event"] == "push" and "x-hub-signature-256" not in record["headers"]
    assert json.loads(record["payload"])["head_commit"]["id"] == commit and raw.read_bytes() == body
    assert "dmhub-adapter map hub" in shown.stderr and "--header x-github-event:push" in shown.stderr

    setup.write("hub", HUB_MAPPING.replace("RULE_PLACEHOLDER", HUB_PUSH_RULE))
    mapped = setup.run("map", "hub", str(raw), "--header", "X-GitHub-Event:push")
    assert mapped.returncode == 0, mapped.stderr
    assert json.loads(mapped.stdout)[0]["event"]["event"] == "c_hub_push"
    ping = setup.run("map", "hub", str(raw), "--header", "X-GitHub-Event:ping")
    assert ping.returncode == 1 and "no rule matched" in ping.stderr

    after = setup.run("replay", "unmapped", "--dry-run", "--id", message_id)
    assert after.returncode == 0, after.stderr
    assert (f"{message_id} message #1: would deliver c_hub_push [hub:demo:push|{commit}] (rule 'push')"
            in after.stderr)
    assert setup.events(commit) == []  # a dry run changes nothing
    assert setup.run("replay", "unmapped", "--id", message_id).returncode == 0
    wait_for(lambda: setup.events(commit), 25, what="the replayed push")


def test_dlq_dry_run_and_show(setup: Setup) -> None:
    refusal = {"code": 400, "message": "event type unknown"}
    httpx.post(f"{setup.stack.dmhub}/_emulator/fail-next",
               json={"count": 1, "status": 400, "endpoint": "events.create", "body": refusal}, timeout=10)
    openid = "oDlqShow" + secrets.token_urlsafe(16)[:20]
    sample = build_sample("wechat-follow", WECHAT, openid=openid)
    setup.post(sample.url(setup.stack.gateway), sample.body, sample.headers)

    def dead_lettered() -> list[dict[str, Any]]:
        result = setup.run("replay", "dlq", "--dry-run")
        return [m for m in json.loads(result.stdout).get("wouldReplay", []) if openid in str(m.get("externalId"))]

    (entry,) = wait_for(dead_lettered, 25, what="the dead-lettered event")
    assert entry["now"] == "valid: would go back to EventQueue" and entry["failure"]
    shown = setup.run("dlq", "show", entry["messageId"])
    assert shown.returncode == 0, shown.stderr
    body = json.loads(shown.stdout)["body"]
    assert openid in body["event"]["externalId"] and body["failure"]["reason"]
    assert setup.run("replay", "dlq", "--id", entry["messageId"]).returncode == 0
    wait_for(lambda: setup.events(openid), 25, what="the event delivered after the DLQ replay")
