"""Senders as they really are: Svix's svix-* headers, Taobao's epoch-ms timestamps and
``top-sign-list`` headers, Youzan's legacy body-level sign. Vectors come from the ``svix``
library and from signers written here from the published rules (research/taobao.md), never
from the adapter's own signer."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode

import pytest
import yaml
from svix.webhooks import Webhook as SvixWebhook

from dmhub_adapter.errors import Unauthorized
from dmhub_adapter.mapping.config import MappingConfigError
from dmhub_adapter.mapping.engine import map_payload
from dmhub_adapter.sources.base import Account, Inbound, Source
from dmhub_adapter.sources.registry import parse_source_mapping, source_for
from dmhub_adapter.sources.taobao.signing import parse_timestamp, sign_list_params, top_sign
from dmhub_adapter.webhook import WebhookRequest

SVIX_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def _source(name: str) -> Source:
    found = source_for(name)
    assert found is not None
    return found


def _receive(name: str, request: WebhookRequest, secret: dict[str, Any]) -> Inbound:
    source = _source(name)
    return source.receive(request, Account(name, "demo", source.mapping, secret))


# ---- Svix ------------------------------------------------------------------------------------


def _svix_request(body: str, msg_id: str, when: int, *, prefix: str = "svix", **extra: str) -> WebhookRequest:
    signature = SvixWebhook(SVIX_SECRET).sign(msg_id, datetime.fromtimestamp(when, tz=UTC), body)
    headers = {f"{prefix}-id": msg_id, f"{prefix}-timestamp": str(when), f"{prefix}-signature": signature, **extra}
    return WebhookRequest(method="POST", source="standard-webhooks", account="demo", body=body.encode(),
                          headers=headers, received_at=when + 10)


SVIX_BODY = json.dumps({"type": "invoice.paid", "timestamp": "2024-01-01T00:00:00Z",
                        "data": {"id": "inv_1", "customer": {"email": "Jon@Example.com"}}})


def test_the_published_svix_vector_verifies_under_both_header_families() -> None:
    # docs.svix.com's example, signed by the svix library (frozen clock).
    body, msg_id, when = '{"test": 2432232314}', "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330
    signature = SvixWebhook(SVIX_SECRET).sign(msg_id, datetime.fromtimestamp(when, tz=UTC), body)
    assert signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    for prefix in ("svix", "webhook"):
        inbound = _receive("standard-webhooks", _svix_request(body, msg_id, when, prefix=prefix),
                           {"signingSecret": SVIX_SECRET})
        assert inbound.messages[0]["_request"]["webhookId"] == msg_id


def test_svix_headers_accepted_and_the_external_id_comes_from_svix_id() -> None:
    request = _svix_request(SVIX_BODY, "msg_2", 1_700_000_000)
    inbound = _receive("standard-webhooks", request, {"signingSecret": SVIX_SECRET})
    [result] = map_payload(_source("standard-webhooks").mapping, inbound.messages)
    assert result.status == "mapped"
    assert result.events[0].event.externalId == "swh|msg_2"


@pytest.mark.parametrize("change", ["body", "id", "timestamp", "stale"])
def test_tampered_svix_requests_are_refused(change: str) -> None:
    request = _svix_request(SVIX_BODY, "msg_3", 1_700_000_000)
    headers = dict(request.headers)
    body = request.body
    received = request.received_at
    if change == "body":
        body = body.replace(b"inv_1", b"inv_2")
    elif change == "id":
        headers["svix-id"] = "msg_4"
    elif change == "timestamp":
        headers["svix-timestamp"] = str(1_700_000_001)
    else:
        received = 1_700_000_000 + 301
    forged = WebhookRequest(method="POST", source="standard-webhooks", account="demo", body=body,
                            headers=headers, received_at=received)
    with pytest.raises(Unauthorized):
        _receive("standard-webhooks", forged, {"signingSecret": SVIX_SECRET})


def test_an_unsigned_webhook_id_beside_a_signed_svix_id_cannot_choose_the_external_id() -> None:
    # svix-id is read first for both the signature and the externalId: a forged webhook-id is ignored.
    request = _svix_request(SVIX_BODY, "msg_5", 1_700_000_000, **{"webhook-id": "attacker"})
    inbound = _receive("standard-webhooks", request, {"signingSecret": SVIX_SECRET})
    assert inbound.messages[0]["_request"]["webhookId"] == "msg_5"


def _mapping_with(verification: dict[str, Any], request_values: dict[str, Any]) -> str:
    return yaml.safe_dump({
        "source": "demo", "verification": verification, "options": {"requestValues": request_values},
        "rules": [{"name": "r", "event": "c_x", "externalId": {"template": "x|{_request.id}"},
                   "date": {"path": "at", "convert": "unix_seconds"}, "identity": {"type": "t", "value": "u"}}],
    })


SCHEME = {"scheme": "signature", "algorithm": "hmac-sha256", "key": {"secret": "k"},
          "signature": {"header": ["a-sig", "b-sig"]}, "timestamp": {"header": ["a-ts", "b-ts"]},
          "signed": [{"header": ["a-id", "b-id"]}, "timestamp", "body"]}


def test_a_request_value_must_read_the_same_alternatives_as_the_signed_part() -> None:
    parse_source_mapping(_mapping_with(SCHEME, {"id": {"header": ["A-ID", "b-id"]}}), "<demo>")
    for unsigned in ({"header": "b-id"}, {"header": ["b-id", "a-id"]}):
        with pytest.raises(MappingConfigError, match="signature does not cover"):
            parse_source_mapping(_mapping_with(SCHEME, {"id": unsigned}), "<demo>")


@pytest.mark.parametrize("header", [[], [""], ["x", "X"]])
def test_bad_header_lists_fail_at_load(header: list[str]) -> None:
    with pytest.raises(MappingConfigError, match="header"):
        parse_source_mapping(_mapping_with({**SCHEME, "signature": {"header": header}}, {}), "<demo>")


# ---- Taobao ----------------------------------------------------------------------------------

TAOBAO = {"appKey": "12345678", "appSecret": "helloworld"}
NOW = 1718712102.0


def _top_md5(params: dict[str, str], secret: str, body: str) -> str:
    """The TOP md5 signature exactly as research/taobao.md §4.3 states it (SpiUtils)."""
    text = "".join(f"{k}{params[k]}" for k in sorted(params) if k != "sign")
    return hashlib.md5(f"{secret}{text}{body}{secret}".encode()).hexdigest().upper()


def _taobao_body() -> str:
    content = json.dumps({"buyer_open_uid": "AAHq5d-EAAeG3JedwSFpZMe1", "tid": 3898765432101234567,
                          "oid": 3898765432101234567, "payment": "199.00", "status": "WAIT_SELLER_SEND_GOODS"})
    return json.dumps({"id": 2760453001234567902, "topic": "taobao_trade_TradeBuyerPay", "pub_app_key": "12345678",
                       "pub_time": "2024-06-18 20:01:41", "user_id": 2200123456789, "content": content})


def _taobao_request(body: str, params: dict[str, str], headers: dict[str, str] | None = None,
                    received_at: float = NOW) -> WebhookRequest:
    raw = urlencode(sorted(params.items()))
    return WebhookRequest(method="POST", source="taobao", account="demo", body=body.encode(),
                          query=dict(parse_qsl(raw)), raw_query=raw,
                          headers={"content-type": "application/json", **(headers or {})}, received_at=received_at)


def test_the_published_tmc_connect_vector_uses_epoch_milliseconds() -> None:
    # research/taobao.md §4.4 #5: the TMC CONNECT sign over an epoch-ms timestamp.
    params = {"app_key": "12345678", "group_name": "default", "timestamp": "1700000000000"}
    assert top_sign(params, "helloworld") == "C86848D198760FA334AA309207C72ECD"
    assert parse_timestamp("1700000000000") == 1_700_000_000.0
    assert parse_timestamp("2023-11-15 06:13:20") == 1_700_000_000.0


def _sdk_params(timestamp: str) -> dict[str, str]:
    return {"app_key": "12345678", "format": "json", "sign_method": "md5", "timestamp": timestamp, "v": "2.0"}


def test_an_sdk_style_epoch_ms_timestamp_is_accepted_inside_the_window_only() -> None:
    body = _taobao_body()
    params = _sdk_params(str(int(NOW * 1000) - 5000))
    params["sign"] = _top_md5(params, "helloworld", body)
    inbound = _receive("taobao", _taobao_request(body, params), TAOBAO)
    assert inbound.messages[0]["topic"] == "taobao_trade_TradeBuyerPay"
    with pytest.raises(Unauthorized, match="window"):
        _receive("taobao", _taobao_request(body, params, received_at=NOW + 601), TAOBAO)
    for stamp in ("170000000000", "17000000000000", "1718712102.000"):
        bad = {**params, "timestamp": stamp}
        bad["sign"] = _top_md5(bad, "helloworld", body)
        with pytest.raises(Unauthorized):
            _receive("taobao", _taobao_request(body, bad), TAOBAO)


def test_headers_named_in_top_sign_list_are_signed() -> None:
    body = _taobao_body()
    params = _sdk_params("2024-06-18 20:01:40")
    headers = {"top-sign-list": "x-biz-id,x-seller", "x-biz-id": "42", "x-seller": quote("示例店")}
    params["sign"] = _top_md5({**params, "x-biz-id": "42", "x-seller": "示例店"}, "helloworld", body)
    _receive("taobao", _taobao_request(body, params, headers), TAOBAO)
    for changed in ({"x-biz-id": "43"}, {"top-sign-list": "x-biz-id"}, {"x-seller": "other"}):
        with pytest.raises(Unauthorized):
            _receive("taobao", _taobao_request(body, params, {**headers, **changed}), TAOBAO)
    # a listed header that is also a query parameter is ambiguous
    with pytest.raises(Unauthorized, match="also a query"):
        _receive("taobao", _taobao_request(body, params, {**headers, "top-sign-list": "v"}), TAOBAO)


# ---- Youzan legacy ----------------------------------------------------------------------------

YOUZAN = {"clientId": "cid123", "clientSecret": "csecret456"}


def _youzan_legacy(update_time: str = "2024-01-01 08:00:00", **overrides: Any) -> dict[str, Any]:
    msg = quote(json.dumps({"full_order_info": {
        "order_info": {"tid": "E2024", "kdt_id": 10001, "status": "TRADE_PAID", "update_time": update_time},
        "buyer_info": {"yz_open_id": "yzopen-1"}, "pay_info": {"payment": "199.00"}}}))
    body = {"client_id": "cid123", "id": "E2024", "kdt_id": 10001, "kdt_name": "店", "type": "trade_TradePaid",
            "status": "TRADE_PAID", "msg": msg, "test": False, "mode": 1, "sendCount": 0, "version": 1704067200}
    # the legacy push classes: md5(client_id + msg + client_secret), lower hex, in the body
    body["sign"] = hashlib.md5(f"cid123{msg}csecret456".encode()).hexdigest()
    body.update(overrides)
    return body


def _youzan_request(body: dict[str, Any], received_at: float = 1704067260) -> WebhookRequest:
    return WebhookRequest(method="POST", source="youzan", account="demo", body=json.dumps(body).encode(),
                          headers={"content-type": "application/json"}, received_at=received_at)


def test_a_legacy_youzan_push_is_accepted_and_maps() -> None:
    inbound = _receive("youzan", _youzan_request(_youzan_legacy()), YOUZAN)
    [result] = map_payload(_source("youzan").mapping, inbound.messages)
    assert result.status == "mapped" and result.events[0].event.event == "c_youzan_order_paid"


@pytest.mark.parametrize("change", [
    {"msg": "%7B%7D"},                     # msg altered
    {"sign": "0" * 32},                    # wrong sign
    {"id": "E2025"},                       # unsigned id differs from the signed tid
    {"kdt_id": 10002},                     # unsigned shop differs from the signed one
])
def test_tampered_legacy_pushes_are_refused(change: dict[str, Any]) -> None:
    with pytest.raises(Unauthorized):
        _receive("youzan", _youzan_request(_youzan_legacy(**change)), YOUZAN)


def test_a_chain_shop_push_may_name_its_head_shop_or_its_branch() -> None:
    def chain(kdt_id: int) -> dict[str, Any]:
        msg = quote(json.dumps({"full_order_info": {
            "order_info": {"tid": "E2024", "root_kdt_id": 134533635, "node_kdt_id": 134529034, "status": "TRADE_PAID",
                           "update_time": "2024-01-01 08:00:00"},
            "buyer_info": {"yz_open_id": "yzopen-1"}, "pay_info": {"payment": "199.00"}}}))
        sign = hashlib.md5(f"cid123{msg}csecret456".encode()).hexdigest()
        return _youzan_legacy(msg=msg, sign=sign, kdt_id=kdt_id)

    for shop in (134533635, 134529034):
        assert _receive("youzan", _youzan_request(chain(shop)), YOUZAN).messages
    with pytest.raises(Unauthorized, match="kdt_id"):
        _receive("youzan", _youzan_request(chain(10001)), YOUZAN)


def test_a_legacy_push_is_bounded_by_its_signed_time_not_the_unsigned_version() -> None:
    old = _youzan_legacy(update_time="2023-12-20 08:00:00", version=1704067200)
    with pytest.raises(Unauthorized, match="stale"):
        _receive("youzan", _youzan_request(old), YOUZAN)


def test_a_wrong_event_sign_header_does_not_fall_back_to_the_body_sign() -> None:
    request = _youzan_request(_youzan_legacy())
    forged = WebhookRequest(method="POST", source="youzan", account="demo", body=request.body,
                            headers={**request.headers, "event-sign": "0" * 32}, received_at=request.received_at)
    with pytest.raises(Unauthorized, match="does not match"):
        _receive("youzan", forged, YOUZAN)


def test_the_worked_examples_in_the_docs() -> None:
    # docs/taobao.md and docs/youzan.md quote these values; computed here from the published rules
    ms = {"app_key": "12345678", "format": "json", "sign_method": "md5", "timestamp": "1718712102000", "v": "2.0"}
    assert _top_md5(ms, "helloworld", '{"id":1}') == "163EB31636D78FD22D63D118213987FD"
    assert top_sign(ms, "helloworld", "md5", '{"id":1}') == "163EB31636D78FD22D63D118213987FD"
    gmt8 = {**ms, "timestamp": "2024-06-18 20:01:42"}
    listed = {**gmt8, **sign_list_params({"top-sign-list": "x-biz-id", "x-biz-id": "42"})}
    assert top_sign(listed, "helloworld", "md5", '{"id":1}') == "1FA1B7D0DD46BD6C3DEC8A1C9ABB679F"
    assert hashlib.md5(b"cid123%7B%22tid%22%3A%22E1%22%7Dcsecret456").hexdigest() == "f3dc6426a40073bfe70665634b7ffa5a"


def test_a_fallback_scheme_needs_its_own_time_bound() -> None:
    fallback = {"scheme": "signature", "algorithm": "md5", "signature": {"field": "sign"},
                "signed": [{"secret": "k"}, {"field": "msg"}]}
    verification = {**SCHEME, "otherwise": fallback}
    with pytest.raises(MappingConfigError, match=r"verification\.otherwise"):
        parse_source_mapping(_mapping_with(verification, {}), "<demo>")
    bounded = {**fallback, "maxAge": {"seconds": 3600, "time": {"path": "at"}}, "agree": {"id": "msg.id"}}
    parse_source_mapping(_mapping_with({**SCHEME, "otherwise": bounded}, {}), "<demo>")
    with pytest.raises(MappingConfigError, match="agree"):
        parse_source_mapping(_mapping_with({**SCHEME, "otherwise": {**bounded, "agree": {"id": "msg["}}}, {}),
                             "<demo>")


def test_account_values_may_not_copy_key_material() -> None:
    text = _mapping_with(SCHEME, {})
    data = yaml.safe_load(text)
    data["options"]["accountValues"] = {"leak": {"secret": "k"}}
    with pytest.raises(MappingConfigError, match="key material"):
        parse_source_mapping(yaml.safe_dump(data), "<demo>")
    data["options"]["accountValues"] = {"kind": {"secret": "identityType"}}
    parse_source_mapping(yaml.safe_dump(data), "<demo>")
