"""Taobao TMC messages forwarded by a relay and signed the TOP SPI way; the protocol is
documented in :mod:`dmhub_adapter.sources.taobao.adapter`."""

from dmhub_adapter.sources.taobao.adapter import (
    TaobaoSource,
    build,
    check_config,
    check_secret,
    secret_fields,
    sign_request,
)
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
    "check_secret",
    "format_timestamp",
    "secret_fields",
    "sign_request",
    "signed_request",
    "top_sign",
]
