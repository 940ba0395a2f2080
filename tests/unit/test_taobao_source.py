"""The Taobao adapter: verification, parsing, batches, caps and its reply dialect."""

from __future__ import annotations

import base64
import gzip
import json
from typing import Any
from urllib.parse import parse_qsl, urlencode

import pytest

from dmhub_adapter.errors import (
    BadRequest,
    MethodNotAllowed,
    PayloadTooLarge,
    Unauthorized,
    Unavailable,
    WebhookError,
)
from dmhub_adapter.mapping.config import checked_mapping_data, load_mapping, packaged_dir
from dmhub_adapter.mapping.plan import MappingPlan
from dmhub_adapter.sources.base import Account, IngestOutcome, MessageRejection
from dmhub_adapter.sources.registry import parse_source_mapping, source_for
from dmhub_adapter.sources.taobao import TaobaoSource, build, format_timestamp, signed_request
from dmhub_adapter.webhook import WebhookRequest

DEMO = {"appKey": "12345678", "appSecret": "helloworld"}
NOW = 1718712102.0  # 2024-06-18 20:01:42 GMT+8
TID = 3898765432101234567


def _mapping() -> MappingPlan:
    mapping = load_mapping("taobao")
    assert mapping is not None
    return mapping


def _mapping_data() -> dict[str, Any]:
    """The packaged Taobao mapping as data, to change a block of."""
    path = packaged_dir() / "taobao.yaml"
    data: dict[str, Any] = checked_mapping_data(path.read_text(encoding="utf-8"), str(path))
    return data


def _content(**extra: Any) -> str:
    fields = {"buyer_nick": "t**", "buyer_open_uid": "AAHq5d-EAAeG3JedwSFpZMe1", "oid": TID, "payment": "199.00",
              "status": "WAIT_SELLER_SEND_GOODS", "tid": TID, **extra}
    return json.dumps(fields, ensure_ascii=False)


def _message(**overrides: Any) -> dict[str, Any]:
    message = {"id": 2760453001234567902, "topic": "taobao_trade_TradeBuyerPay", "pub_app_key": "12345678",
               "pub_time": "2024-06-18 20:01:41", "user_id": 2200123456789, "user_nick": "示例旗舰店",
               "content": _content()}
    message.update(overrides)
    return {k: v for k, v in message.items() if v is not None}


def _body(payload: Any, charset: str = "utf-8") -> bytes:
    return json.dumps(payload, ensure_ascii=False).encode(charset)


def _request(body: bytes, raw_query: str | None = None, *, charset: str | None = None,
             received_at: float = NOW, method: str = "md5") -> WebhookRequest:
    if raw_query is None:
        raw_query = signed_request(DEMO, body, method, NOW, charset=charset or "utf-8")
    content_type = "application/json" + (f"; charset={charset}" if charset else "")
    return WebhookRequest(
        method="POST", source="taobao", account="demo", body=body, query=dict(parse_qsl(raw_query)),
        raw_query=raw_query, headers={"content-type": content_type}, received_at=received_at,
    )


@pytest.fixture
def source() -> TaobaoSource:
    return build(_mapping())


@pytest.fixture
def account() -> Account:
    return Account("taobao", "demo", _mapping(), DEMO)


def _resign(body: bytes, **changes: str | None) -> str:
    """A query whose params are changed after signing (``None`` removes one)."""
    params = dict(parse_qsl(signed_request(DEMO, body, "md5", NOW)))
    for key, value in changes.items():
        if value is None:
            params.pop(key, None)
        else:
            params[key] = value
    return urlencode(params)


# ---------------------------------------------------------------------------------------------
# Verification


def test_registry_builds_the_taobao_adapter() -> None:
    assert isinstance(source_for("taobao"), TaobaoSource)


@pytest.mark.parametrize("method", ["md5", "hmac", "hmac-sha256"])
def test_signed_single_message_is_received_with_exact_ids(source: TaobaoSource, account: Account,
                                                          method: str) -> None:
    body = _body(_message())
    inbound = source.receive(_request(body, method=method), account)
    assert len(inbound.messages) == 1 and inbound.rejected == []
    message = inbound.messages[0]
    assert message["topic"] == "taobao_trade_TradeBuyerPay"
    assert message["content"]["tid"] == TID  # a Python int: every digit survives
    assert message["id"] == 2760453001234567902
    assert inbound.payload == body
    assert inbound.payload_type == "application/json; charset=utf-8"
    assert inbound.context["message_ids"] == ["2760453001234567902"]


