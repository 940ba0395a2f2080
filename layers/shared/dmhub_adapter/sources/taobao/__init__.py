"""Taobao order and refund messages (TMC), forwarded by a relay and signed the TOP SPI way.

Taobao pushes TMC messages over a WebSocket, never to a URL, so a relay (an ISV's TMC
consumer, an ERP) forwards each message to ``POST /webhooks/taobao/{account}``. The relay
signs like a TOP SPI / Qimen caller, with tools every Taobao integrator already has:

- query ``app_key`` (must equal the account's ``appKey``), ``timestamp`` (GMT+8
  ``yyyy-MM-dd HH:mm:ss``, within ±10 minutes by default), ``sign_method`` (``md5`` when
  absent, ``hmac`` or ``hmac-sha256``) and ``sign``;
- ``sign`` = upper-case hex of ``md5(secret + k1v1k2v2… + body + secret)`` over the query
  parameters except ``sign`` sorted by name, or the HMAC-MD5 / HMAC-SHA256 of
  ``k1v1k2v2… + body`` keyed by the secret; the body is the raw body text in the request's
  charset (UTF-8 unless the Content-Type declares another, e.g. GBK).

The body is one TMC message in the consume-API shape (``id``, ``topic``, ``pub_time``,
``pub_app_key``, ``user_id``, ``user_nick``, ``content``) or ``{"messages": [...]}``.
``content`` may be a JSON string (the usual case), an object, or base64 of gzip of JSON.
Messages are handed to the mapping engine with ``content`` decoded; Python ints keep the
19-digit ids exact. In a batch an invalid message is rejected on its own (by its index) and
the valid ones proceed; a single invalid message fails the request with 400.

The relay contract, with signing recipes, is in ``docs/taobao.md``.
"""

from dmhub_adapter.sources.taobao.adapter import TaobaoSource, build, check_config
from dmhub_adapter.sources.taobao.signing import (
    SIGN_METHODS,
    TIMESTAMP_FORMAT,
    SignMethod,
    format_timestamp,
    signed_request,
    top_sign,
)

__all__ = [
    "SIGN_METHODS",
    "TIMESTAMP_FORMAT",
    "SignMethod",
    "TaobaoSource",
    "build",
    "check_config",
    "format_timestamp",
    "signed_request",
    "top_sign",
]
