"""The WeChat adapter: handshake, verification in the three modes, parsing, refusals, replies."""

from __future__ import annotations

import base64
import json
import string
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dmhub_adapter.apigw import request_from_event, response_to_event
from dmhub_adapter.errors import (
    BadRequest,
    Forbidden,
    PayloadTooLarge,
    Unauthorized,
    Unavailable,
    WebhookError,
)
from dmhub_adapter.mapping.config import MappingConfigError, mapping_path
from dmhub_adapter.sources.base import Account, IngestOutcome
from dmhub_adapter.sources.registry import parse_source_mapping, source_for
from dmhub_adapter.sources.wechat import (
    WeChatSource,
    build,
    check_config,
    handshake_query,
    parse_xml,
    signed_request,
)
from dmhub_adapter.sources.wechat import crypto as wc
from dmhub_adapter.webhook import WebhookRequest
from dmhub_adapter_tools.local.accounts import load_accounts

EVENTS = Path(__file__).resolve().parents[2] / "events"
SECRET = {"token": "pamtest", "encodingAesKey": "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG",
          "appId": "wxb11529c136998cb6"}
GH = "gh_7f083739789a"
OPENID = "oia2TjjewbmiOUlr6X-1crbLOvLw"
NOW = 1732780801
FOLLOW = (
    f"<xml><ToUserName><![CDATA[{GH}]]></ToUserName><FromUserName><![CDATA[{OPENID}]]></FromUserName>"
    "<CreateTime>1732780800</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[subscribe]]></Event>"
    "<EventKey><![CDATA[]]></EventKey></xml>"
)
FOLLOW_FIELDS = {"ToUserName": GH, "FromUserName": OPENID, "CreateTime": "1732780800", "MsgType": "event",
                 "Event": "subscribe", "EventKey": ""}
BILLION_LAUGHS = (
    '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;">'
    '<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;">]><xml><Content>&lol3;</Content></xml>'
)
#: a plaintext-mode account: no EncodingAESKey, so plaintext pushes are accepted
PLAIN_SECRET = {"token": "pamtest"}
XXE = '<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><xml><a>&xxe;</a></xml>'
INTERNAL_ENTITY = '<!DOCTYPE xml [<!ENTITY e "x">]><xml><ToUserName>&e;</ToUserName></xml>'


@pytest.fixture(scope="module")
def source() -> WeChatSource:
    adapter = source_for("wechat")
    assert isinstance(adapter, WeChatSource)
    return adapter


def account(source: WeChatSource, secret: Mapping[str, Any] | None = SECRET, **extra: Any) -> Account:
    return Account("wechat", "demo", source.mapping, None if secret is None else {**secret, **extra})


def request(raw_query: str, body: bytes = b"", *, method: str = "POST", now: float = NOW) -> WebhookRequest:
    return WebhookRequest(
        method=method, source="wechat", account="demo", body=body,
        query=dict(parse_qsl(raw_query, keep_blank_values=True)), raw_query=raw_query, received_at=now,
    )


def signed(xml: str = FOLLOW, mode: str = "safe", secret: Mapping[str, Any] = SECRET, **kwargs: Any
           ) -> WebhookRequest:
    raw_query, body = signed_request(secret, xml, mode, timestamp=NOW, nonce="1320562132", **kwargs)  # type: ignore[arg-type]
    return request(raw_query, body)


def replace_query(req: WebhookRequest, **changes: str | None) -> WebhookRequest:
    query = {k: v for k, v in {**req.query, **changes}.items() if v is not None}
    return request(urlencode(query), req.body, now=req.received_at)


# -- GET handshake --------------------------------------------------------------------------------


def test_handshake_answers_the_raw_echostr(source: WeChatSource) -> None:
    query = handshake_query("AAAAA", "4375120948345356249", timestamp=1714036504, nonce="1514711492")
    assert "signature=f464b24fc39322e44b38aa78f5edd27bd1441696" in query
    response = source.handshake(request(query, method="GET", now=1714036504), account(source, {"token": "AAAAA"}))
    assert response.status == 200
    assert response.body == "4375120948345356249"
    assert response.content_type.startswith("text/plain")
    assert response_to_event(response)["body"] == "4375120948345356249"


