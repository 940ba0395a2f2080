"""WeChat signatures and AES: the published vectors, strict decryption, and wechatpy agreement."""

from __future__ import annotations

import base64
import string

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from hypothesis import given, settings
from hypothesis import strategies as st

from dmhub_adapter.sources.wechat import crypto as wc
from dmhub_adapter.sources.wechat import parse_xml

PAMTEST_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
PAMTEST_APPID = "wxb11529c136998cb6"
OFFICIAL_2024_ENCRYPT = (
    "+qdx1OKCy+5JPCBFWw70tm0fJGb2Jmeia4FCB7kao+/Q5c/ohsOzQHi8khUOb05JCpj0JB4RvQMkUyus8TPxLKJGQqcvZqzDpVzazhZv6J"
    "sXUnnR8XGT740XgXZUXQ7vJVnAG+tE8NUd4yFyjPy7GgiaviNrlCTj+l5kdfMuFUPpRSrfMZuMcp3Fn2Pede2IuQrKEYwKSqFIZoNqJ4M8"
    "EajAsjLY2km32IIjdf8YL/P50F7mStwntrA2cPDrM1kb6mOcfBgRtWygb3VIYnSeOBrebufAlr7F9mFUPAJGj04="
)
QR_INNER_XML = (
    "<xml><ToUserName><![CDATA[gh_7f083739789a]]></ToUserName><FromUserName><![CDATA[oia2TjjewbmiOUlr6X-1crbLOvLw]]>"
    "</FromUserName><CreateTime>1732780800</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[subscribe]]>"
    "</Event><EventKey><![CDATA[qrscene_campaign_2024_spring]]></EventKey><Ticket><![CDATA[gQH47joAAAAAAAAAASxodHRwO"
    "i8vd2VpeGluLnFxLmNvbS9xL2taZ2Z3TVRtNzJXV1Brb3ZhYmJJAAIEZ23sUwMEmm3sUw==]]></Ticket></xml>"
)
QR_ENCRYPT = (
    "Q3stYC6hdFzMh9T8HCvyDKq79SVQsUye+9UusyPomhwTvM0nz5H+nD06HUGbdFrVshuBxYnrR0WFPJaA1ot6o8B4DswPixaJ2oU2UAHok7BbXQ"
    "ziYHwlSW01QFXHdI+9DW0dwOXC8Chg2rX6iMsPc/lMsJaAjTITGmf/xrd97nQ5MLRdUwsud7VoQQ/r0iw9KIAyXrpvjlC4zVAkWtRQ1yCyIfdTD"
    "xGpEBPPXYZbwMJLmqfmXkBROZ8zbCcvZ6gFIYvI4ingGQFAyuUrOziiw2IE7wGPBOsTclnjeyfupIF4QuAd0giMovWMjS4pUAj529XtBXbvDWXo"
    "aM3dP5ozwq2yF9TBoUOrwTwMSz+d71yV8+1QbQ/GxgueXp2NatEsox0yvqlShNlQHnNH1oRiNIdFa3cRx6LDz3FFebx8I/n2VKDr5nbY2Zdx+D"
    "IreyXv3s6Ha5V734iRnsalacKEL7vh90i9cETD9jiWoSR/+Oti5/lF5q1fRSLM4QsG3qCz6YeoG5ldiOo+y1ALsNAZfr+YGOhtS9P5tU6PqFkL"
    "v2X2nqiJ1+EVrxwY71ewFH0QJbbtHH0hlmXmWUE5Se01cQQ4mArR9uW+9ww+6X5bP/BnGZtyoQpBbHtINYMd6WIs"
)


# -- §6.a plain signatures --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("token", "timestamp", "nonce", "expected"),
    [
        ("test", "1410685589", "test", "f21891de399b4e33a1a93c9a7b8a8fffb5a443ff"),
        ("AAAAA", "1714036504", "1514711492", "f464b24fc39322e44b38aa78f5edd27bd1441696"),
        ("AAAAA", "1714037059", "486452656", "899cf89e464efb63f54ddac96b0a0a235f53aa78"),
        ("AAAAA", "1714112445", "415670741", "6c5c811b55cc85e0e1b54100749188c20beb3f5d"),
        ("mktToken2024", "1732780000", "1514711492", "cd5cbdbafa845d4050d7f007d73e63eebc25649d"),
        ("mktToken2024", "1732780861", "872301954", "1cf789568e1865f653f6e9205c4ea5d6416524a0"),
    ],
)
def test_plain_signature_vectors(token: str, timestamp: str, nonce: str, expected: str) -> None:
    assert wc.sign(token, timestamp, nonce) == expected
    assert wc.check_signature(expected, token, timestamp, nonce)
    assert wc.check_signature(expected.upper(), token, timestamp, nonce)


