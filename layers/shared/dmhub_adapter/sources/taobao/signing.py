"""TOP signing: the signature a Taobao relay puts on a forwarded message, and its verifier's
primitive (``top_sign``). Shared by the adapter (:mod:`.adapter`) and by relays, tests,
samples and benchmarks.

``md5``: ``MD5(secret + k1v1k2v2… + body + secret)``; ``hmac`` / ``hmac-sha256``: the HMAC of
``k1v1k2v2… + body`` keyed by the secret, over the query parameters except ``sign``, sorted.

Two variants real senders use, both accepted by the adapter:

- ``timestamp`` as epoch milliseconds (the official Python TOP SDK) besides the GMT+8
  ``yyyy-MM-dd HH:mm:ss`` text (:func:`parse_timestamp`);
- SpiUtils-style signers (``com.taobao.api.internal.spi.SpiUtils``) also sign the headers named
  in a comma-separated ``top-sign-list`` header: each named header joins the sorted parameters
  under the name as written in the list, its value URL-decoded in the request charset (an
  absent or empty header signs as the bare name) (:func:`sign_list_params`).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal
from urllib.parse import unquote_plus, urlencode

from dmhub_adapter.mapping.converters import GMT8, parse_gmt8

SignMethod = Literal["md5", "hmac", "hmac-sha256"]
SIGN_METHODS: tuple[SignMethod, ...] = ("md5", "hmac", "hmac-sha256")
TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S"
#: the header naming further signed headers (SpiUtils)
SIGN_LIST_HEADER = "top-sign-list"
#: more names than this is not a signer's list but an attempt to make us work
MAX_SIGNED_HEADERS = 32


def parse_timestamp(value: str) -> float:
    """Epoch seconds of a TOP ``timestamp``: GMT+8 ``yyyy-MM-dd HH:mm:ss`` (``+`` for the space
    accepted) or 13-digit epoch milliseconds; raises ValueError for anything else."""
    text = value.strip()
    if text.isascii() and text.isdigit() and len(text) == 13:
        return int(text) / 1000
    return parse_gmt8(text).timestamp()


def sign_list_params(headers: Mapping[str, str], charset: str = "utf-8") -> dict[str, str]:
    """The headers a ``top-sign-list`` names, as SpiUtils adds them to the signed parameters:
    ``{name as listed: URL-decoded value}`` (empty for an absent header). ``headers`` has
    lower-case names. Raises ValueError for an oversized list or a name listed twice."""
    listed = headers.get(SIGN_LIST_HEADER, "")
    names = [name.strip() for name in listed.split(",") if name.strip()] if listed else []
    if len(names) > MAX_SIGNED_HEADERS:
        raise ValueError(f"{SIGN_LIST_HEADER} names more than {MAX_SIGNED_HEADERS} headers")
    params: dict[str, str] = {}
    for name in names:
        if name in params:
            raise ValueError(f"{SIGN_LIST_HEADER} names {name[:64]!r} twice")
        value = headers.get(name.lower(), "")
        params[name] = unquote_plus(value, encoding=charset, errors="strict") if value else ""
    return params


def _canonical(params: Mapping[str, Any], *, keep_empty: bool) -> str:
    # Byte-order sort, as the TOP SDKs do; ``sign`` itself is never signed.
    parts = []
    for key in sorted(params):
        value = params[key]
        if key == "sign" or not key:
            continue
        if value is None or value == "":
            # The TOP SDK signer drops empty values; the SPI verifier keeps the key. Both exist.
            if keep_empty:
                parts.append(key)
            continue
        parts.append(f"{key}{value}")
    return "".join(parts)


def _digest(text: str, secret: str, method: str, charset: str) -> str:
    if method == "md5":
        return hashlib.md5(f"{secret}{text}{secret}".encode(charset)).hexdigest().upper()
    if method == "hmac":
        return hmac.new(secret.encode(charset), text.encode(charset), hashlib.md5).hexdigest().upper()
    if method == "hmac-sha256":
        return hmac.new(secret.encode(charset), text.encode(charset), hashlib.sha256).hexdigest().upper()
    raise ValueError(f"unknown sign_method {method!r}; use one of {', '.join(SIGN_METHODS)}")


def top_sign(
    params: Mapping[str, Any],
    secret: str,
    method: str = "md5",
    body: str | bytes | None = None,
    *,
    charset: str = "utf-8",
    keep_empty: bool = False,
) -> str:
    """The TOP signature (upper-case hex) of query ``params`` (``sign`` excluded) and ``body``.

    ``md5``: ``MD5(secret + k1v1k2v2… + body + secret)``; ``hmac`` / ``hmac-sha256``: the HMAC
    of ``k1v1k2v2… + body`` keyed by the secret. A bytes ``body`` is decoded in ``charset`` and
    the whole string is hashed in ``charset``, which is how GBK bodies are signed.
    """
    text = _canonical(params, keep_empty=keep_empty)
    if body is not None:
        text += body.decode(charset) if isinstance(body, bytes) else body
    return _digest(text, secret, method, charset)


def format_timestamp(moment: datetime | float | None = None) -> str:
    """A TOP timestamp: GMT+8 ``yyyy-MM-dd HH:mm:ss`` (now, an epoch, or an aware datetime)."""
    if moment is None:
        moment = time.time()
    if isinstance(moment, (int, float)):
        moment = datetime.fromtimestamp(moment, tz=GMT8)
    if moment.tzinfo is None:
        raise ValueError("timestamp datetimes must be timezone-aware")
    return moment.astimezone(GMT8).strftime(TIMESTAMP_FORMAT)


def signed_request(
    secret: Mapping[str, Any],
    body_bytes: bytes,
    sign_method: str = "md5",
    timestamp: datetime | float | str | None = None,
    *,
    charset: str = "utf-8",
    extra_params: Mapping[str, str] | None = None,
) -> str:
    """The complete signed query string a relay appends to the webhook URL.

    ``secret`` is the account's secret (``{"appKey", "appSecret"}``); ``timestamp`` defaults to
    now and may be an epoch, an aware datetime or a ready TOP timestamp string.
    """
    stamp = timestamp if isinstance(timestamp, str) else format_timestamp(timestamp)
    params: dict[str, str] = {
        "app_key": str(secret["appKey"]),
        "format": "json",
        "sign_method": sign_method,
        "timestamp": stamp,
        "v": "2.0",
        **(extra_params or {}),
    }
    params["sign"] = top_sign(params, str(secret["appSecret"]), sign_method, body_bytes, charset=charset)
    return urlencode(sorted(params.items()))