def test_lower_case_hex_sign_is_accepted(source: TaobaoSource, account: Account) -> None:
    body = _body(_message())
    params = dict(parse_qsl(signed_request(DEMO, body, "md5", NOW)))
    query = urlencode({**params, "sign": params["sign"].lower()})
    assert len(source.receive(_request(body, query), account).messages) == 1


def test_sign_method_defaults_to_md5(source: TaobaoSource, account: Account) -> None:
    body = _body(_message())
    query = _resign(body, sign_method=None)  # md5 over params without sign_method must then match
    with pytest.raises(Unauthorized):
        source.receive(_request(body, query), account)
    params = {k: v for k, v in parse_qsl(signed_request(DEMO, body, "md5", NOW)) if k not in ("sign", "sign_method")}
    from dmhub_adapter.sources.taobao import top_sign

    params["sign"] = top_sign(params, "helloworld", "md5", body)
    assert len(source.receive(_request(body, urlencode(params)), account).messages) == 1


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"sign": "0" * 32}, "bad_signature"),
        ({"sign": None}, "missing_signature"),
        ({"sign": "é" * 32}, "bad_signature"),
        # a wrong app key is answered like a wrong signature (no app-key oracle)
        ({"app_key": "87654321"}, "bad_signature"),
        ({"app_key": None}, "bad_signature"),
        ({"timestamp": None}, "bad_timestamp"),
        ({"timestamp": "2024/06/18 20:01:42"}, "bad_timestamp"),
        ({"timestamp": "1718712102"}, "bad_timestamp"),
        ({"sign_method": "sha1"}, "bad_signature"),
    ],
)
def test_bad_credentials_are_401(source: TaobaoSource, account: Account, changes: dict[str, str | None],
                                 code: str) -> None:
    body = _body(_message())
    with pytest.raises(Unauthorized) as caught:
        source.receive(_request(body, _resign(body, **changes)), account)
    assert caught.value.status == 401 and caught.value.code == code


def test_right_signature_but_the_account_has_another_app_key(source: TaobaoSource) -> None:
    body = _body(_message())
    other = Account("taobao", "other", _mapping(), {"appKey": "99999999", "appSecret": "helloworld"})
    with pytest.raises(Unauthorized, match="signature does not match") as caught:
        source.receive(_request(body), other)
    assert caught.value.code == "bad_signature"


def test_other_secret_is_refused(source: TaobaoSource) -> None:
    body = _body(_message())
    other = Account("taobao", "demo", _mapping(), {"appKey": "12345678", "appSecret": "not-helloworld"})
    with pytest.raises(Unauthorized, match="signature"):
        source.receive(_request(body), other)


@pytest.mark.parametrize(("skew", "accepted"), [(-599, True), (599, True), (-601, False), (601, False),
                                                 (-86400, False)])
def test_timestamp_window(source: TaobaoSource, account: Account, skew: int, accepted: bool) -> None:
    body = _body(_message())
    request = _request(body, received_at=NOW + skew)
    if accepted:
        assert source.receive(request, account).messages
    else:
        with pytest.raises(Unauthorized) as caught:
            source.receive(request, account)
        assert caught.value.code == "stale_timestamp"


def test_timestamp_window_is_configurable(account: Account) -> None:
    data = _mapping_data()
    data["verification"] = {"timestamp_tolerance_seconds": 60}
    strict = TaobaoSource(parse_source_mapping(json.dumps(data), "<test>"))
    body = _body(_message())
    assert strict.receive(_request(body, received_at=NOW + 59), account).messages
    with pytest.raises(Unauthorized):
        strict.receive(_request(body, received_at=NOW + 120), account)


def test_sign_methods_can_be_restricted(account: Account) -> None:
    data = _mapping_data()
    data["verification"] = {"sign_methods": ["hmac-sha256"]}
    strict = TaobaoSource(parse_source_mapping(json.dumps(data), "<test>"))
    body = _body(_message())
    assert strict.receive(_request(body, method="hmac-sha256"), account).messages
    with pytest.raises(Unauthorized, match="not accepted"):
        strict.receive(_request(body, method="md5"), account)


