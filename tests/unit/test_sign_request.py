"""``send``'s signer, checked by independent verifiers: the ``standardwebhooks`` package for
Standard Webhooks, wechatpy for WeChat, and plain hashlib for Youzan's md5 recipe."""

from __future__ import annotations

import hashlib
import json
import time

import pytest

from dmhub_adapter.sources.registry import load_source_mapping, sign_for
from dmhub_adapter_tools.local.accounts import load_accounts

DEMO = load_accounts()


def mapping(name: str):  # type: ignore[no-untyped-def]
    found = load_source_mapping(name)
    assert found is not None
    return found


def test_standard_webhooks_signature_verifies_with_the_reference_library() -> None:
    from standardwebhooks.webhooks import Webhook

    secret = DEMO.secret("standard-webhooks", "demo") or {}
    body = json.dumps({"type": "invoice.paid", "timestamp": "2026-12-04T10:00:00Z", "data": {"id": "i1"}}).encode()
    signed = sign_for(mapping("standard-webhooks"), secret, body, {}, {}, time.time())
    assert signed.headers["webhook-id"].startswith("msg_")
    verified = Webhook(secret["signingSecret"]).verify(body, signed.headers)
    assert verified["data"]["id"] == "i1"


def test_youzan_signature_is_md5_of_client_id_body_secret() -> None:
    secret = DEMO.secret("youzan", "demo") or {}
    body = b'{"id":"E1","version":1}'
    signed = sign_for(mapping("youzan"), secret, body, {"Event-Type": "trade_TradePaid"}, {}, time.time())
    expected = hashlib.md5(secret["clientId"].encode() + body + secret["clientSecret"].encode()).hexdigest()
    assert signed.headers["event-sign"] == expected and signed.headers["event-type"] == "trade_TradePaid"


def test_wechat_safe_mode_decrypts_with_wechatpy() -> None:
    from wechatpy.crypto import WeChatCrypto

    secret = DEMO.secret("wechat", "demo") or {}
    xml = b"<xml><ToUserName>gh_1</ToUserName><FromUserName>o1</FromUserName><CreateTime>1</CreateTime></xml>"
    signed = sign_for(mapping("wechat"), secret, xml, {}, {}, time.time())
    query = dict(pair.split("=", 1) for pair in signed.raw_query.split("&"))
    crypto = WeChatCrypto(secret["token"], secret["encodingAesKey"], secret["appId"])
    plain = crypto.decrypt_message(signed.body, query["msg_signature"], query["timestamp"], query["nonce"])
    assert "<FromUserName>o1</FromUserName>" in plain


def test_what_cannot_be_signed_says_what_is_missing() -> None:
    from dmhub_adapter.mapping.config import parse_mapping

    needs_header = parse_mapping("""
source: acme
verification:
  scheme: signature
  algorithm: hmac-sha256
  key: {secret: key}
  signature: {header: x-sig}
  signed: [{header: x-shop}, body]
  replayWindow: {none: "the sender signs no time at all, ever"}
rules: [{name: all, skip: example}]
""", "acme.yaml")
    with pytest.raises(ValueError, match="give it with --header"):
        sign_for(needs_header, {"key": "k"}, b"{}", {}, {}, time.time())
    assert sign_for(needs_header, {"key": "k"}, b"{}", {"X-Shop": "s1"}, {}, time.time()).headers["x-sig"]
