"""The WeChat and Taobao adapters through the real handler, from the events/ samples.

The samples carry fixed, old timestamps; each is re-signed with the current time through the
adapters' own client-side helpers, so it passes for the same reason a live push does.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import pytest

from dmhub_adapter.sources import taobao, wechat
from dmhub_adapter.sources.wechat import crypto as wechat_crypto
from dmhub_adapter_tools.dryrun import dry_run
from dmhub_adapter_tools.local.accounts import load_accounts
from tests.integration.ingest.conftest import Ingest, lambda_context

EVENTS = Path(__file__).resolve().parents[3] / "events"
DEMO = load_accounts(None)
WECHAT_SECRET = DEMO.secret("wechat", "demo") or {}
#: the demo account in plaintext mode (no EncodingAESKey): where plaintext samples go
WECHAT_PLAIN_SECRET = DEMO.secret("wechat", "demo-plain") or {}
TAOBAO_SECRET = DEMO.secret("taobao", "demo") or {}


def sample(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / f"{name}.json").read_text(encoding="utf-8"))


def wechat_plaintext(name: str) -> str:
    """The sample's message XML in clear text, whichever mode it was sent in, created now
    (a push's CreateTime must lie in the window of the timestamp it is signed with)."""
    body = sample(name)["body"]
    envelope = wechat.parse_xml(body)
    if "Encrypt" in envelope:
        body = wechat_crypto.decrypt(str(envelope["Encrypt"]), WECHAT_SECRET["encodingAesKey"],
                                     WECHAT_SECRET["appId"]).decode("utf-8")
    return re.sub(r"<CreateTime>[0-9]+</CreateTime>", f"<CreateTime>{int(time.time())}</CreateTime>", str(body))


@pytest.fixture
def accounts(ingest: Ingest) -> Ingest:
    ingest.put_account("wechat", "demo", WECHAT_SECRET)
    # An account with an AES key refuses plaintext pushes; plaintext-mode accounts have none.
    ingest.put_account("wechat", "demo-plain", WECHAT_PLAIN_SECRET)
    ingest.put_account("taobao", "demo", TAOBAO_SECRET)
    return ingest


def wechat_account(mode: str) -> str:
    return "demo-plain" if mode == "plain" else "demo"


def post_wechat(ingest: Ingest, xml: str, mode: Any, account: str | None = None,
                secret: dict[str, Any] | None = None) -> Any:
    """``xml`` sent now in ``mode``, by default to (and signed for) the demo account of that mode."""
    account = account or wechat_account(mode)
    raw_query, body = wechat.signed_request(secret or DEMO.secret("wechat", account) or {}, xml, mode)
    return ingest.invoke(body, source="wechat", account=account, raw_query=raw_query,
                         headers={"content-type": "text/xml"})


WECHAT_SAMPLES = [("wechat-text", "plain"), ("wechat-follow-plain", "plain"), ("wechat-follow-qr-safe", "safe"),
                  ("wechat-follow-compat", "compat"), ("wechat-unfollow", "safe")]


def test_wechat_pushes_are_enqueued_once_and_answered_success(accounts: Ingest) -> None:
    for name, mode in WECHAT_SAMPLES:
        xml = wechat_plaintext(name)

        first = post_wechat(accounts, xml, mode)
        retry = post_wechat(accounts, xml, mode)  # WeChat re-sends after 5 s: new nonce, same message

        assert (first.status, first.body) == (200, "success"), name
        assert (retry.status, retry.body) == (200, "success"), name
        (message,) = accounts.events()
        body = message["body"]
        fields = wechat.parse_xml(xml)
        account = wechat_account(mode)
        assert body["source"] == "wechat" and body["account"] == account
        assert body["identity"]["type"] == "wechat" and body["identity"]["value"] == fields["FromUserName"]
        assert body["event"]["externalId"].startswith(f"wechat:{account}:{fields['ToUserName']}|"), name
        item = accounts.claim(body["event"]["externalId"].removeprefix(f"wechat:{account}:"), "wechat", account)
        assert item is not None and item["status"] == "QUEUED"
        assert message["attributes"]["event"] == body["event"]["event"]


def test_wechat_samples_target_the_account_of_their_mode(accounts: Ingest) -> None:
    """Every POST sample passes as it is (its requestContext time is its signed time) at the
    account in its path, and plaintext ones are at the plaintext-mode account."""
    for path in sorted(EVENTS.glob("wechat-*.json")):
        event = json.loads(path.read_text(encoding="utf-8"))
        if event["requestContext"]["http"]["method"] != "POST":
            continue
        account = event["pathParameters"]["account"]
        plaintext = "encrypt_type" not in event["rawQueryString"]
        assert account == ("demo-plain" if plaintext else "demo"), path.name
        response = accounts.app.lambda_handler(event, lambda_context())
        assert (response["statusCode"], response["body"]) == (200, "success"), path.name


def test_wechat_template_receipts_are_skipped(accounts: Ingest) -> None:
    response = post_wechat(accounts, wechat_plaintext("wechat-template-receipt"), "plain")

    assert (response.status, response.body) == (200, "success")
    assert accounts.events() == [] and accounts.unmapped() == []


def test_wechat_handshake_and_bad_signature(accounts: Ingest) -> None:
    ok = accounts.invoke(method="GET", source="wechat", account="demo",
                         raw_query=wechat.handshake_query(WECHAT_SECRET["token"], "echo123"))
    raw_query, body = wechat.signed_request({**WECHAT_SECRET, "token": "wrong"}, wechat_plaintext("wechat-text"),
                                            "plain")
    forged = accounts.invoke(body, source="wechat", account="demo", raw_query=raw_query,
                             headers={"content-type": "text/xml"})
    # authentic for its own account, but signed long ago
    stale = accounts.invoke(sample("wechat-text")["body"], source="wechat", account="demo-plain",
                            raw_query=sample("wechat-text")["rawQueryString"], headers={"content-type": "text/xml"})

    assert (ok.status, ok.body) == (200, "echo123")
    assert forged.status == 401 and stale.status == 401
    assert accounts.events() == []


def test_a_keyed_account_refuses_plaintext_by_default(accounts: Ingest) -> None:
    # Signed with the keyed account's own token, as a captured safe-mode query would be: the
    # plaintext signature does not cover the body, so the body may be anything.
    xml = wechat_plaintext("wechat-follow-plain")
    downgraded = post_wechat(accounts, xml, "plain", account="demo", secret=WECHAT_SECRET)

    assert downgraded.status == 403
    assert downgraded.json()["error"] == "forbidden"
    assert accounts.events() == [] and accounts.unmapped() == []
    [mapped] = dry_run("wechat", (EVENTS / "wechat-follow-plain.json").read_bytes())
    assert accounts.claim(mapped["event"]["externalId"], "wechat", "demo") is None


def test_require_encryption_false_lets_a_keyed_account_take_plaintext(accounts: Ingest) -> None:
    accounts.put_account("wechat", "switching", {**WECHAT_SECRET, "requireEncryption": False})
    xml = wechat_plaintext("wechat-follow-plain")

    response = post_wechat(accounts, xml, "plain", account="switching", secret=WECHAT_SECRET)

    assert (response.status, response.body) == (200, "success")
    (message,) = accounts.events()
    assert message["body"]["account"] == "switching"
    assert message["body"]["identity"]["value"] == wechat.parse_xml(xml)["FromUserName"]
    key = message["body"]["event"]["externalId"].removeprefix("wechat:switching:")
    assert accounts.claim(key, "wechat", "switching") is not None


def test_unmapped_wechat_payload_is_kept_in_clear_text_and_replays(accounts: Ingest) -> None:
    from dmhub_adapter_tools.replay import replay_unmapped_record

    xml = wechat_plaintext("wechat-text").replace("<MsgType><![CDATA[text]]></MsgType>",
                                                   "<MsgType><![CDATA[hologram]]></MsgType>")

    assert post_wechat(accounts, xml, "safe").body == "success"

    assert accounts.events() == []
    (kept,) = accounts.unmapped()
    record = kept["body"]
    assert record["payload"] == xml and record["payload_type"] == "application/xml"
    assert record["context"] == {"mode": "safe", "keyIndex": 0}
    result = replay_unmapped_record(record)
    assert not result.resolved and result.outcome.unmapped == 1


def taobao_event(name: str) -> tuple[bytes, str, dict[str, str]]:
    event = sample(name)
    body = event["body"].encode("utf-8")
    return body, taobao.signed_request(TAOBAO_SECRET, body), event["headers"]


def test_taobao_relay_messages_are_enqueued_once(accounts: Ingest) -> None:
    for name in ("taobao-created", "taobao-paid", "taobao-shipped", "taobao-refund-created"):
        body, raw_query, headers = taobao_event(name)

        first = accounts.invoke(body, source="taobao", account="demo", raw_query=raw_query, headers=headers)
        again = accounts.invoke(body, source="taobao", account="demo",
                                raw_query=taobao.signed_request(TAOBAO_SECRET, body), headers=headers)

        assert (first.status, first.json()) == (200, {"success": True}), name
        assert again.status == 200, name
        (message,) = accounts.events()
        content = json.loads(json.loads(body)["content"])
        external_id = message["body"]["event"]["externalId"].removeprefix("taobao:demo:")
        assert external_id.startswith(f"{json.loads(body)['topic']}|{content['tid']}|"), name
        assert message["body"]["identity"]["value"] == content["buyer_open_uid"]
        item = accounts.claim(external_id, "taobao", "demo")
        assert item is not None and item["status"] == "QUEUED"


def test_a_taobao_batch_is_one_sqs_batch(accounts: Ingest) -> None:
    body, raw_query, headers = taobao_event("taobao-batch")
    count = len(json.loads(body)["messages"])

    response = accounts.invoke(body, source="taobao", account="demo", raw_query=raw_query, headers=headers)

    assert response.status == 200
    messages = accounts.events()
    assert len(messages) == count
    assert len({m["body"]["event"]["externalId"] for m in messages}) == count


def test_taobao_bad_signature_is_refused(accounts: Ingest) -> None:
    body, _, headers = taobao_event("taobao-paid")
    forged = taobao.signed_request({**TAOBAO_SECRET, "appSecret": "not-it"}, body)

    response = accounts.invoke(body, source="taobao", account="demo", raw_query=forged, headers=headers)

    assert response.status in (401, 403)
    assert accounts.events() == []


_FRESH_INGEST = """
import importlib.util, json, sys
from dmhub_adapter_tools.local.apigw_event import make_event
from dmhub_adapter_tools.local.context import new_context
spec = importlib.util.spec_from_file_location("app", sys.argv[1])
app = importlib.util.module_from_spec(spec)
spec.loader.exec_module(app)
loaded_by_tools = {m for m in sys.modules if m.startswith(("pydantic", "yaml"))}
request = json.loads(sys.stdin.read())
event = make_event(method="POST", source="wechat", account="demo", body=request["body"].encode(),
                   raw_query=request["raw_query"], headers={"content-type": "text/xml"}, request_id="fresh")
result = app.lambda_handler(event, new_context("IngestFunction", timeout_seconds=10, memory_limit_in_mb=1024))
print(json.dumps({"status": result["statusCode"], "body": result["body"],
                  "loaded": sorted({m for m in sys.modules if m.startswith(("pydantic", "yaml"))} - loaded_by_tools)}))
"""


def test_a_cold_ingest_queues_a_wechat_follow_without_pydantic_or_yaml(accounts: Ingest) -> None:
    """The ingest's whole first request in a fresh interpreter — settings, the packaged mapping
    from the plan the build writes, the secret, verification and AES, mapping, the claim and the
    queue — imports neither pydantic nor PyYAML (together ~130 ms of a cold start)."""
    import subprocess
    import sys

    from dmhub_adapter.mapping import files
    from dmhub_adapter.mapping.compile import write_plans
    from tests.conftest import ROOT
    from tests.integration.ingest.conftest import APP_PATH

    assert write_plans(files.packaged_dir()) == ([], [])  # as `make` and the layer's build do
    openid = f"oCold{int(time.time() * 1000)}"
    xml = re.sub(r"<FromUserName><!\[CDATA\[[^\]]+\]\]>", f"<FromUserName><![CDATA[{openid}]]>",
                 wechat_plaintext("wechat-follow-qr-safe"))
    raw_query, body = wechat.signed_request(WECHAT_SECRET, xml, "safe")
    text = body.decode("utf-8") if isinstance(body, bytes) else body
    done = subprocess.run(
        [sys.executable, "-c", _FRESH_INGEST, str(APP_PATH)], input=json.dumps({"body": text, "raw_query": raw_query}),
        capture_output=True, text=True, cwd=ROOT, check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["status"] == 200 and result["body"] == "success", result
    assert result["loaded"] == []
    events = [e["body"] for e in accounts.events()]
    assert [e["identity"]["value"] for e in events] == [openid]
    assert events[0]["event"]["event"].startswith("c_") and events[0]["rule"]