def test_plus_for_space_in_timestamp_is_tolerated(source: TaobaoSource, account: Account) -> None:
    body = _body(_message())
    params = dict(parse_qsl(signed_request(DEMO, body, "md5", NOW)))
    # urlencode turns the space into '+'; a relay that encoded a literal '+' (%2B) signed the space.
    assert "timestamp=2024-06-18+20%3A01%3A42" in urlencode(params)
    literal_plus = urlencode(params).replace("timestamp=2024-06-18+", "timestamp=2024-06-18%2B")
    assert len(source.receive(_request(body, literal_plus), account).messages) == 1


def test_repeated_parameter_is_refused(source: TaobaoSource, account: Account) -> None:
    body = _body(_message())
    query = signed_request(DEMO, body, "md5", NOW) + "&app_key=12345678"
    with pytest.raises(Unauthorized, match="repeated"):
        source.receive(_request(body, query), account)


def test_empty_extra_parameter_signed_either_way(source: TaobaoSource, account: Account) -> None:
    from dmhub_adapter.sources.taobao import top_sign

    body = _body(_message())
    params = {k: v for k, v in parse_qsl(signed_request(DEMO, body, "md5", NOW)) if k != "sign"}
    params["session"] = ""
    for keep_empty in (False, True):
        query = urlencode({**params, "sign": top_sign(params, "helloworld", "md5", body, keep_empty=keep_empty)})
        assert source.receive(_request(body, query), account).messages


def test_gbk_body_is_verified_in_its_charset(source: TaobaoSource, account: Account) -> None:
    body = _body(_message(user_nick="示例旗舰店"), "gbk")
    inbound = source.receive(_request(body, charset="gbk"), account)
    assert inbound.messages[0]["user_nick"] == "示例旗舰店"
    assert inbound.payload_type == "application/json; charset=gbk"
    # The same GBK bytes signed as UTF-8 text cannot match (and are not even valid UTF-8).
    with pytest.raises(WebhookError):
        source.receive(_request(body, signed_request(DEMO, body.decode("gbk").encode(), "md5", NOW)), account)


def test_gb2312_label_is_read_as_gbk(source: TaobaoSource, account: Account) -> None:
    body = _body(_message(), "gbk")
    request = _request(body, signed_request(DEMO, body, "md5", NOW, charset="gbk"), charset="GB2312")
    assert source.receive(request, account).messages


def test_undecodable_body_and_unknown_charset_are_400(source: TaobaoSource, account: Account) -> None:
    body = _body(_message(), "gbk")
    with pytest.raises(BadRequest):
        source.receive(_request(body, signed_request(DEMO, b"{}", "md5", NOW), charset="utf-8"), account)
    with pytest.raises(BadRequest, match="charset"):
        source.receive(_request(b"{}", signed_request(DEMO, b"{}", "md5", NOW), charset="x-nope"), account)


def test_missing_secret_is_503_not_a_crash(source: TaobaoSource) -> None:
    body = _body(_message())
    for secret in (None, {"appKey": "12345678"}):
        with pytest.raises(Unavailable):
            source.receive(_request(body), Account("taobao", "demo", _mapping(), secret))


def test_body_over_the_cap_is_413_before_anything_else(source: TaobaoSource, account: Account) -> None:
    body = b" " * (1024 * 1024 + 1)
    with pytest.raises(PayloadTooLarge):
        source.receive(_request(body, ""), account)
    with pytest.raises(PayloadTooLarge):
        source.parse_unverified(_request(body, ""), account)


# ---------------------------------------------------------------------------------------------
# Parsing


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"not json", "JSON"),
        (b"[" * 100000 + b"]" * 100000, "deeply"),
        (_body(_message(topic=None)), "'topic'"),
        (_body(_message(topic="")), "'topic'"),
        (_body(_message(topic=7)), "'topic'"),
        (_body(_message(content=None)), "'content'"),
        (_body(_message(content="{not json")), "'content'"),
        (_body(_message(content="[1, 2]")), "'content'"),
        (_body(_message(content=12)), "'content'"),
        (_body("just a string"), "message"),
        (_body({"messages": "nope"}), "'messages'"),
        (_body({"messages": []}), "'messages'"),
    ],
)
def test_malformed_payloads_are_400_naming_the_field(source: TaobaoSource, account: Account, body: bytes,
                                                     field: str) -> None:
    with pytest.raises(BadRequest) as caught:
        source.receive(_request(body), account)
    assert caught.value.status == 400
    assert field in caught.value.message
    assert caught.value.to_body()["error"]


