"""The shipped config-only sources (Youzan, Doudian, Standard Webhooks) end to end through the
adapter and the mapping engine, their sample events, and a fourth provider added by YAML alone."""

from __future__ import annotations

import base64
import hashlib
import hmac
import importlib.util
import json
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dmhub_adapter.apigw import request_from_event
from dmhub_adapter.errors import Unauthorized
from dmhub_adapter.mapping.engine import map_payload
from dmhub_adapter.sources.base import Account, Inbound, Source
from dmhub_adapter.sources.registry import source_for
from dmhub_adapter.webhook import WebhookRequest
from dmhub_adapter_tools.cli import main as cli_main
from dmhub_adapter_tools.dryrun import DryRunError, dry_run
from dmhub_adapter_tools.local.accounts import load_accounts
from dmhub_adapter_tools.local.apigw_event import make_event
from tests.conftest import EVENTS_DIR, ROOT

SAMPLES = sorted(p.name for p in EVENTS_DIR.glob("*.json")
                 if p.name.startswith(("youzan-", "doudian-", "standard-webhooks-", "wechatpay-", "wecom-",
                                       "shopify-")))


def source_of(file_name: str) -> str:
    for name in ("standard-webhooks", "youzan", "doudian", "wechatpay", "wecom", "shopify"):
        if file_name.startswith(name + "-"):
            return name
    raise AssertionError(file_name)


def adapter(name: str) -> Source:
    found = source_for(name)
    assert found is not None
    return found


def demo_account(name: str) -> Account:
    return Account(name, "demo", adapter(name).mapping, load_accounts().secret(name, "demo"))


def sample_request(file_name: str) -> WebhookRequest:
    return request_from_event(json.loads((EVENTS_DIR / file_name).read_text(encoding="utf-8")))


def receive_and_map(name: str, request: WebhookRequest) -> tuple[Inbound, list[Any]]:
    inbound = adapter(name).receive(request, demo_account(name))
    return inbound, map_payload(adapter(name).mapping, inbound.messages, {"source": name, "account": "demo"})


def load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_config_source_events",
                                                  ROOT / "scripts" / "make_config_source_events.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ---- samples ---------------------------------------------------------------------------------


def test_there_are_samples_for_each_source() -> None:
    assert {source_of(name) for name in SAMPLES} == {"youzan", "doudian", "standard-webhooks", "wechatpay", "wecom",
                                                     "shopify"}