def test_handshake_refusals(source: WeChatSource) -> None:
    good = handshake_query("pamtest", "123", timestamp=NOW, nonce="9")
    with pytest.raises(Unauthorized):
        source.handshake(request(good.replace("signature=", "signature=0"), method="GET"), account(source))
    with pytest.raises(Unauthorized, match="window"):
        source.handshake(request(good, method="GET", now=NOW + 301), account(source))
    no_echo = handshake_query("pamtest", "", timestamp=NOW, nonce="9")
    with pytest.raises(BadRequest, match="echostr"):
        source.handshake(request(no_echo, method="GET"), account(source))
    with pytest.raises(Unavailable, match="empty token"):
        source.handshake(request(good, method="GET"), account(source, {**SECRET, "token": ""}))


# -- POST: the three modes ---------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["plain", "compat", "safe"])
def test_modes_yield_the_flat_message(source: WeChatSource, mode: str) -> None:
    # plaintext pushes come from an account in plaintext mode; a keyed account refuses them
    inbound = source.receive(signed(mode=mode), account(source, PLAIN_SECRET if mode == "plain" else SECRET))
    assert inbound.messages == [FOLLOW_FIELDS]
    assert inbound.payload == FOLLOW.encode()  # clear text, for replays
    assert inbound.payload_type == "application/xml"
    assert inbound.context["mode"] == mode


def test_research_safe_mode_vector_as_received(source: WeChatSource) -> None:
    event = json.loads((EVENTS / "wechat-follow-qr-safe.json").read_text(encoding="utf-8"))
    req = request_from_event(event)
    assert req.query["msg_signature"] == "178dd9861be73a67c94588e7f9a72e9d8d7b367d"
    [message] = source.receive(req, account(source)).messages
    assert message["EventKey"] == "qrscene_campaign_2024_spring"
    assert message["FromUserName"] == OPENID


def test_base64_encoded_event_bodies(source: WeChatSource) -> None:
    event = json.loads((EVENTS / "wechat-follow-qr-safe.json").read_text(encoding="utf-8"))
    event["body"] = base64.b64encode(event["body"].encode()).decode()
    event["isBase64Encoded"] = True
    [message] = source.receive(request_from_event(event), account(source)).messages
    assert message["Event"] == "subscribe"


def test_compat_mode_trusts_only_the_encrypted_copy(source: WeChatSource) -> None:
    req = signed(mode="compat")
    forged = req.body.replace(OPENID.encode(), b"oATTACKERxxxxxxxxxxxxxxxxxxx", 1)
    assert forged != req.body
    [message] = source.receive(request(req.raw_query, forged), account(source)).messages
    assert message["FromUserName"] == OPENID


def test_every_sample_event_verifies(source: WeChatSource) -> None:
    """Each sample passes with the secret of the account in its own path, in the demo accounts file."""
    demo = load_accounts()
    files = sorted(EVENTS.glob("wechat-*.json"))
    assert len(files) == 8
    plaintext = []
    for path in files:
        req = request_from_event(json.loads(path.read_text(encoding="utf-8")))
        own = Account("wechat", req.account, source.mapping, demo.secret("wechat", req.account))
        assert own.secret, f"{path.name}: no wechat/{req.account} in the demo accounts"
        if req.method == "GET":
            assert source.handshake(req, own).body == req.query["echostr"]
            continue
        inbound = source.receive(req, own)
        assert len(inbound.messages) == 1, path.name
        if inbound.context["mode"] == "plain":
            plaintext.append(path.name)
            # sent to the plaintext-mode account: the keyed account would refuse it
            assert "encodingAesKey" not in own.secret, path.name
        else:
            assert "encodingAesKey" in own.secret, path.name
    assert plaintext == ["wechat-follow-plain.json", "wechat-text.json"]


# -- signatures and timestamps ------------------------------------------------------------------


@pytest.mark.parametrize("missing", ["signature", "timestamp", "nonce"])
def test_missing_query_values(source: WeChatSource, missing: str) -> None:
    with pytest.raises(Unauthorized, match="required"):
        source.receive(replace_query(signed(mode="plain"), **{missing: None}), account(source))


def test_wrong_signature(source: WeChatSource) -> None:
    req = signed(mode="plain")
    wrong = req.query["signature"][:-1] + ("0" if req.query["signature"][-1] != "0" else "1")
    with pytest.raises(Unauthorized, match="signature"):
        source.receive(replace_query(req, signature=wrong), account(source))