def test_batch_with_invalid_messages_rejects_them_and_keeps_the_others(source: TaobaoSource,
                                                                       account: Account) -> None:
    batch = {"messages": [_message(), _message(topic=None), _message(id=2, content="{oops"), "x",
                          _message(id=3, topic="taobao_trade_TradeSuccess")]}
    inbound = source.receive(_request(_body(batch)), account)
    assert [m["id"] for m in inbound.messages] == [2760453001234567902, 3]
    assert inbound.context["indexes"] == [0, 4]
    assert [r.index for r in inbound.rejected] == [1, 2, 3]
    assert "topic" in inbound.rejected[0].reason
    assert "content" in inbound.rejected[1].reason and "JSON" in inbound.rejected[1].reason
    assert "object" in inbound.rejected[2].reason


def test_a_bare_list_is_a_batch(source: TaobaoSource, account: Account) -> None:
    inbound = source.receive(_request(_body([_message(), _message(id=9)])), account)
    assert len(inbound.messages) == 2 and inbound.context["batch"] is True


def test_batch_size_limit(source: TaobaoSource, account: Account) -> None:
    with pytest.raises(BadRequest, match="limit"):
        source.receive(_request(_body({"messages": [_message()] * 201})), account)


def test_content_may_be_an_object_or_base64_gzip(source: TaobaoSource, account: Account) -> None:
    packed = base64.b64encode(gzip.compress(_content().encode())).decode()
    batch = {"messages": [_message(content=json.loads(_content())), _message(content=packed)]}
    inbound = source.receive(_request(_body(batch)), account)
    assert [m["content"]["tid"] for m in inbound.messages] == [TID, TID]


def test_gzip_bomb_and_truncated_gzip_are_rejected(source: TaobaoSource, account: Account) -> None:
    bomb = base64.b64encode(gzip.compress(b"{" + b" " * (2 * 1024 * 1024) + b"}")).decode()
    truncated = base64.b64encode(gzip.compress(_content().encode())[:-12]).decode()
    inbound = source.receive(_request(_body({"messages": [_message(content=bomb), _message(content=truncated),
                                                          _message()]})), account)
    assert [r.index for r in inbound.rejected] == [0, 1]
    assert "inflates beyond" in inbound.rejected[0].reason
    assert len(inbound.messages) == 1


def test_parse_unverified_needs_no_signature(source: TaobaoSource) -> None:
    request = WebhookRequest(method="POST", source="taobao", account="demo", body=_body(_message()))
    inbound = source.parse_unverified(request, Account("taobao", "demo", _mapping(), None))
    assert inbound.messages[0]["content"]["buyer_open_uid"] == "AAHq5d-EAAeG3JedwSFpZMe1"


# ---------------------------------------------------------------------------------------------
# Replies


def test_success_reply(source: TaobaoSource) -> None:
    response = source.reply(_request(b"{}"), IngestOutcome(enqueued=1, skipped=1, unmapped=1))
    assert response.status == 200
    assert json.loads(response.body) == {"success": True}
    assert response.content_type == "application/json"


def test_partial_batch_reply_names_the_rejected_and_says_the_rest_went_through(source: TaobaoSource) -> None:
    outcome = IngestOutcome(enqueued=2, duplicates=1, rejected=[MessageRejection(1, "field 'topic' is missing")])
    response = source.reply(_request(b"{}"), outcome)
    body = json.loads(response.body)
    assert response.status == 400
    assert body["success"] is False
    assert body["rejected"] == [{"index": 1, "reason": "field 'topic' is missing"}]
    assert body["accepted"] == 3
    assert "processed" in body["message"]


def test_error_reply_is_json_with_the_status(source: TaobaoSource) -> None:
    response = source.error_reply(None, Unauthorized("signature does not match", code="bad_signature"))
    assert response.status == 401
    assert json.loads(response.body) == {"error": "bad_signature", "message": "signature does not match"}


def test_no_get_handshake(source: TaobaoSource, account: Account) -> None:
    with pytest.raises(MethodNotAllowed):
        source.handshake(_request(b""), account)


def test_format_timestamp_round_trip_through_the_verifier(source: TaobaoSource, account: Account) -> None:
    body = _body(_message())
    received = NOW + 3600
    query = signed_request(DEMO, body, "hmac", format_timestamp(received))
    assert source.receive(_request(body, query, received_at=received), account).messages
