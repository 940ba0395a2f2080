"""WeChat official-account pushes (``/webhooks/wechat/{account}``): plaintext, compatible and safe mode.

- ``GET``  URL verification: ``signature`` over token/timestamp/nonce, answered with the raw
  ``echostr`` (text/plain, nothing added).
- ``POST`` every message or event: ``signature`` always; with ``encrypt_type=aes`` also
  ``msg_signature`` over token/timestamp/nonce/``Encrypt``, then AES decryption
  (:mod:`.wechat_crypto`). Only the decrypted copy is trusted in compatible mode.
- A timestamp window (default ±300 s) limits replays of captured signatures.
- Bodies are parsed with defusedxml (no DTDs, no entities) into flat dicts of element text.
- Every authentic request is answered ``success``; refusals are JSON errors.

The account secret is ``{"token", "encodingAesKey", "appId"}`` plus the optional
``previousEncodingAesKey`` (key rotation), ``timestampToleranceSeconds`` and
``requireEncryption``. The mapping's ``options`` set defaults for every account
(``timestamp_tolerance_seconds``, ``require_encryption``, ``max_body_bytes``); the secret wins.
See ``docs/wechat.md``.
"""

from dmhub_adapter.sources.wechat.adapter import Mode, WeChatSource, build, check_config
from dmhub_adapter.sources.wechat.crypto import encrypt, sign
from dmhub_adapter.sources.wechat.signing import handshake_query, signed_request
from dmhub_adapter.sources.xml import parse_xml

__all__ = [
    "Mode",
    "WeChatSource",
    "build",
    "check_config",
    "encrypt",
    "handshake_query",
    "parse_xml",
    "sign",
    "signed_request",
]