def test_safe_mode_with_only_signature_fails_closed(source: WeChatSource) -> None:
    with pytest.raises(Unauthorized, match="msg_signature"):
        source.receive(replace_query(signed(), msg_signature=None), account(source))


def test_tampered_encrypt_fails_msg_signature(source: WeChatSource) -> None:
    req = signed()
    envelope = parse_xml(req.body)
    encrypted = envelope["Encrypt"]
    tampered = req.body.replace(encrypted.encode(), (encrypted[:10] + encrypted[10:][::-1]).encode())
    with pytest.raises(Unauthorized, match="msg_signature"):
        source.receive(request(req.raw_query, tampered), account(source))


@pytest.mark.parametrize("offset", [-301, 301, 10_000])
def test_stale_timestamp(source: WeChatSource, offset: int) -> None:
    req = signed()
    with pytest.raises(Unauthorized, match="window"):
        source.receive(request(req.raw_query, req.body, now=NOW + offset), account(source))
    assert source.receive(request(req.raw_query, req.body, now=NOW + offset // abs(offset) * 300), account(source))


def test_timestamp_tolerance_from_the_secret(source: WeChatSource) -> None:
    req = signed()
    late = request(req.raw_query, req.body, now=NOW + 20)
    with pytest.raises(Unauthorized):
        source.receive(late, account(source, timestampToleranceSeconds=10))
    assert source.receive(late, account(source, timestampToleranceSeconds="30")).messages


def test_timestamp_tolerance_from_mapping_options() -> None:
    text = _wechat_yaml().read_text(encoding="utf-8")
    mapping = parse_source_mapping(text.replace("timestamp_tolerance_seconds: 300", "timestamp_tolerance_seconds: 10"),
                            "<test>")
    strict = build(mapping)
    req = signed()
    with pytest.raises(Unauthorized):
        strict.receive(request(req.raw_query, req.body, now=NOW + 20), account(strict))


def test_non_numeric_timestamp(source: WeChatSource) -> None:
    query = urlencode({"signature": wc.sign("pamtest", "soon", "1"), "timestamp": "soon", "nonce": "1"})
    with pytest.raises(Unauthorized, match="Unix"):
        source.receive(request(query, FOLLOW.encode()), account(source))


# -- account configuration -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "secret",
    [None, {}, {"token": ""}, {"token": None}, {**SECRET, "encodingAesKey": "short"},
     {**SECRET, "timestampToleranceSeconds": "a lot"}, {**SECRET, "requireEncryption": "maybe"}],
)
def test_misconfigured_account_is_503(source: WeChatSource, secret: Mapping[str, Any] | None) -> None:
    with pytest.raises(Unavailable) as caught:
        source.receive(signed(mode="plain"), account(source, secret))
    assert caught.value.status == 503
    assert "pamtest" not in caught.value.message and "abcdefg" not in caught.value.message


def test_all_digit_token_from_yaml_works(source: WeChatSource) -> None:
    secret = {"token": "123456"}
    raw_query, body = signed_request(secret, FOLLOW, "plain", timestamp=NOW, nonce="5")
    assert source.receive(request(raw_query, body), account(source, {"token": 123456})).messages == [FOLLOW_FIELDS]


def test_encrypted_push_without_key_is_503(source: WeChatSource) -> None:
    with pytest.raises(Unavailable, match="encodingAesKey"):
        source.receive(signed(), account(source, {"token": "pamtest"}))


def test_plaintext_needs_no_key(source: WeChatSource) -> None:
    assert source.receive(signed(mode="plain"), account(source, {"token": "pamtest"})).messages == [FOLLOW_FIELDS]


@pytest.mark.parametrize("flag", [True, "true"])
def test_require_encryption_refuses_plaintext(source: WeChatSource, flag: object) -> None:
    with pytest.raises(Forbidden) as caught:
        source.receive(signed(mode="plain"), account(source, requireEncryption=flag))
    assert caught.value.status == 403
    assert source.receive(signed(mode="safe"), account(source, requireEncryption=flag)).messages


def test_a_keyed_account_refuses_plaintext_by_default(source: WeChatSource) -> None:
    # A captured safe-mode signature must not carry a forged plaintext body.
    with pytest.raises(Forbidden):
        source.receive(signed(mode="plain"), account(source))
    assert source.receive(signed(mode="plain"), account(source, requireEncryption=False)).messages


class _CountingBinding:
    """A binding store that records each bind and refuses a second body under one key."""

    def __init__(self) -> None:
        self.bound: dict[str, str] = {}

    def bind(self, key: str, body_digest: str, expires_at: int) -> bool:
        return self.bound.setdefault(key, body_digest) == body_digest


def _bound_account(source: WeChatSource, binding: _CountingBinding, **extra: Any) -> Account:
    return Account("wechat", "demo", source.mapping, {**SECRET, **extra}, signature_binding=binding)


@pytest.mark.parametrize("mode", ["safe", "compat"])
def test_encrypted_push_to_an_account_refusing_plaintext_writes_no_binding(source: WeChatSource, mode: str) -> None:
    # msg_signature covers the ciphertext: no other message can ride on these signatures,
    # so the binding's write would buy nothing
    binding = _CountingBinding()
    assert source.receive(signed(mode=mode), _bound_account(source, binding)).messages == [FOLLOW_FIELDS]
    assert binding.bound == {}


def test_an_account_accepting_plaintext_binds_its_encrypted_pushes(source: WeChatSource) -> None:
    # the genuine safe-mode push binds its signature, so the same signature stripped of
    # encrypt_type and msg_signature cannot then carry a forged plaintext body
    binding = _CountingBinding()
    genuine = signed(mode="safe")
    assert source.receive(genuine, _bound_account(source, binding, requireEncryption=False)).messages
    assert len(binding.bound) == 1
    forged_xml = FOLLOW.replace(OPENID, "oForgedOpenid0000000000000")
    downgraded = request(
        urlencode({k: v for k, v in genuine.query.items() if k not in ("encrypt_type", "msg_signature")}),
        forged_xml.encode(),
    )
    with pytest.raises(Unauthorized) as caught:
        source.receive(downgraded, _bound_account(source, binding, requireEncryption=False))
    assert caught.value.code == "signature_reused"


def test_plaintext_pushes_bind(source: WeChatSource) -> None:
    binding = _CountingBinding()
    plain = signed(mode="plain", secret=PLAIN_SECRET)
    account_ = Account("wechat", "demo", source.mapping, PLAIN_SECRET, signature_binding=binding)
    assert source.receive(plain, account_).messages == [FOLLOW_FIELDS]
    assert len(binding.bound) == 1
    other = request(plain.raw_query, FOLLOW.replace(OPENID, "oOtherOpenid000000000000000").encode())
    with pytest.raises(Unauthorized) as caught:
        source.receive(other, account_)
    assert caught.value.code == "signature_reused"


def test_require_encryption_from_mapping_options() -> None:
    text = _wechat_yaml().read_text(encoding="utf-8").replace("options:\n", "options:\n  require_encryption: true\n")
    strict = build(parse_source_mapping(text, "<test>"))
    with pytest.raises(Forbidden):
        strict.receive(signed(mode="plain"), account(strict, {"token": "pamtest"}))
    # the secret wins over the mapping default
    assert strict.receive(signed(mode="plain"), account(strict, requireEncryption=False)).messages
    lax = build(parse_source_mapping(text.replace("require_encryption: true", "require_encryption: false"), "<test>"))
    assert lax.receive(signed(mode="plain"), account(lax)).messages


def test_key_rotation(source: WeChatSource) -> None:
    old_request = signed()  # encrypted with the demo key
    rotated = {**SECRET, "encodingAesKey": "N" * 43, "previousEncodingAesKey": SECRET["encodingAesKey"]}
    inbound = source.receive(old_request, account(source, rotated))
    assert inbound.messages == [FOLLOW_FIELDS]
    assert inbound.context["keyIndex"] == 1
    with pytest.raises(BadRequest):
        source.receive(old_request, account(source, {**SECRET, "encodingAesKey": "N" * 43}))


# -- bad bodies ----------------------------------------------------------------------------------


def test_wrong_appid_after_decryption(source: WeChatSource) -> None:
    # one answer for every decryption failure (no padding oracle), whatever failed
    with pytest.raises(BadRequest, match="could not be decrypted") as caught:
        source.receive(signed(), account(source, appId="wx0000000000000000"))
    assert caught.value.code == "decrypt_failed"


def _aes_request(envelope: str, encrypted: str) -> WebhookRequest:
    query = urlencode({"signature": wc.sign("pamtest", str(NOW), "7"), "timestamp": NOW, "nonce": "7",
                       "encrypt_type": "aes", "msg_signature": wc.sign("pamtest", str(NOW), "7", encrypted)})
    return request(query, envelope.encode())


def _envelope(encrypted: str, to: str = GH) -> str:
    return f"<xml><ToUserName><![CDATA[{to}]]></ToUserName><Encrypt><![CDATA[{encrypted}]]></Encrypt></xml>"


@pytest.mark.parametrize(
    ("encrypted", "reason"),
    [
        ("QUFBQUFBQUFBQUFBQUFB", "multiple of 16"),  # 15 bytes
        (base64.b64encode(b"A" * 33).decode(), "multiple of 16"),
        ("QUFBQUFBQUFBQUFBQUFBQQ==", "padding"),  # 16 bytes of garbage
        ("!!!!", "base64"),
    ],
)
def test_undecryptable_encrypt_is_400(source: WeChatSource, encrypted: str, reason: str) -> None:
    # the crypto layer knows why; the caller gets one answer for all (no padding oracle)
    with pytest.raises(wc.DecryptError, match=reason):
        wc.decrypt(encrypted, SECRET["encodingAesKey"], SECRET["appId"])
    with pytest.raises(BadRequest) as caught:
        source.receive(_aes_request(_envelope(encrypted), encrypted), account(source))
    assert caught.value.to_body() == {"error": "decrypt_failed",
                                      "message": "Encrypt could not be decrypted with this account's key"}


def test_inner_to_user_name_must_match_the_envelope(source: WeChatSource) -> None:
    encrypted = wc.encrypt(FOLLOW, SECRET["encodingAesKey"], SECRET["appId"])
    with pytest.raises(BadRequest, match="ToUserName"):
        source.receive(_aes_request(_envelope(encrypted, to="gh_000000000000"), encrypted), account(source))


@pytest.mark.parametrize("body", [BILLION_LAUGHS, XXE, INTERNAL_ENTITY])
def test_dtds_are_refused_in_the_inner_message(source: WeChatSource, body: str) -> None:
    encrypted = wc.encrypt(body, SECRET["encodingAesKey"], SECRET["appId"])
    with pytest.raises(BadRequest, match="DTD"):
        source.receive(_aes_request(_envelope(encrypted), encrypted), account(source))


@pytest.mark.parametrize("body", [BILLION_LAUGHS, XXE, INTERNAL_ENTITY])
def test_dtds_are_refused_in_plaintext_and_envelopes(source: WeChatSource, body: str) -> None:
    query = signed(mode="plain").raw_query
    with pytest.raises(BadRequest, match="DTD"):
        source.receive(request(query, body.encode()), account(source, PLAIN_SECRET))
    aes_query = signed().raw_query
    with pytest.raises(BadRequest, match="DTD"):
        source.receive(request(aes_query, body.encode()), account(source))


def test_missing_encrypt_is_400(source: WeChatSource) -> None:
    req = signed()
    with pytest.raises(BadRequest, match="no Encrypt"):
        source.receive(request(req.raw_query, FOLLOW.encode()), account(source))
    with pytest.raises(BadRequest, match="no Encrypt"):
        source.receive(request(req.raw_query, _envelope("").encode()), account(source))


@pytest.mark.parametrize(
    "body",
    [b"", b"not xml", b'{"ToUserName": "gh"}', b"<xml>", b"<root><a>1</a></root>", b"<xml>text only</xml>",
     b"\xff\xfe\x00<", b"<xml><MsgType>text</MsgType><MsgType>event</MsgType></xml>",
     b"<xml><Event><x>1</x></Event></xml>", b"<xml>" + b"<a>" * 20 + b"</a>" * 20 + b"</xml>"],
)
def test_malformed_plaintext_is_400(source: WeChatSource, body: bytes) -> None:
    with pytest.raises(BadRequest):
        source.receive(request(signed(mode="plain").raw_query, body), account(source, PLAIN_SECRET))


def test_unknown_encrypt_type(source: WeChatSource) -> None:
    with pytest.raises(BadRequest, match="encrypt_type"):
        source.receive(replace_query(signed(), encrypt_type="des"), account(source))


def test_body_cap(source: WeChatSource) -> None:
    padding = "x" * (64 * 1024)
    big = FOLLOW.replace("</xml>", f"<Pad>{padding}</Pad></xml>")
    with pytest.raises(PayloadTooLarge) as caught:
        source.receive(signed(big, mode="plain"), account(source))
    assert caught.value.status == 413
    with pytest.raises(PayloadTooLarge):
        source.parse_unverified(signed(big, mode="plain"), account(source))


@settings(max_examples=200, deadline=None)
@given(body=st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_arbitrary_plaintext_bodies_never_escape_as_non_webhook_errors(body: bytes) -> None:
    adapter = source_for("wechat")
    assert adapter is not None
    req = request(signed(mode="plain").raw_query, body)
    try:
        adapter.receive(req, Account("wechat", "demo", adapter.mapping, PLAIN_SECRET))
    except WebhookError as exc:
        assert exc.status == 400


@settings(max_examples=200, deadline=None)
@given(encrypted=st.text(alphabet=string.ascii_letters + string.digits + "+/= ", max_size=120))
def test_arbitrary_authentic_ciphertexts_are_400(encrypted: str) -> None:
    adapter = source_for("wechat")
    assert adapter is not None
    try:
        adapter.receive(_aes_request(_envelope(encrypted), encrypted), Account("wechat", "demo", adapter.mapping,
                                                                              SECRET))
    except WebhookError as exc:
        assert exc.status == 400
    else:
        pytest.fail("random ciphertext was accepted")


# -- XML shapes -----------------------------------------------------------------------------------


def test_cdata_whitespace_and_empty_elements() -> None:
    body = (
        "<xml>\n  <ToUserName><![CDATA[gh_1]]></ToUserName>\n"
        "  <Content><![CDATA[  two  spaces \n]]></Content>\n"
        "  <Split><![CDATA[a]]>b<![CDATA[c]]></Split>\n"
        "  <CreateTime>\n 1732780800 \n</CreateTime>\n"
        "  <Empty1/><Empty2></Empty2><Empty3><![CDATA[]]></Empty3>\n"
        "  <Escaped>&lt;b&gt; &amp; 优惠</Escaped>\n"
        "  <ScanCodeInfo><ScanType><![CDATA[qrcode]]></ScanType><ScanResult><![CDATA[1]]></ScanResult></ScanCodeInfo>\n"
        "  <SendPicsInfo><Count>2</Count><PicList><item><PicMd5Sum>a</PicMd5Sum></item>"
        "<item><PicMd5Sum>b</PicMd5Sum></item></PicList></SendPicsInfo>\n"
        "</xml>"
    )
    assert parse_xml(body) == {
        "ToUserName": "gh_1",
        "Content": "  two  spaces \n",
        "Split": "abc",
        "CreateTime": "1732780800",
        "Empty1": "", "Empty2": "", "Empty3": "",
        "Escaped": "<b> & 优惠",
        "ScanCodeInfo": {"ScanType": "qrcode", "ScanResult": "1"},
        "SendPicsInfo": {"Count": "2", "PicList": {"item": [{"PicMd5Sum": "a"}, {"PicMd5Sum": "b"}]}},
    }


def test_declared_encodings_are_honoured() -> None:
    body = '<?xml version="1.0" encoding="ISO-8859-1"?><xml><A>café</A></xml>'.encode("latin-1")
    assert parse_xml(body) == {"A": "café"}


# -- dry runs and replays -----------------------------------------------------------------------


def test_parse_unverified_decrypts_with_the_secret(source: WeChatSource) -> None:
    req = replace_query(signed(), signature="bad", msg_signature="bad")
    assert source.parse_unverified(req, account(source)).messages == [FOLLOW_FIELDS]


def test_parse_unverified_safe_mode_without_key_says_why(source: WeChatSource) -> None:
    with pytest.raises(BadRequest, match="encodingAesKey"):
        source.parse_unverified(signed(), account(source, None))


def test_parse_unverified_compat_without_key_uses_plaintext_copy(source: WeChatSource) -> None:
    [message] = source.parse_unverified(signed(mode="compat"), account(source, None)).messages
    assert message == FOLLOW_FIELDS


def test_parse_unverified_replays_stored_clear_text(source: WeChatSource) -> None:
    inbound = source.receive(signed(), account(source))
    replay = request("", inbound.payload)
    assert source.parse_unverified(replay, account(source, None)).messages == inbound.messages


def test_parse_unverified_refuses_a_get(source: WeChatSource) -> None:
    with pytest.raises(BadRequest, match="URL verification"):
        source.parse_unverified(request("", method="GET"), account(source))


# -- replies -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "outcome",
    [IngestOutcome(enqueued=1), IngestOutcome(skipped=1), IngestOutcome(unmapped=1), IngestOutcome(duplicates=1)],
)
def test_reply_is_success(source: WeChatSource, outcome: IngestOutcome) -> None:
    response = source.reply(signed(), outcome)
    assert (response.status, response.body) == (200, "success")
    assert response.content_type.startswith("text/plain")


@pytest.mark.parametrize("error", [Unauthorized("signature does not match"), PayloadTooLarge("big"), Forbidden("no")])
def test_error_reply_is_json(source: WeChatSource, error: WebhookError) -> None:
    response = source.error_reply(None, error)
    assert response.status == error.status
    assert response.content_type == "application/json"
    assert json.loads(response.body) == {"error": error.code, "message": error.message}


# -- client helper and config checks ---------------------------------------------------------------


def test_signed_request_shapes() -> None:
    raw_query, body = signed_request(SECRET, FOLLOW, "safe", timestamp=NOW, nonce="1320562132",
                                     random16="0123456789abcdef")
    query = dict(parse_qsl(raw_query))
    assert list(query) == ["signature", "timestamp", "nonce", "openid", "encrypt_type", "msg_signature"]
    assert query["openid"] == OPENID
    assert set(parse_xml(body)) == {"ToUserName", "Encrypt"}
    raw_query, body = signed_request(SECRET, FOLLOW, "compat", timestamp=NOW, nonce="1")
    assert set(parse_xml(body)) == {*FOLLOW_FIELDS, "Encrypt"}
    raw_query, body = signed_request(SECRET, FOLLOW, "plain", timestamp=NOW, nonce="1")
    assert "encrypt_type" not in raw_query and body == FOLLOW.encode()
    with pytest.raises(ValueError, match="mode"):
        signed_request(SECRET, FOLLOW, "aes", timestamp=NOW, nonce="1")  # type: ignore[arg-type]


def test_signed_request_escapes_cdata_terminators(source: WeChatSource) -> None:
    xml = FOLLOW.replace("<EventKey><![CDATA[]]></EventKey>", "<EventKey>a]]&gt;b</EventKey>")
    [message] = source.receive(signed(xml, mode="safe"), account(source)).messages
    assert message["EventKey"] == "a]]>b"


def test_wechatpy_decrypts_our_signed_request() -> None:
    from wechatpy.crypto import WeChatCrypto

    raw_query, body = signed_request(SECRET, FOLLOW, "safe", timestamp=NOW, nonce="42")
    query = dict(parse_qsl(raw_query))
    crypto = WeChatCrypto(SECRET["token"], SECRET["encodingAesKey"], SECRET["appId"])
    assert crypto.decrypt_message(body.decode(), query["msg_signature"], query["timestamp"], query["nonce"]) == FOLLOW


def test_packaged_mapping_passes_check_config(source: WeChatSource) -> None:
    assert check_config(source.mapping) == []


def _wechat_yaml() -> Path:
    path = mapping_path("wechat")
    assert path is not None
    return path


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (("format: xml", "format: json"), "reads XML"),
        (("options:\n", "options:\n  require_encryption: sometimes\n"), "true or false"),
        (("max_body_bytes: 65536", "max_body_bytes: 10"), "max_body_bytes"),
        (("timestamp_tolerance_seconds: 300", "timestamp_tolerance_seconds: 0"), "timestamp_tolerance_seconds"),
        (("options:\n", "options:\n  colour: blue\n"), "unknown option"),
        (("options:\n", "verification:\n  scheme: hmac\noptions:\n"), "verification"),
    ],
)
def test_check_config_problems(change: tuple[str, str], problem: str) -> None:
    text = _wechat_yaml().read_text(encoding="utf-8")
    assert change[0] in text
    with pytest.raises(MappingConfigError, match=problem):
        parse_source_mapping(text.replace(*change, 1), "<test>")