def test_signature_off_by_one_digit_is_rejected() -> None:
    assert not wc.check_signature("f21891de399b4e33a1a93c9a7b8a8fffb5a443fe", "test", "1410685589", "test")


@pytest.mark.parametrize("signature", ["", None, "é" * 40, "f21891de"])
def test_missing_or_malformed_signature_is_rejected(signature: str | None) -> None:
    assert not wc.check_signature(signature, "test", "1410685589", "test")


def test_missing_timestamp_or_nonce_fails() -> None:
    good = wc.sign("test", "1410685589", "test")
    assert not wc.check_signature(good, "test", "", "test")
    assert not wc.check_signature(good, "test", "1410685589", "")


def test_empty_token_is_refused() -> None:
    # With an empty token anybody can compute the signature from the public query values.
    with pytest.raises(ValueError, match="empty"):
        wc.check_signature(wc.sign("", "1", "2"), "", "1", "2")


# -- §6.b official 2024 safe-mode vector (JSON message) ----------------------------------------


def test_official_2024_safe_mode_vector() -> None:
    assert wc.check_signature(
        "046e02f8204d34f8ba5fa3b1db94908f3df2e9b3", "AAAAA", "1714112445", "415670741", OFFICIAL_2024_ENCRYPT
    )
    message = wc.decrypt(OFFICIAL_2024_ENCRYPT, "A" * 43, "wxba5fad812f8e6fb9")
    assert len(message) == 167
    assert message == (
        b'{"ToUserName":"gh_97417a04a28d","FromUserName":"o9AgO5Kd5ggOC-bXrbNODIiE3bGY","CreateTime":1714112445,'
        b'"MsgType":"event","Event":"debug_demo","debug_str":"hello world"}'
    )
    with pytest.raises(wc.AppIdMismatch):
        wc.decrypt(OFFICIAL_2024_ENCRYPT, "A" * 43, "wxba5fad812f8e6fb8")


def test_official_2024_reply_vector() -> None:
    encrypted = wc.encrypt('{"demo_resp":"good luck"}', "A" * 43, "wxba5fad812f8e6fb9", random16="707722b803182950")
    assert encrypted == (
        "ELGduP2YcVatjqIS+eZbp80MNLoAUWvzzyJxgGzxZO/5sAvd070Bs6qrLARC9nVHm48Y4hyRbtzve1L32tmxSQ=="
    )
    assert wc.sign("AAAAA", "1713424427", "415670741", encrypted) == "1b9339964ed2e271e7c7b6ff2b0ef902fc94dea1"


# -- §6.c Tencent's WXBizMsgCrypt sample (the abcdefg… key) -----------------------------------


def test_pamtest_key_derivation() -> None:
    assert wc.aes_key(PAMTEST_KEY).hex() == "69b71d79f8218a39259a7a29aabb2dbafc31cb3d35db7e39ebbf3d0010831051"


def test_pamtest_sample_encrypts_to_the_published_ciphertext() -> None:
    encrypted = wc.encrypt("我是中文abcd123", PAMTEST_KEY, PAMTEST_APPID, random16=b"aaaabbbbccccdddd")
    assert encrypted == "jn1L23DB+6ELqJ+6bruv21Y6MD7KeIfP82D6gU39rmkgczbWwt5+3bnyg5K55bgVtVzd832WzZGMhkP72vVOfg=="
    assert wc.sign("pamtest", "1409304348", "xxxxxx", encrypted) == "82c962d39941aa48552f90ef55aa323dc620cc10"
    assert wc.decrypt(encrypted, PAMTEST_KEY, PAMTEST_APPID).decode("utf-8") == "我是中文abcd123"


# -- §6.d constructed safe-mode QR follow --------------------------------------------------------


