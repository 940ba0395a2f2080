"""The sending side of the WeChat push protocol: signed requests as WeChat makes them.

Used by the local stack's samples, the ``send`` command, benchmarks and tests; the verifier
(:mod:`.adapter`) checks what these produce with the same primitives of :mod:`.crypto`.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from dmhub_adapter.mapping.plan import MappingPlan
from dmhub_adapter.sources.base import SignedParts
from dmhub_adapter.sources.wechat.adapter import Mode, _text
from dmhub_adapter.sources.wechat.crypto import encrypt, sign
from dmhub_adapter.sources.xml import parse_xml


def _cdata(text: str) -> str:
    return "<![CDATA[" + text.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def _nonce() -> str:
    return str(secrets.randbelow(9 * 10**9) + 10**9)


def handshake_query(token: str, echostr: str, *, timestamp: int | str | None = None, nonce: str | None = None
                    ) -> str:
    """The query string of WeChat's URL-verification GET."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    nonce = nonce or _nonce()
    return urlencode({"signature": sign(token, ts, nonce), "timestamp": ts, "nonce": nonce, "echostr": echostr})


def signed_request(
    secret: Mapping[str, Any],
    xml_body: str | bytes,
    mode: Mode = "safe",
    timestamp: int | str | None = None,
    nonce: str | None = None,
    *,
    random16: bytes | str | None = None,
) -> tuple[str, bytes]:
    """A complete signed POST as WeChat sends it: ``(raw_query, body)``.

    ``secret`` is the account secret (token; encodingAesKey and appId for safe/compat mode),
    ``xml_body`` the plaintext message. The query's ``openid`` is the body's FromUserName.
    """
    token = str(secret["token"])
    ts = str(int(time.time()) if timestamp is None else timestamp)
    nonce = nonce or _nonce()
    text = xml_body.decode("utf-8") if isinstance(xml_body, bytes) else xml_body
    fields = parse_xml(text)
    query: list[tuple[str, str]] = [
        ("signature", sign(token, ts, nonce)),
        ("timestamp", ts),
        ("nonce", nonce),
        ("openid", _text(fields.get("FromUserName"))),
    ]
    if mode == "plain":
        return urlencode(query), text.encode("utf-8")
    if mode not in ("safe", "compat"):
        raise ValueError(f"mode must be 'plain', 'compat' or 'safe', got {mode!r}")
    encrypted = encrypt(text, str(secret["encodingAesKey"]), str(secret["appId"]), random16)
    if mode == "safe":
        body = (f"<xml><ToUserName>{_cdata(_text(fields.get('ToUserName')))}</ToUserName>"
                f"<Encrypt>{_cdata(encrypted)}</Encrypt></xml>")
    else:
        end = text.rstrip().rfind("</xml>")
        if end < 0:
            raise ValueError("xml_body must end with </xml>")
        body = f"{text[:end]}<Encrypt>{_cdata(encrypted)}</Encrypt></xml>"
    query += [("encrypt_type", "aes"), ("msg_signature", sign(token, ts, nonce, encrypted))]
    return urlencode(query), body.encode("utf-8")


def sign_request(mapping: MappingPlan, secret: Mapping[str, Any], body: bytes, headers: Mapping[str, str],
                 query: Mapping[str, str], now: float) -> SignedParts:
    """``body`` (a plaintext push) signed as WeChat sends it: encrypted in safe mode when the
    secret has encodingAesKey and appId (``query`` ``encrypt_type=raw`` asks for plaintext)."""
    keyed = bool(secret.get("encodingAesKey") and secret.get("appId"))
    mode: Mode = "safe" if keyed and query.get("encrypt_type", "aes") != "raw" else "plain"
    raw_query, signed = signed_request(secret, body, mode, int(now))
    return SignedParts(body=signed, headers={"content-type": "text/xml", **headers}, raw_query=raw_query)
