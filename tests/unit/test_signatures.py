"""The verification engine: published/worked vectors, Standard Webhooks against the independent
``standardwebhooks`` package, every refusal, and config errors that name their field."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypothesis import given, settings
from hypothesis import strategies as st
from standardwebhooks import Webhook, WebhookVerificationError

from dmhub_adapter.errors import Unauthorized, Unavailable
from dmhub_adapter.sources.generic.signatures import (
    NoVerification,
    SignatureScheme,
    SignedRequest,
    VerificationConfigError,
    parse_verification,
    sign,
    verify,
)

# Worked examples #6 and #7 of the research notes (md5 of id + exact body + secret).
YOUZAN_BODY = (
    b'{"client_id":"cid123","id":"E20240101000000000001","kdt_id":10001,'
    b'"msg":"%7B%22tid%22%3A%22E20240101000000000001%22%7D","type":"trade_TradePaid","status":"TRADE_PAID",'
    b'"version":1704067200,"test":false,"mode":1,"sendCount":0}'
)
YOUZAN_SECRET = {"clientId": "cid123", "clientSecret": "csecret456"}
DOUDIAN_BODY = (
    b'[{"tag":"101","msg_id":"10000000000000000001","data":"{\\"p_id\\":4837328765348566675,'
    b'\\"shop_id\\":77977,\\"order_status\\":2,\\"pay_amount\\":1990,\\"pay_time\\":1630373504}"}]'
)
DOUDIAN_SECRET = {"appKey": "7000000000000000001", "appSecret": "ddsecret"}

MD5_WRAPPED = {
    "scheme": "signature",
    "algorithm": "md5",
    "signature": {"header": "Event-Sign", "encoding": "hex-lower"},
    "signed": [{"secret": "clientId"}, "body", {"secret": "clientSecret"}],
}
WHSEC = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
STANDARD = {
    "scheme": "signature",
    "algorithm": "hmac-sha256",
    "key": {"secret": ["signingSecret", "previousSigningSecret"], "decode": "whsec"},
    "signature": {"header": "webhook-signature", "prefix": "v1,", "separator": " ", "encoding": "base64"},
    "timestamp": {"header": "webhook-timestamp", "format": "seconds", "tolerance": 300},
    "signed": [{"header": "webhook-id"}, {"literal": "."}, "timestamp", {"literal": "."}, "body"],
}
NOW = 1_718_712_102


def scheme(data: dict[str, Any]) -> SignatureScheme:
    parsed = parse_verification(data)
    assert isinstance(parsed, SignatureScheme)
    return parsed


def youzan_request(signature: str | None, body: bytes = YOUZAN_BODY) -> SignedRequest:
    headers = {"event-sign": signature} if signature is not None else {}
    return SignedRequest(body=body, headers=headers)


# ---- worked examples ------------------------------------------------------------------------


def test_youzan_worked_example() -> None:
    youzan = scheme(MD5_WRAPPED)
    assert sign(youzan, youzan_request(None), YOUZAN_SECRET) == "b448a0c88c29c3a0016210a77d737396"
    verify(youzan, youzan_request("b448a0c88c29c3a0016210a77d737396"), YOUZAN_SECRET)
    # Hex case is presentation: the digest is what counts.
    verify(youzan, youzan_request("B448A0C88C29C3A0016210A77D737396"), YOUZAN_SECRET)


def test_doudian_worked_example() -> None:
    doudian = scheme({**MD5_WRAPPED, "signature": {"header": "event-sign"},
                      "signed": [{"secret": "appKey"}, "body", {"secret": "appSecret"}]})
    request = SignedRequest(body=DOUDIAN_BODY, headers={"event-sign": "94abcf954b466e379c884984470b2ad6"})
    assert sign(doudian, request, DOUDIAN_SECRET) == "94abcf954b466e379c884984470b2ad6"
    verify(doudian, request, DOUDIAN_SECRET)


def test_sorted_params_reproduce_the_top_documentation_vector() -> None:
    # TOP md5: secret + sorted k+v (without sign) + secret, upper hex — the docs' own example.
    top = scheme({
        "scheme": "signature",
        "algorithm": "md5",
        "signature": {"query": "sign", "encoding": "hex-upper"},
        "signed": [{"secret": "appSecret"}, {"sortedParams": {"from": "query", "exclude": ["sign"]}},
                   {"secret": "appSecret"}],
    })
    query = {
        "app_key": "12345678", "fields": "num_iid,title,nick,price,num", "format": "json",
        "method": "taobao.item.seller.get", "num_iid": "11223344", "session": "test",
        "sign_method": "md5", "timestamp": "2016-01-01 12:00:00", "v": "2.0",
    }
    request = SignedRequest(body=b"", query={**query, "sign": "66987CB115214E59E6EC978214934FB8"})
    assert sign(top, request, {"appSecret": "helloworld"}) == "66987CB115214E59E6EC978214934FB8"
    verify(top, request, {"appSecret": "helloworld"})


@pytest.mark.parametrize(
    ("algorithm", "encoding", "key", "data", "expected"),
    [
        # RFC 2202 test case 2 and RFC 4231 test case 2 ("Jefe").
        ("hmac-sha1", "hex", "Jefe", b"what do ya want for nothing?", "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"),
        ("hmac-md5", "hex", "Jefe", b"what do ya want for nothing?", "750c783e6ab0b503eaa86e310a5db738"),
        ("hmac-sha256", "hex", "Jefe", b"what do ya want for nothing?",
         "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"),
    ],
)
def test_hmac_rfc_vectors(algorithm: str, encoding: str, key: str, data: bytes, expected: str) -> None:
    hmac_scheme = scheme({"scheme": "signature", "algorithm": algorithm, "key": {"secret": "k"},
                          "signature": {"header": "x-sig", "encoding": encoding}, "signed": ["body"]})
    request = SignedRequest(body=data, headers={"x-sig": expected})
    assert sign(hmac_scheme, request, {"k": key}) == expected
    verify(hmac_scheme, request, {"k": key})


# ---- Standard Webhooks against the reference package ------------------------------------


def swh_headers(body: bytes, *, msg_id: str = "msg_p5jXN8AQM9LWM0D4loKWxJek", ts: int = NOW,
                secret: str = WHSEC) -> dict[str, str]:
    signature = Webhook(secret).sign(msg_id, datetime.fromtimestamp(ts, tz=UTC), body.decode())
    return {"webhook-id": msg_id, "webhook-timestamp": str(ts), "webhook-signature": signature}


@settings(max_examples=50, deadline=None)
@given(body=st.text(max_size=300), msg_id=st.text(alphabet="abcdefghijklmnop_0123456789", min_size=1, max_size=40))
def test_standard_webhooks_signatures_from_the_reference_package_verify(body: str, msg_id: str) -> None:
    raw = body.encode()
    verify(scheme(STANDARD), SignedRequest(body=raw, headers=swh_headers(raw, msg_id=msg_id), received_at=NOW),
           {"signingSecret": WHSEC})


def test_our_standard_webhooks_signature_verifies_with_the_reference_package() -> None:
    body = b'{"type":"invoice.paid","timestamp":"2024-01-01T00:00:00Z","data":{"id":"inv_1"}}'
    now = int(datetime.now(tz=UTC).timestamp())
    headers = {"webhook-id": "msg_1", "webhook-timestamp": str(now)}
    headers["webhook-signature"] = sign(scheme(STANDARD), SignedRequest(body=body, headers=headers),
                                        {"signingSecret": WHSEC})
    assert Webhook(WHSEC).verify(body, headers) == {"type": "invoice.paid", "timestamp": "2024-01-01T00:00:00Z",
                                                    "data": {"id": "inv_1"}}
    with pytest.raises(WebhookVerificationError):
        Webhook(WHSEC).verify(body + b" ", headers)


def test_rotation_any_listed_signature_passes_and_v1a_entries_are_skipped() -> None:
    body = b'{"type":"a.b"}'
    good = swh_headers(body)
    stale_key = swh_headers(body, secret="whsec_" + base64.b64encode(b"an-old-key-of-24-bytes!!").decode())
    headers = dict(good)
    headers["webhook-signature"] = " ".join([
        stale_key["webhook-signature"], "v1a,bm90LWVkMjU1MTk=", good["webhook-signature"],
    ])
    verify(scheme(STANDARD), SignedRequest(body=body, headers=headers, received_at=NOW), {"signingSecret": WHSEC})


def test_receiver_side_rotation_accepts_the_previous_key_until_it_is_removed() -> None:
    body = b'{"type":"a.b"}'
    old = "whsec_" + base64.b64encode(b"previous-key-previous-key").decode()
    headers = swh_headers(body, secret=old)
    request = SignedRequest(body=body, headers=headers, received_at=NOW)
    verify(scheme(STANDARD), request, {"signingSecret": WHSEC, "previousSigningSecret": old})
    with pytest.raises(Unauthorized, match="does not match"):
        verify(scheme(STANDARD), request, {"signingSecret": WHSEC})


def test_ed25519_v1a() -> None:
    private = Ed25519PrivateKey.generate()
    public = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    ed = scheme({**STANDARD, "algorithm": "ed25519", "key": {"secret": "publicKey", "decode": "whsec"},
                 "signature": {**STANDARD["signature"], "prefix": "v1a,"}})
    secret = {"publicKey": "whpk_" + base64.b64encode(public).decode()}
    body = b'{"type":"user.created"}'
    signed = f"msg_1.{NOW}.".encode() + body
    signature = "v1a," + base64.b64encode(private.sign(signed)).decode()
    headers = {"webhook-id": "msg_1", "webhook-timestamp": str(NOW),
               "webhook-signature": f"v1,AAAA {signature}"}
    verify(ed, SignedRequest(body=body, headers=headers, received_at=NOW), secret)
    with pytest.raises(Unauthorized, match="does not match"):
        verify(ed, SignedRequest(body=body + b"x", headers=headers, received_at=NOW), secret)


# ---- refusals --------------------------------------------------------------------------------


def test_missing_signature_is_401() -> None:
    with pytest.raises(Unauthorized, match="missing signature") as info:
        verify(scheme(MD5_WRAPPED), youzan_request(None), YOUZAN_SECRET)
    assert info.value.status == 401


@pytest.mark.parametrize("presented", ["", "b448a0c88c29c3a0016210a77d737397", "zz", "b448a0c8", "v1,abc"])
def test_bad_or_malformed_signature_is_401(presented: str) -> None:
    with pytest.raises(Unauthorized):
        verify(scheme(MD5_WRAPPED), youzan_request(presented), YOUZAN_SECRET)


def test_tampered_body_is_401() -> None:
    with pytest.raises(Unauthorized, match="does not match"):
        verify(scheme(MD5_WRAPPED), youzan_request("b448a0c88c29c3a0016210a77d737396", YOUZAN_BODY + b" "),
               YOUZAN_SECRET)


def test_wrong_secret_is_401() -> None:
    with pytest.raises(Unauthorized):
        verify(scheme(MD5_WRAPPED), youzan_request("b448a0c88c29c3a0016210a77d737396"),
               {**YOUZAN_SECRET, "clientSecret": "other"})


def test_only_entries_with_another_prefix_count_as_missing() -> None:
    body = b"{}"
    headers = {**swh_headers(body), "webhook-signature": "v1a,Zm9v v2,YmFy"}
    with pytest.raises(Unauthorized, match="missing signature"):
        verify(scheme(STANDARD), SignedRequest(body=body, headers=headers, received_at=NOW), {"signingSecret": WHSEC})


@pytest.mark.parametrize(("offset", "ok"), [(-300, True), (300, True), (-301, False), (301, False), (-86400, False)])
def test_timestamp_tolerance(offset: int, ok: bool) -> None:
    body = b"{}"
    request = SignedRequest(body=body, headers=swh_headers(body, ts=NOW + offset), received_at=NOW)
    if ok:
        verify(scheme(STANDARD), request, {"signingSecret": WHSEC})
    else:
        with pytest.raises(Unauthorized, match="tolerance") as info:
            verify(scheme(STANDARD), request, {"signingSecret": WHSEC})
        assert info.value.code == "stale_timestamp"


@pytest.mark.parametrize("value", [None, "", "yesterday", "-5", "1e9"])
def test_missing_or_malformed_timestamp_is_401(value: str | None) -> None:
    body = b"{}"
    headers = swh_headers(body)
    if value is None:
        del headers["webhook-timestamp"]
    else:
        headers["webhook-timestamp"] = value
    with pytest.raises(Unauthorized, match="timestamp"):
        verify(scheme(STANDARD), SignedRequest(body=body, headers=headers, received_at=NOW), {"signingSecret": WHSEC})


def test_millisecond_timestamps() -> None:
    ms = scheme({**STANDARD, "timestamp": {"header": "x-ts", "format": "milliseconds", "tolerance": 60},
                 "signed": [{"header": "x-ts"}, "body"]})
    secret = {"signingSecret": WHSEC}
    request = SignedRequest(body=b"x", headers={"x-ts": str(NOW * 1000 + 59_000)}, received_at=NOW)
    signature = sign(ms, request, secret)
    verify(ms, SignedRequest(body=b"x", headers={**request.headers, "webhook-signature": signature},
                             received_at=NOW), secret)
    late = {"x-ts": str(NOW * 1000 + 61_000)}
    signature = sign(ms, SignedRequest(body=b"x", headers=late), secret)
    with pytest.raises(Unauthorized, match="tolerance"):
        verify(ms, SignedRequest(body=b"x", headers={**late, "webhook-signature": signature}, received_at=NOW), secret)


def test_missing_signed_header_is_401_and_missing_secret_field_is_503() -> None:
    body = b"{}"
    headers = swh_headers(body)
    del headers["webhook-id"]
    with pytest.raises(Unauthorized, match="webhook-id"):
        verify(scheme(STANDARD), SignedRequest(body=body, headers=headers, received_at=NOW), {"signingSecret": WHSEC})
    with pytest.raises(Unavailable, match="clientSecret") as info:
        verify(scheme(MD5_WRAPPED), youzan_request("00"), {"clientId": "cid123"})
    assert info.value.status == 503
    assert "csecret" not in info.value.message


def test_no_secret_configured_is_503_and_scheme_none_passes() -> None:
    with pytest.raises(Unavailable):
        verify(scheme(MD5_WRAPPED), youzan_request("00"), None)
    none = parse_verification({"scheme": "none"})
    assert isinstance(none, NoVerification)
    verify(none, SignedRequest(body=b"anything"), None)


def test_compare_is_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    verify(scheme(MD5_WRAPPED), youzan_request("b448a0c88c29c3a0016210a77d737396"), YOUZAN_SECRET)
    assert calls and calls[0][0] == hashlib.md5(b"cid123" + YOUZAN_BODY + b"csecret456").digest()


def test_many_signatures_are_capped() -> None:
    body = b"{}"
    headers = swh_headers(body)
    headers["webhook-signature"] = " ".join(["v1,AAAA"] * 100 + [headers["webhook-signature"]])
    # The valid entry sits beyond the cap: refused, without checking a hundred candidates.
    with pytest.raises(Unauthorized):
        verify(scheme(STANDARD), SignedRequest(body=body, headers=headers, received_at=NOW), {"signingSecret": WHSEC})


# ---- config errors ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"algorithm": "sha3"}, "field 'verification.algorithm': unknown algorithm 'sha3'"),
        ({"algorithm": None}, "field 'verification.algorithm'"),
        ({"signature": None}, "field 'verification.signature'"),
        ({"signature": {"encoding": "hex"}}, "field 'verification.signature': give exactly one of header"),
        ({"signature": {"header": "x", "encoding": "base32"}},
         "field 'verification.signature.encoding': unknown encoding 'base32'"),
        ({"signed": []}, "field 'verification.signed'"),
        ({"signed": ["body", "bodies"]}, "field 'verification.signed.1': unknown part 'bodies'"),
        ({"signed": ["body"]}, "must contain a {secret: FIELD} part"),
        ({"algorithm": "hmac-sha256"}, "needs 'key'"),
        ({"key": {"secret": "clientSecret"}}, "takes no 'key'"),
        ({"signed": [{"secret": "s"}, "timestamp"]}, "needs a 'timestamp' block"),
        ({"timestamp": {"header": "t", "tolerance": 0}}, "field 'verification.timestamp.tolerance'"),
        ({"timestamp": {"header": "t", "format": "fortnights"}}, "field 'verification.timestamp.format'"),
        ({"colour": "blue"}, "field 'verification.colour'"),
        ({"charset": "klingon"}, "field 'verification.charset': unknown charset"),
        ({"scheme": "magic"}, "field 'verification.scheme': unknown scheme 'magic'"),
        ({"scheme": None}, "field 'verification.scheme': required"),
    ],
)
def test_config_errors_name_the_field(change: dict[str, Any], expected: str) -> None:
    data = {**MD5_WRAPPED, **change}
    data = {k: v for k, v in data.items() if v is not None}
    with pytest.raises(VerificationConfigError) as info:
        parse_verification(data)
    assert any(expected in problem for problem in info.value.problems), info.value.problems


def test_none_scheme_takes_nothing_else() -> None:
    with pytest.raises(VerificationConfigError, match=r"verification\.algorithm"):
        parse_verification({"scheme": "none", "algorithm": "md5"})
