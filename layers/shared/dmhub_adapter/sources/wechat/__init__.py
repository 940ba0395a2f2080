"""WeChat official-account pushes (plaintext, compatible and safe mode); the protocol is
documented in :mod:`dmhub_adapter.sources.wechat.adapter`."""

from dmhub_adapter.sources.wechat.adapter import (
    Mode,
    WeChatSource,
    build,
    check_config,
    check_secret,
    secret_fields,
)
from dmhub_adapter.sources.wechat.crypto import encrypt, sign
from dmhub_adapter.sources.wechat.signing import handshake_query, sign_request, signed_request
from dmhub_adapter.sources.xml import parse_xml

__all__ = [
    "Mode",
    "WeChatSource",
    "build",
    "check_config",
    "check_secret",
    "encrypt",
    "handshake_query",
    "parse_xml",
    "secret_fields",
    "sign",
    "sign_request",
    "signed_request",
]
