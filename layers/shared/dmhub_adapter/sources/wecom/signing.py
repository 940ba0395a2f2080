"""What WeCom sends, built from an account's secret: for samples, the local stack and benchmarks.
(Tests use wechatpy's independent implementation instead.)"""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from dmhub_adapter.mapping.plan import MappingPlan
from dmhub_adapter.sources.base import SignedParts
from dmhub_adapter.sources.msgcrypt import encrypt, sign


def signed_push(secret: Mapping[str, Any], message_xml: str, *, now: float | None = None,
                agent_id: str = "1000002") -> tuple[str, bytes]:
    """(query string, body) of an encrypted callback carrying ``message_xml``."""
    timestamp = str(int(time.time() if now is None else now))
    nonce = str(secrets.randbelow(10**10))
    encrypted = encrypt(message_xml, str(secret["encodingAesKey"]), str(secret["corpId"]))
    query = urlencode({"msg_signature": sign(str(secret["token"]), timestamp, nonce, encrypted),
                       "timestamp": timestamp, "nonce": nonce})
    body = (f"<xml><ToUserName><![CDATA[{secret['corpId']}]]></ToUserName><Encrypt><![CDATA[{encrypted}]]>"
            f"</Encrypt><AgentID><![CDATA[{agent_id}]]></AgentID></xml>")
    return query, body.encode("utf-8")


def handshake_query(secret: Mapping[str, Any], reply: str, *, now: float | None = None) -> str:
    """The URL-verification query whose ``echostr`` decrypts to ``reply``."""
    timestamp = str(int(time.time() if now is None else now))
    nonce = str(secrets.randbelow(10**10))
    echostr = encrypt(reply, str(secret["encodingAesKey"]), str(secret["corpId"]))
    return urlencode({"msg_signature": sign(str(secret["token"]), timestamp, nonce, echostr),
                      "timestamp": timestamp, "nonce": nonce, "echostr": echostr})


def sign_request(mapping: MappingPlan, secret: Mapping[str, Any], body: bytes, headers: Mapping[str, str],
                 query: Mapping[str, str], now: float) -> SignedParts:
    """``body`` (the callback's plaintext XML) encrypted and signed as WeCom sends it (``send``)."""
    raw_query, signed = signed_push(secret, body.decode("utf-8"), now=now)
    return SignedParts(body=signed, headers={"content-type": "text/xml", **headers}, raw_query=raw_query)