def test_qr_follow_vector() -> None:
    assert wc.sign("pamtest", "1732780801", "1320562132") == "6b1f7962247639160e9a58bb19ec3647f971d62c"
    encrypted = wc.encrypt(QR_INNER_XML, PAMTEST_KEY, PAMTEST_APPID, random16="0123456789abcdef")
    assert encrypted == QR_ENCRYPT
    assert wc.sign("pamtest", "1732780801", "1320562132", QR_ENCRYPT) == "178dd9861be73a67c94588e7f9a72e9d8d7b367d"
    assert wc.decrypt(QR_ENCRYPT, PAMTEST_KEY, PAMTEST_APPID) == QR_INNER_XML.encode("utf-8")


def test_tampered_encrypt_fails_the_msg_signature() -> None:
    tampered = ("R" if QR_ENCRYPT[0] != "R" else "S") + QR_ENCRYPT[1:]
    assert not wc.check_signature(
        "178dd9861be73a67c94588e7f9a72e9d8d7b367d", "pamtest", "1732780801", "1320562132", tampered
    )


# -- §6.f negative decryption cases --------------------------------------------------------------


def _raw_encrypt(plain: bytes, encoding_aes_key: str = PAMTEST_KEY) -> str:
    """AES-CBC over bytes we choose, so padding and length fields can be broken on purpose."""
    key = wc.aes_key(encoding_aes_key)
    encryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).encryptor()
    return base64.b64encode(encryptor.update(plain) + encryptor.finalize()).decode()


def _full(message: bytes, app_id: bytes = PAMTEST_APPID.encode(), length: int | None = None) -> bytes:
    size = len(message) if length is None else length
    return b"R" * 16 + size.to_bytes(4, "big") + message + app_id


def test_wrong_appid_tail() -> None:
    encrypted = wc.encrypt("<xml/>", PAMTEST_KEY, "wx0000000000000000")
    with pytest.raises(wc.AppIdMismatch, match="appid"):
        wc.decrypt(encrypted, PAMTEST_KEY, PAMTEST_APPID)


@pytest.mark.parametrize(
    ("encrypted", "reason"),
    [
        (base64.b64encode(b"x" * 15).decode(), "multiple of 16"),
        (base64.b64encode(b"x" * 33).decode(), "multiple of 16"),
        ("", "multiple of 16"),
        ("not base64!", "base64"),
        ("abc def" + "A" * 17, "space"),
        ("密文", "base64"),
    ],
)
def test_malformed_ciphertext(encrypted: str, reason: str) -> None:
    with pytest.raises(wc.DecryptError, match=reason):
        wc.decrypt(encrypted, PAMTEST_KEY, PAMTEST_APPID)


@pytest.mark.parametrize(
    "tail",
    [
        b"\x00",  # pad byte 0
        bytes([33]),  # pad byte above 32
        b"\x05\x05\x05\x04\x05",  # inconsistent pad bytes
    ],
)
def test_bad_padding(tail: bytes) -> None:
    body = _full(b"<xml/>")
    filler = (-(len(body) + len(tail))) % 32
    plain = body + b"\x01" * filler + tail
    with pytest.raises(wc.DecryptError, match="padding"):
        wc.decrypt(_raw_encrypt(plain), PAMTEST_KEY, PAMTEST_APPID)


def test_padding_longer_than_the_data_is_refused() -> None:
    with pytest.raises(wc.DecryptError, match="padding"):
        wc.unpad(bytes([32]) * 16)


def test_length_field_larger_than_the_payload() -> None:
    plain = wc.pad(_full(b"<xml/>", length=4096))
    with pytest.raises(wc.DecryptError, match="length field"):
        wc.decrypt(_raw_encrypt(plain), PAMTEST_KEY, PAMTEST_APPID)


def test_data_shorter_than_the_header() -> None:
    with pytest.raises(wc.DecryptError, match="shorter"):
        wc.decrypt(_raw_encrypt(wc.pad(b"R" * 10)), PAMTEST_KEY, PAMTEST_APPID)


def test_wrong_key_does_not_decrypt() -> None:
    other = "B" * 43
    with pytest.raises(wc.DecryptError):
        wc.decrypt(QR_ENCRYPT, other, PAMTEST_APPID)


