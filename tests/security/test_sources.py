"""Attacks on the sources and their parsing (issue 14, items 2, 3, 4, 7, 8, 9a, 10, 12).

Each test is an attack that succeeded before its fix. Where routing matters the requests go
through the local stack's gateway socket (``dmhub-adapter dev``: the ingest behind a real
socket, DynamoDB and SQS in moto_server over HTTP); the rest call the adapters directly."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl, urlencode

import httpx
import pytest

from dmhub_adapter.errors import Unauthorized, Unavailable, WebhookError
from dmhub_adapter.mapping import converters
from dmhub_adapter.sources import payloads
from dmhub_adapter.sources.generic import signatures
from dmhub_adapter.sources.taobao import signed_request as taobao_signed
from dmhub_adapter.sources.wechat import crypto as wc
from dmhub_adapter.sources.wechat import handshake_query, signed_request
from dmhub_adapter_tools.local.accounts import load_accounts
from tests.e2e.conftest import RunningStack, start_stack

pytestmark = pytest.mark.e2e

ACCOUNTS = load_accounts()
SAFE = ACCOUNTS.secret("wechat", "demo") or {}
PLAIN = ACCOUNTS.secret("wechat", "demo-plain") or {}
TAOBAO = ACCOUNTS.secret("taobao", "demo") or {}
GH = "gh_0123456789ab"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    running = start_stack(tmp_path_factory.mktemp("security"))
    try:
        yield running
    finally:
        running.stop()


def post(stack: RunningStack, path: str, query: str, body: bytes, content_type: str = "application/xml"
         ) -> httpx.Response:
    return httpx.post(f"{stack.gateway}{path}?{query}", content=body, headers={"content-type": content_type},
                      timeout=30)


def follow(openid: str, created: int | str, *, extra: str = "") -> str:
    return (f"<xml><ToUserName><![CDATA[{GH}]]></ToUserName><FromUserName><![CDATA[{openid}]]></FromUserName>"
            f"<CreateTime>{created}</CreateTime><MsgType><![CDATA[event]]></MsgType>"
            f"<Event><![CDATA[subscribe]]></Event>{extra}</xml>")


def swap(query: str) -> str:
    values = dict(parse_qsl(query))
    values["timestamp"], values["nonce"] = values["nonce"], values["timestamp"]
    return urlencode(values)


# -- item 2: replay after the window by swapping timestamp and nonce ----------------------------------


def test_wechat_safe_mode_push_swapped_into_a_new_window_is_refused(stack: RunningStack) -> None:
    now = int(time.time())
    old = now - 8 * 86400
    # captured 8 days ago; its nonce happens to read as a Unix time that is now
    query, body = signed_request(SAFE, follow("oSecSwap1", old), "safe", timestamp=old, nonce=str(now))
    replay = post(stack, "/webhooks/wechat/demo", swap(query), body)
    assert replay.status_code == 401, replay.text
    assert replay.json()["error"] == "stale_message"


def test_wechat_plaintext_signature_binds_to_its_first_body(stack: RunningStack) -> None:
    now = int(time.time())
    query, body = signed_request(PLAIN, follow("oSecBind1", now), "plain", timestamp=now)
    assert post(stack, "/webhooks/wechat/demo-plain", query, body).text == "success"
    # the same request again is an ordinary redelivery
    assert post(stack, "/webhooks/wechat/demo-plain", query, body).text == "success"
    # another body under the same (timestamp, nonce, signature) is a forgery
    forged = post(stack, "/webhooks/wechat/demo-plain", query, follow("oSecMallory", now).encode())
    assert forged.status_code == 401 and forged.json()["error"] == "signature_reused"
    # also with timestamp and nonce swapped (both sort the same into the signature)
    values = dict(parse_qsl(query))
    if values["nonce"] != values["timestamp"]:
        swapped = post(stack, "/webhooks/wechat/demo-plain", swap(query), follow("oSecMallory", now).encode())
        assert swapped.status_code == 401


def test_wechat_plaintext_swap_with_a_forged_current_body_is_refused(stack: RunningStack) -> None:
    now = int(time.time())
    captured_at = now - 600  # outside the 300 s window; its nonce reads as a time of now
    query, body = signed_request(PLAIN, follow("oSecSwap2", captured_at), "plain", timestamp=captured_at,
                                 nonce=str(now))
    # the genuine push arrived back then and bound its signature (with a guard until the nonce)
    import os

    from dmhub_adapter.sources.base import Account
    from dmhub_adapter.sources.registry import source_for
    from dmhub_adapter.store.signature_binding import SignatureBinding
    from dmhub_adapter.webhook import WebhookRequest

    adapter: Any = source_for("wechat")
    env = stack.info["environment"]
    client = __import__("boto3").session.Session(region_name="eu-west-1").client(
        "dynamodb", endpoint_url=stack.info["moto"])
    own = type(adapter)(adapter.mapping, binding=SignatureBinding(client, env["IDEMPOTENCY_TABLE"]))
    genuine = WebhookRequest(method="POST", source="wechat", account="demo-plain", body=body,
                             query=dict(parse_qsl(query)), raw_query=query, received_at=captured_at)
    assert own.receive(genuine, Account("wechat", "demo-plain", adapter.mapping, PLAIN)).messages
    del os
    # now: swapped timestamp/nonce and a forged body with a current CreateTime
    forged = post(stack, "/webhooks/wechat/demo-plain", swap(query), follow("oSecMallory2", now).encode())
    assert forged.status_code == 401, forged.text


# -- item 4: a GET-verification signature reused for POST ---------------------------------------------


def test_url_verification_signature_cannot_carry_a_post(stack: RunningStack) -> None:
    now = int(time.time())
    query = handshake_query(str(PLAIN["token"]), "echo123", timestamp=now)
    handshake = httpx.get(f"{stack.gateway}/webhooks/wechat/demo-plain?{query}", timeout=30)
    assert handshake.status_code == 200 and handshake.text == "echo123"
    body = follow("oSecGetReuse", now).encode()
    with_echostr = post(stack, "/webhooks/wechat/demo-plain", query, body)
    assert with_echostr.status_code == 401
    without = urlencode({k: v for k, v in parse_qsl(query) if k != "echostr"})
    reused = post(stack, "/webhooks/wechat/demo-plain", without, body)
    assert reused.status_code == 401 and reused.json()["error"] == "signature_reused"


# -- item 3: one number hangs the ingest ------------------------------------------------------------------


def test_huge_numbers_are_unmapped_or_400_quickly_never_503(stack: RunningStack) -> None:
    now = int(time.time())
    location = (f"<xml><ToUserName>{GH}</ToUserName><FromUserName>oSecNumber</FromUserName>"
                f"<CreateTime>{now}</CreateTime><MsgType>event</MsgType><Event>LOCATION</Event>"
                "<Latitude>1e100000</Latitude><Longitude>1e1000000</Longitude><Precision>9" + "9" * 5000
                + "</Precision></xml>")
    query, body = signed_request(PLAIN, location, "plain", timestamp=now)
    started = time.monotonic()
    answer = post(stack, "/webhooks/wechat/demo-plain", query, body)
    assert answer.status_code == 200 and answer.text == "success"  # kept as unmapped
    assert time.monotonic() - started < 5
    created = "9" * 5000
    query, body = signed_request(PLAIN, follow("oSecNumber2", created), "plain", timestamp=now)
    answer = post(stack, "/webhooks/wechat/demo-plain", query, body)
    assert answer.status_code == 400, answer.text


def test_number_converters_bound_digits_and_exponent_before_arithmetic() -> None:
    for value in ("1e1000000", "9" * 5000, "-1E+999999999", 10**5000, float("inf")):
        started = time.perf_counter()
        with pytest.raises(converters.ConversionError):
            converters.number(value, None)
        assert time.perf_counter() - started < 0.05
    with pytest.raises(converters.ConversionError):
        converters.unix_seconds("9" * 5000, None)
    assert converters.number("19.90", None) == 19.9 and converters.number("3900000000000000777", None) == \
        3900000000000000777


# -- item 7: sortedParams over body fields --------------------------------------------------------------


FIELDS_SCHEME = signatures.parse_verification({
    "scheme": "signature", "algorithm": "hmac-sha256", "key": {"secret": "key"},
    "signature": {"field": "sign"}, "signed": [{"sortedParams": {"from": "fields", "exclude": ["sign"]}}],
})


def _fields_request(fields: dict[str, Any]) -> signatures.SignedRequest:
    return signatures.SignedRequest(body=json.dumps(fields).encode(), fields=fields)


def test_sorted_params_refuse_unsigned_object_and_null_fields() -> None:
    assert isinstance(FIELDS_SCHEME, signatures.SignatureScheme)
    secret = {"key": "k3y"}
    fields: dict[str, Any] = {"order": "42", "amount": 100}
    fields["sign"] = signatures.sign(FIELDS_SCHEME, _fields_request(fields), secret)
    signatures.verify(FIELDS_SCHEME, _fields_request(fields), secret)
    for added in ({"customer": {"id": "mallory"}}, {"tags": ["x"]}, {"note": None}):
        with pytest.raises(Unauthorized) as caught:
            signatures.verify(FIELDS_SCHEME, _fields_request({**fields, **added}), secret)
        assert caught.value.code == "unsigned_field"


def test_an_unsigned_deep_body_is_400_before_any_recursion() -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    with pytest.raises(WebhookError) as caught:
        payloads.parse_body(deep, "json", "utf-8")
    assert caught.value.status == 400


# -- items 8 and 9a: unauthenticated 503s -----------------------------------------------------------------


def test_undefined_charset_is_400_not_503(stack: RunningStack) -> None:
    body = json.dumps({"id": 1, "topic": "taobao_trade_TradeBuyerPay", "content": "{}"}).encode()
    query = taobao_signed(TAOBAO, body)
    for charset in ("undefined", "base64", "unicode_escape", "rot13"):
        answer = post(stack, "/webhooks/taobao/demo", query, body, f"application/json; charset={charset}")
        assert answer.status_code == 400, (charset, answer.text)
    for charset in ("undefined", "zlib"):
        with pytest.raises(WebhookError) as caught:
            payloads.parse_form(b"a=1", charset)
        assert caught.value.status == 400


def test_deep_json_is_400_and_the_json_converter_unmaps_it() -> None:
    deep = "[" * 50_000 + "]" * 50_000
    with pytest.raises(WebhookError) as caught:
        payloads.parse_json(deep.encode(), "utf-8")
    assert caught.value.status == 400
    with pytest.raises(converters.ConversionError):
        converters.json_text('{"a":' * 50_000 + "1" + "}" * 50_000, None)
    # strings full of brackets are not nesting
    assert payloads.parse_json(json.dumps({"x": "[" * 1000}).encode(), "utf-8") == {"x": "[" * 1000}


# -- item 10: ed25519 keys ----------------------------------------------------------------------------------


ED_SCHEME = signatures.parse_verification({
    "scheme": "signature", "algorithm": "ed25519", "key": {"secret": "publicKey", "decode": "whsec"},
    "signature": {"header": "webhook-signature", "prefix": "v1a,", "separator": " ", "encoding": "base64"},
    "signed": ["body"],
})


def test_identity_and_small_order_public_keys_are_refused() -> None:
    forged = "v1a," + base64.b64encode(bytes([1]) + bytes(31) + bytes(32)).decode()  # R = identity, S = 0
    request = signatures.SignedRequest(body=b'{"forged": true}', headers={"webhook-signature": forged})
    small_order = [bytes([1]) + bytes(31), bytes(32), bytes(31) + b"\x80",
                   bytes.fromhex("ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),
                   bytes.fromhex("26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05"),
                   bytes.fromhex("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a"),
                   bytes.fromhex("edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f")]
    for key in small_order:
        secret = {"publicKey": "whpk_" + base64.b64encode(key).decode()}
        with pytest.raises(Unavailable) as caught:
            signatures.verify(ED_SCHEME, request, secret)
        assert "publicKey" in caught.value.message and base64.b64encode(key).decode() not in caught.value.message


def test_junk_in_key_material_is_refused_not_dropped() -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    public = Ed25519PrivateKey.generate().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    good = base64.b64encode(public).decode()
    assert signatures.decode_key("whpk_" + good.rstrip("="), "whsec") == public
    for junk in (good[:10] + "!" + good[10:], good[:10] + "\u00e9" + good[10:], good + "*"):
        with pytest.raises(ValueError):
            signatures.decode_key("whpk_" + junk, "whsec")
    with pytest.raises(ValueError):
        signatures.decode_key("zz" + public.hex(), "hex")


# -- item 12: information leaks -----------------------------------------------------------------------------


def test_404_bodies_do_not_echo_the_path(stack: RunningStack) -> None:
    probe = "acct" + "X" * 3000
    bodies = set()
    for path in (f"/webhooks/wechat/{probe}", f"/webhooks/{probe}/demo", f"/webhooks/taobao/{probe}"):
        answer = httpx.post(f"{stack.gateway}{path}", content=b"<xml/>", timeout=30)
        assert answer.status_code == 404 and probe not in answer.text and "XXXX" not in answer.text
        bodies.add(answer.text)
    assert len(bodies) == 1  # an unknown source and an unknown account answer alike


def test_taobao_wrong_app_key_answers_like_a_wrong_signature(stack: RunningStack) -> None:
    body = json.dumps({"id": 2, "topic": "taobao_trade_TradeBuyerPay", "content": "{}"}).encode()
    wrong_key = taobao_signed({"appKey": "99999999", "appSecret": "guess"}, body)
    wrong_sign = taobao_signed({"appKey": TAOBAO["appKey"], "appSecret": "guess"}, body)
    answers = [post(stack, "/webhooks/taobao/demo", query, body, "application/json") for query in (wrong_key,
                                                                                                  wrong_sign)]
    assert [a.status_code for a in answers] == [401, 401]
    assert answers[0].json() == answers[1].json() == {"error": "bad_signature", "message": "signature does not match"}


def test_every_decrypt_failure_gets_one_answer(stack: RunningStack) -> None:
    now = int(time.time())
    token = str(SAFE["token"])
    answers = []
    good = wc.encrypt(follow("oSecOracle", now), str(SAFE["encodingAesKey"]), str(SAFE["appId"]))
    raw = bytearray(base64.b64decode(good))
    raw[-1] ^= 0x01  # breaks the padding
    other_app = wc.encrypt(follow("oSecOracle", now), str(SAFE["encodingAesKey"]), "wx0000000000000000")
    for encrypted in (base64.b64encode(bytes(raw)).decode(), base64.b64encode(b"A" * 48).decode(), other_app):
        nonce = str(1_000_000 + len(answers))
        query = urlencode({"signature": wc.sign(token, str(now), nonce), "timestamp": now, "nonce": nonce,
                           "encrypt_type": "aes", "msg_signature": wc.sign(token, str(now), nonce, encrypted)})
        envelope = f"<xml><ToUserName>{GH}</ToUserName><Encrypt><![CDATA[{encrypted}]]></Encrypt></xml>"
        answers.append(post(stack, "/webhooks/wechat/demo", query, envelope.encode()))
    assert {a.status_code for a in answers} == {400}
    assert len({a.text for a in answers}) == 1