def test_samples_are_what_the_generator_writes(tmp_path: Path) -> None:
    generator = load_generator()
    assert generator.main(["--out", str(EVENTS_DIR), "--check"]) == 0
    assert generator.main(["--out", str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == SAMPLES


@pytest.mark.parametrize("file_name", SAMPLES)
def test_every_sample_verifies_and_maps_without_loss(file_name: str) -> None:
    name = source_of(file_name)
    inbound, results = receive_and_map(name, sample_request(file_name))
    assert inbound.messages
    assert [r.status for r in results if r.status == "unmapped"] == []


@pytest.mark.parametrize("file_name", SAMPLES)
def test_every_sample_with_a_flipped_body_byte_is_refused(file_name: str) -> None:
    request = sample_request(file_name)
    body = bytearray(request.body)
    body[len(body) // 2] ^= 0x01
    tampered = WebhookRequest(**{**request.__dict__, "body": bytes(body)})
    with pytest.raises(Unauthorized):
        adapter(source_of(file_name)).receive(tampered, demo_account(source_of(file_name)))


@pytest.mark.parametrize("file_name", SAMPLES)
def test_map_command_maps_each_sample(file_name: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["map", source_of(file_name), str(EVENTS_DIR / file_name)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert isinstance(printed, list)
    for item in printed:
        assert item["event"]["event"].startswith("c_") and len(item["event"]["event"]) <= 32
        assert item["event"]["externalId"]
        assert sum(k not in {"event", "targetId", "date", "source", "externalId", "tag", "summary"}
                   for k in item["event"]) <= 5


# ---- Youzan ----------------------------------------------------------------------------------


def test_youzan_paid_sample_event() -> None:
    events = dry_run("youzan", (EVENTS_DIR / "youzan-trade-paid.json").read_bytes())
    assert events == [{
        "rule": "order_paid",
        "identity": {"type": "youzan-openid", "value": "yzopen-demo-7f3a2c", "create": True},
        "event": {
            "event": "c_youzan_order_paid", "targetId": "E20240101000000000001", "date": "2024-01-01T00:00:00Z",
            "source": "有赞", "externalId": "youzan|10001|trade_tradepaid|E20240101000000000001",
            "order_id": "E20240101000000000001", "amount": "199.00", "status": "TRADE_PAID", "shop_id": "10001",
        },
    }]


def youzan_message(type_: str, msg: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    return {"client_id": "cid123", "id": "E1", "kdt_id": 1, "type": type_, "status": "S", "version": 1704067200,
            "test": False, "msg": quote(json.dumps(msg or {"yz_open_id": "yz-1"})), **extra}


@pytest.mark.parametrize(
    ("type_", "event"),
    [
        ("trade_TradeCreate", "c_youzan_order_created"),
        ("TRADE_TradePaid", "c_youzan_order_paid"),
        ("trade_TradeBuyerPay", "c_youzan_order_paid"),
        ("trade_TradePartlySellerShip", "c_youzan_order_shipped"),
        ("trade_TradeSuccess", "c_youzan_order_completed"),
        ("trade_tradeclose", "c_youzan_order_closed"),
        ("REFUND_RefundSuccess", "c_youzan_refund"),
    ],
)
def test_youzan_types_are_case_insensitive(type_: str, event: str) -> None:
    [result] = map_payload(adapter("youzan").mapping, [youzan_message(type_)])
    assert result.status == "mapped"
    assert result.events[0].event.event == event
    assert result.events[0].identity is not None and result.events[0].identity.value == "yz-1"


def test_youzan_test_messages_memo_updates_and_missing_identity() -> None:
    mapping = adapter("youzan").mapping
    test, memo, anonymous, unknown = map_payload(mapping, [
        youzan_message("trade_TradeCreate", test=True),
        youzan_message("trade_TradeMemoModified"),
        youzan_message("trade_TradePaid", {"tid": "E1"}),
        youzan_message("item_ItemCreate"),
    ])
    assert (test.status, memo.status) == ("skipped", "skipped")
    assert anonymous.status == "unmapped" and "identity.value" in (anonymous.reason or "")
    assert unknown.status == "unmapped"


def test_youzan_reply_dialect() -> None:
    youzan = adapter("youzan")
    request = sample_request("youzan-trade-paid.json")
    from dmhub_adapter.sources.base import IngestOutcome

    assert json.loads(youzan.reply(request, IngestOutcome(enqueued=1)).body) == {"code": 0, "msg": "success"}
    refused = youzan.error_reply(request, Unauthorized("signature does not match"))
    assert refused.status == 401
    assert json.loads(refused.body) == {"code": 401, "msg": "signature does not match"}


# ---- Doudian ---------------------------------------------------------------------------------


def test_doudian_worked_example_sample() -> None:
    request = sample_request("doudian-order-paid.json")
    assert request.header("event-sign") == "94abcf954b466e379c884984470b2ad6"
    _, [result] = receive_and_map("doudian", request)
    [mapped] = result.events
    assert mapped.identity is not None
    assert (mapped.identity.type, mapped.identity.value, mapped.identity.create) == (
        "doudian-order", "4837328765348566675", False)
    assert mapped.event.to_request() == {
        "event": "c_doudian_order_paid", "targetId": "4837328765348566675", "date": "2021-08-31T01:31:44Z",
        "source": "抖店", "externalId": "doudian|101|4837328765348566675", "order_id": "4837328765348566675",
        "amount": "19.90", "order_status": 2, "shop_id": "77977",
    }


def test_doudian_unknown_tag_is_unmapped_and_bad_data_too() -> None:
    mapping = adapter("doudian").mapping
    unknown, broken, check = map_payload(mapping, [
        {"tag": "999", "msg_id": "1", "data": "{}"},
        {"tag": "101", "msg_id": "2", "data": "{not json"},
        {"tag": 0, "msg_id": "3", "data": "{}"},
    ])
    assert unknown.status == "unmapped"
    assert broken.status == "unmapped" and "decode" in (broken.reason or "")
    assert check.status == "skipped"


# ---- Standard Webhooks -----------------------------------------------------------------------


def test_standard_webhooks_sample_uses_the_delivery_id() -> None:
    _, [result] = receive_and_map("standard-webhooks", sample_request("standard-webhooks-invoice-paid.json"))
    [mapped] = result.events
    assert mapped.event.externalId == "swh|msg_2KWPBgLlAfxdpx2AI54pPJ85f4W"
    assert mapped.event.event == "c_invoice_paid"
    assert mapped.identity is not None and (mapped.identity.type, mapped.identity.value) == (
        "email", "li.lei@example.com")


def test_standard_webhooks_identity_fallbacks_and_replay_key() -> None:
    mapping = adapter("standard-webhooks").mapping
    base = {"type": "order.shipped", "timestamp": "2024-01-01T00:00:00Z"}
    by_id, nobody, too_long = map_payload(mapping, [
        {**base, "data": {"customer": {"id": 42}}},
        {**base, "data": {"id": "x"}},
        {**base, "type": "a.very.long.event.type.name.for.dm.hub", "data": {"customer": {"id": 1}}},
    ])
    assert by_id.events[0].identity is not None
    assert (by_id.events[0].identity.type, by_id.events[0].identity.value) == ("webhook-customer", "42")
    # Without the request's headers (a replay of a stored payload) the key comes from the body.
    assert by_id.events[0].event.externalId == "swh|order.shipped|2024-01-01T00:00:00Z"
    assert nobody.status == "unmapped"
    assert too_long.status == "unmapped" and "event" in (too_long.reason or "")


def test_standard_webhooks_stale_delivery_is_refused() -> None:
    request = sample_request("standard-webhooks-invoice-paid.json")
    late = WebhookRequest(**{**request.__dict__, "received_at": request.received_at + 301})
    with pytest.raises(Unauthorized, match="tolerance"):
        adapter("standard-webhooks").receive(late, demo_account("standard-webhooks"))


# ---- a fourth provider, by YAML alone --------------------------------------------------------

ACME_YAML = """
source: acme-shop
adapter: generic
format: json
verification:
  scheme: signature
  algorithm: hmac-sha1
  key: {secret: signingKey}
  signature: {header: X-Acme-Signature, prefix: "sha1=", encoding: base64}
  timestamp: {header: X-Acme-Time, format: milliseconds, tolerance: 120}
  signed: [timestamp, {literal: ":"}, body]
reply:
  success: {contentType: text/plain, body: "OK {enqueued}"}
defaults:
  identity: {type: acme-member, value: {path: member.id, convert: string}}
rules:
  - name: purchase
    when: "event == 'purchase'"
    event: c_acme_purchase
    externalId: {template: "acme|{order}"}
    date: {path: at, convert: iso8601}
    attributes:
      amount: {path: total, convert: yuan}
"""


def test_a_fourth_provider_needs_only_a_yaml_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "acme-shop.yaml").write_text(ACME_YAML, encoding="utf-8")
    monkeypatch.setenv("MAPPINGS_DIR", str(tmp_path))
    assert cli_main(["check-config", str(tmp_path)]) == 0
    assert "acme-shop.yaml: ok" in capsys.readouterr().out

    acme = source_for("acme-shop", str(tmp_path))
    assert acme is not None
    body = json.dumps({"event": "purchase", "order": "A-1", "at": "2024-05-01T10:00:00+08:00",
                       "member": {"id": 7}, "total": "12.5"}).encode()
    sent_ms = 1_714_528_800_000
    digest = hmac.new(b"k3y", f"{sent_ms}:".encode() + body, hashlib.sha1).digest()
    headers = {"content-type": "application/json", "x-acme-time": str(sent_ms),
               "x-acme-signature": "sha1=" + base64.b64encode(digest).decode()}
    event = make_event(method="POST", source="acme-shop", account="main", body=body, headers=headers,
                       now_ms=sent_ms + 5_000)
    request = request_from_event(event)
    account = Account("acme-shop", "main", acme.mapping, {"signingKey": "k3y"})

    inbound = acme.receive(request, account)
    [result] = map_payload(acme.mapping, inbound.messages)
    [mapped] = result.events
    assert mapped.event.to_request() == {"event": "c_acme_purchase", "date": "2024-05-01T02:00:00Z",
                                         "externalId": "acme|A-1", "amount": "12.50"}
    assert mapped.identity is not None and (mapped.identity.type, mapped.identity.value) == ("acme-member", "7")
    from dmhub_adapter.sources.base import IngestOutcome

    assert acme.reply(request, IngestOutcome(enqueued=1)).body == "OK 1"

    wrong = request_from_event({**event, "headers": {**headers, "x-acme-signature": "sha1=" + "A" * 28}})
    with pytest.raises(Unauthorized):
        acme.receive(wrong, account)
    stale = request_from_event(make_event(method="POST", source="acme-shop", account="main", body=body,
                                          headers=headers, now_ms=sent_ms + 121_000))
    with pytest.raises(Unauthorized, match="tolerance"):
        acme.receive(stale, account)

    payload = tmp_path / "purchase.json"
    payload.write_bytes(body)
    assert cli_main(["map", "acme-shop", str(payload)]) == 0
    assert json.loads(capsys.readouterr().out)[0]["event"]["externalId"] == "acme|A-1"


def test_dry_run_reports_why_a_payload_cannot_be_mapped() -> None:
    with pytest.raises(DryRunError, match=r"identity\.value"):
        dry_run("youzan", json.dumps(youzan_message("trade_TradePaid", {"tid": "E1"})).encode())
    with pytest.raises(DryRunError, match="cannot be parsed"):
        dry_run("doudian", b"[not json")


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=12),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3),
    max_leaves=8,
)
FIELDS = st.sampled_from(["type", "tag", "data", "msg", "test", "id", "kdt_id", "timestamp", "version", "status"])


@settings(max_examples=80, deadline=None)
@given(message=st.dictionaries(FIELDS, JSON_VALUES, max_size=6),
       name=st.sampled_from(["youzan", "doudian", "standard-webhooks"]))
def test_arbitrary_authentic_messages_never_crash_the_shipped_mappings(message: dict[str, Any], name: str) -> None:
    [result] = map_payload(adapter(name).mapping, [message])
    assert result.status in ("mapped", "skipped", "unmapped")