@pytest.mark.parametrize("key", ["", "A" * 42, "A" * 44, "A" * 42 + "=", "A" * 42 + "+", 12345])
def test_invalid_encoding_aes_key(key: object) -> None:
    with pytest.raises(wc.InvalidKey):
        wc.aes_key(key)  # type: ignore[arg-type]


def test_key_rotation_tries_the_previous_key() -> None:
    new = "N" * 43
    message, index = wc.decrypt_with_any(QR_ENCRYPT, [new, PAMTEST_KEY], PAMTEST_APPID)
    assert (message, index) == (QR_INNER_XML.encode(), 1)
    assert wc.decrypt_with_any(QR_ENCRYPT, [PAMTEST_KEY, new], PAMTEST_APPID)[1] == 0
    with pytest.raises(wc.DecryptError):
        wc.decrypt_with_any(QR_ENCRYPT, [new, "M" * 43], PAMTEST_APPID)
    with pytest.raises(wc.InvalidKey):
        wc.decrypt_with_any(QR_ENCRYPT, [], PAMTEST_APPID)


def test_random16_must_be_16_bytes() -> None:
    with pytest.raises(ValueError, match="16"):
        wc.encrypt("x", PAMTEST_KEY, PAMTEST_APPID, random16=b"short")


def test_encryption_is_randomised_by_default() -> None:
    first, second = (wc.encrypt("<xml/>", PAMTEST_KEY, PAMTEST_APPID) for _ in range(2))
    assert first != second
    assert wc.decrypt(first, PAMTEST_KEY, PAMTEST_APPID) == wc.decrypt(second, PAMTEST_KEY, PAMTEST_APPID)


@given(st.binary(max_size=200))
def test_pad_is_32_byte_pkcs7_and_round_trips(data: bytes) -> None:
    padded = wc.pad(data)
    assert len(padded) % 32 == 0
    assert 1 <= padded[-1] <= 32
    assert wc.unpad(padded) == data


# -- cross-check with wechatpy (test-only dependency) ---------------------------------------------

ALNUM = string.ascii_letters + string.digits
keys = st.text(alphabet=ALNUM, min_size=43, max_size=43)
app_ids = st.text(alphabet=ALNUM, min_size=1, max_size=32)
messages = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=300)
tokens = st.text(alphabet=ALNUM, min_size=3, max_size=32)


@settings(max_examples=150, deadline=None)
@given(key=keys, app_id=app_ids, message=messages)
def test_our_encryption_decrypts_with_wechatpy(key: str, app_id: str, message: str) -> None:
    from wechatpy.crypto import PrpCrypto

    encrypted = wc.encrypt(message, key, app_id)
    assert PrpCrypto(wc.aes_key(key)).decrypt(encrypted, app_id) == message


@settings(max_examples=150, deadline=None)
@given(key=keys, app_id=app_ids, message=messages)
def test_wechatpy_encryption_decrypts_with_ours(key: str, app_id: str, message: str) -> None:
    from wechatpy.crypto import PrpCrypto

    encrypted = PrpCrypto(wc.aes_key(key)).encrypt(message, app_id).decode()
    assert wc.decrypt(encrypted, key, app_id) == message.encode("utf-8")


@settings(max_examples=60, deadline=None)
@given(token=tokens, key=keys, app_id=app_ids, timestamp=st.integers(1, 2**31).map(str),
       nonce=st.text(alphabet=string.digits, min_size=1, max_size=10), message=messages)
def test_wechatpy_message_envelope_verifies_and_decrypts_with_ours(
    token: str, key: str, app_id: str, timestamp: str, nonce: str, message: str
) -> None:
    from wechatpy.crypto import WeChatCrypto
    from wechatpy.utils import check_signature

    envelope = WeChatCrypto(token, key, app_id).encrypt_message(message, nonce, timestamp)
    fields = parse_xml(envelope)
    assert wc.check_signature(fields["MsgSignature"], token, fields["TimeStamp"], fields["Nonce"], fields["Encrypt"])
    assert wc.decrypt(fields["Encrypt"], key, app_id) == message.encode("utf-8")
    check_signature(token, wc.sign(token, timestamp, nonce), timestamp, nonce)  # raises when they disagree
