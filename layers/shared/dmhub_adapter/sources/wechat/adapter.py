"""WeChat official-account pushes (``/webhooks/wechat/{account}``): plaintext, compatible and safe mode.

- ``GET``  URL verification: ``signature`` over token/timestamp/nonce, answered with the raw
  ``echostr`` (text/plain, nothing added).
- ``POST`` every message or event: ``signature`` always; with ``encrypt_type=aes`` also
  ``msg_signature`` over token/timestamp/nonce/``Encrypt``, then AES decryption
  (:mod:`.crypto`). Only the decrypted copy is trusted in compatible mode.
- A timestamp window (default ±300 s) limits replays of captured signatures; the message's own
  ``CreateTime`` (decrypted, or plaintext) must lie in the same window, so a captured signature
  whose timestamp and nonce are swapped (both signatures sort their inputs) carries nothing old.
- A (timestamp, nonce, signature) binds to the first body it arrives with
  (:mod:`dmhub_adapter.store.signature_binding`): the same request again is a redelivery,
  another body under it is refused. This holds wherever a plaintext body could ride on the
  signature: plaintext pushes, and every push to an account that accepts plaintext (a
  captured safe-mode signature stripped of ``encrypt_type`` would otherwise carry a forged
  plaintext body). An account that refuses plaintext (``requireEncryption``, the default
  when it has a key) binds nothing on encrypted pushes: ``msg_signature`` already ties the
  signature to the ciphertext. A POST carrying ``echostr`` (a URL-verification signature) is
  refused, and a handshake binds its signature too.
- Bodies are parsed with defusedxml (no DTDs, no entities) into flat dicts of element text.
- Every authentic request is answered ``success``; refusals are JSON errors.

The account secret is ``{"token", "encodingAesKey", "appId"}`` plus the optional
``previousEncodingAesKey`` (key rotation), ``timestampToleranceSeconds`` and
``requireEncryption``. The mapping's ``options`` set defaults for every account
(``timestamp_tolerance_seconds``, ``require_encryption``, ``max_body_bytes``); the secret wins.
See ``docs/wechat.md``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from typing import Any, Literal

from dmhub_adapter.errors import (
    BadRequest,
    Forbidden,
    Unauthorized,
    Unavailable,
    WebhookError,
)
from dmhub_adapter.mapping.plan import MappingPlan
from dmhub_adapter.records import record
from dmhub_adapter.sources.base import Account, Inbound, IngestOutcome, RequestNames
from dmhub_adapter.sources.payloads import check_size
from dmhub_adapter.sources.wechat import crypto as wechat_crypto
from dmhub_adapter.sources.xml import XmlError, parse_xml
from dmhub_adapter.store.signature_binding import Binder, binding_key, body_digest
from dmhub_adapter.webhook import WebhookRequest, WebhookResponse, json_response

DEFAULT_MAX_BODY_BYTES = 64 * 1024
DEFAULT_TIMESTAMP_TOLERANCE = 300
MAX_TIMESTAMP_TOLERANCE = 24 * 3600
MAX_ECHOSTR = 512
#: how long past its window a binding is kept when the nonce reads as a future Unix time: a
#: captured signature with timestamp and nonce swapped is valid again at that time, and only a
#: binding still present then refuses the other body it would carry (plaintext mode)
SWAP_GUARD_SECONDS = 400 * 86400
#: one answer for every decryption failure: distinct ones (padding, length, appid) would be a
#: CBC padding oracle for anyone holding the token but not the key
DECRYPT_FAILED = "Encrypt could not be decrypted with this account's key"

Mode = Literal["plain", "compat", "safe"]
#: accounts whose settings one adapter keeps (a container serves a handful)
_CONFIG_CACHE_MAX = 256

#: options a mapping file may set for every account (secrets may override the last two)
OPTION_TYPES: dict[str, type] = {
    "max_body_bytes": int,
    "timestamp_tolerance_seconds": int,
    "require_encryption": bool,
}
_TIMESTAMP_RE = re.compile(r"^[0-9]{1,12}$")


# --------------------------------------------------------------------------------------------
# Account configuration


@record(frozen=True)
class _Config:
    token: str
    aes_keys: list[str]
    app_id: str | None
    tolerance: int
    require_encryption: bool


def _option_int(value: Any, name: str, low: int, high: int) -> int:
    if isinstance(value, bool):
        raise ValueError(f"{name} must be an integer")
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        value = int(value.strip())
    if not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{name} must be an integer from {low} to {high}")
    return value


def _option_bool(value: Any, name: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise ValueError(f"{name} must be true or false")


def _account_config(account: Account, options: Mapping[str, Any]) -> _Config:
    """The account's verification settings; a missing or broken secret is our fault, not the
    caller's, so it is a 503 (WeChat retries once the operator fixed it)."""
    secret = account.secret
    if not secret:
        raise Unavailable(f"WeChat account {account.name!r} has no secret configured", code="account_misconfigured")
    token = secret.get("token")
    if isinstance(token, int) and not isinstance(token, bool):
        token = str(token)  # an all-digit token read from YAML
    if not isinstance(token, str) or not token:
        # An empty token makes every signature computable by anyone.
        raise Unavailable(f"WeChat account {account.name!r} has an empty token", code="account_misconfigured")
    keys = [secret.get(name) for name in ("encodingAesKey", "previousEncodingAesKey")]
    aes_keys = [key for key in keys if key]
    try:
        for key in aes_keys:
            wechat_crypto.aes_key(key)
        tolerance = _option_int(
            secret.get("timestampToleranceSeconds", options.get("timestamp_tolerance_seconds",
                                                                DEFAULT_TIMESTAMP_TOLERANCE)),
            "timestampToleranceSeconds", 1, MAX_TIMESTAMP_TOLERANCE,
        )
        # An account with an EncodingAESKey is in safe or compatible mode: a plaintext push to it
        # can only be a forgery riding on a captured signature, so it is refused unless the
        # account says otherwise.
        require = _option_bool(
            secret.get("requireEncryption", options.get("require_encryption", bool(aes_keys))),
            "requireEncryption",
        )
    except ValueError as exc:
        raise Unavailable(f"WeChat account {account.name!r}: {exc}", code="account_misconfigured") from exc
    app_id = secret.get("appId")
    return _Config(
        token=token,
        aes_keys=aes_keys,
        app_id=app_id if isinstance(app_id, str) and app_id else None,
        tolerance=tolerance,
        require_encryption=require,
    )


#: every field a WeChat account's secret may hold
SECRET_FIELDS = ("token", "encodingAesKey", "previousEncodingAesKey", "appId", "originalId",
                 "timestampToleranceSeconds", "requireEncryption")


def secret_fields(mapping: MappingPlan) -> list[str]:
    """Every field an account's secret may hold."""
    return list(SECRET_FIELDS)


def check_secret(mapping: MappingPlan, secret: Mapping[str, Any]) -> list[str]:
    """Problems with an account's secret, as a request would meet them (empty when usable):
    the token, the EncodingAESKeys (43 letters or digits), the tolerance and encryption flags."""
    problems: list[str] = []
    for name in ("encodingAesKey", "previousEncodingAesKey"):
        key = secret.get(name)
        if key:
            try:
                wechat_crypto.aes_key(key)
            except ValueError as exc:
                return [f"field {name!r}: {exc} (copy it again from the admin console, 基本配置)"]
    try:
        config = _account_config(Account(mapping.source, "check", mapping, secret), mapping.options or {})
    except Unavailable as exc:
        problems.append(exc.message.split(": ", 1)[-1] if ": " in exc.message else exc.message)
    else:
        if config.aes_keys and not config.app_id:
            problems.append("an account with encodingAesKey needs appId to decrypt pushes")
    return problems


def check_config(mapping: MappingPlan) -> list[str]:
    """Problems with the wechat-specific parts of a mapping file (used by check-config)."""
    problems = []
    if mapping.format != "xml":
        problems.append(f"field 'format': the wechat adapter reads XML, not {mapping.format!r}")
    for name in ("verification", "reply"):
        if getattr(mapping, name) is not None:
            problems.append(f"field {name!r}: the wechat adapter's {name} is fixed by the protocol; remove it")
    for name, value in mapping.options.items():
        if name not in OPTION_TYPES:
            problems.append(f"field 'options.{name}': unknown option; known: {', '.join(OPTION_TYPES)}")
            continue
        try:
            if name == "max_body_bytes":
                _option_int(value, name, 1024, 1024 * 1024)
            elif name == "timestamp_tolerance_seconds":
                _option_int(value, name, 1, MAX_TIMESTAMP_TOLERANCE)
            else:
                _option_bool(value, name)
        except ValueError as exc:
            problems.append(f"field 'options.{name}': {exc}")
    return problems


# --------------------------------------------------------------------------------------------
# The adapter


#: top-level elements WeChat always sends as text; mapping rules apply string functions to them
TEXT_FIELDS = frozenset(
    {"ToUserName", "FromUserName", "CreateTime", "MsgType", "Event", "EventKey", "MsgId", "MsgID", "Ticket",
     "Content", "Encrypt"}
)


def _parse(body: bytes, what: str) -> dict[str, Any]:
    try:
        message = parse_xml(body)
    except XmlError as exc:
        raise BadRequest(f"{what}: {exc}") from exc
    for name, value in message.items():
        if isinstance(value, list):
            raise BadRequest(f"{what}: element <{name}> is repeated")
        if name in TEXT_FIELDS and not isinstance(value, str):
            raise BadRequest(f"{what}: element <{name}> must hold text, not elements")
    return message


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


class WeChatSource:
    """The WeChat dialect; ``binding`` overrides where signature bindings are kept (tests)."""

    def __init__(self, mapping: MappingPlan, *, binding: Binder | None = None) -> None:
        self.name = mapping.source
        self.mapping = mapping
        self._binding = binding
        problems = check_config(mapping)
        if problems:
            raise ValueError("; ".join(problems))
        self.options: dict[str, Any] = dict(mapping.options)
        self.max_body_bytes = int(self.options.get("max_body_bytes", DEFAULT_MAX_BODY_BYTES))
        self._configs: dict[int, tuple[Any, _Config]] = {}

    def _config(self, account: Account) -> _Config:
        """The account's verification settings, read once per secret: a warm container holds
        the same secret object until its cache lapses, and checking keys and options again on
        every push is work that cannot change the answer."""
        secret = account.secret
        cached = self._configs.get(id(secret))
        if cached is not None and cached[0] is secret:
            return cached[1]
        config = _account_config(account, self.options)
        if len(self._configs) >= _CONFIG_CACHE_MAX:
            self._configs.clear()
        # the secret is kept with its config, so a recycled id() can never match another secret
        self._configs[id(secret)] = (secret, config)
        return config

    def binding(self, account: Account) -> Binder:
        """Where this push's signature is bound: the account's (the ingest's table), else the
        adapter's in-memory binding (dry runs, tests)."""
        if account.signature_binding is not None:
            return account.signature_binding
        if self._binding is None:
            from dmhub_adapter.store.signature_binding import MemoryBinding

            self._binding = MemoryBinding()
        return self._binding

    # -- verification ---------------------------------------------------------------------

    def _verify_query(self, request: WebhookRequest, config: _Config) -> tuple[str, str, str]:
        """Check ``signature`` and the timestamp window; returns (timestamp, nonce, signature)."""
        query = request.query
        signature, timestamp, nonce = (query.get(name) for name in ("signature", "timestamp", "nonce"))
        if not signature or not timestamp or not nonce:
            raise Unauthorized("signature, timestamp and nonce are required")
        if not wechat_crypto.check_signature(signature, config.token, timestamp, nonce):
            raise Unauthorized("signature does not match")
        if not _TIMESTAMP_RE.match(timestamp):
            raise Unauthorized("timestamp is not Unix seconds")
        now = request.received_at or time.time()
        if abs(now - int(timestamp)) > config.tolerance:
            raise Unauthorized(f"timestamp is outside the allowed window of ±{config.tolerance} s")
        return timestamp, nonce, signature.strip().lower()

    def _check_create_time(self, timestamp: str, message: Mapping[str, Any], config: _Config) -> None:
        """The message's own ``CreateTime`` must lie in the signed timestamp's window."""
        created = _text(message.get("CreateTime")).strip()
        if not _TIMESTAMP_RE.match(created):
            raise BadRequest("CreateTime is missing or not Unix seconds")
        # Against the signed timestamp, itself within the window of now: a swapped timestamp
        # and nonce make a fresh-looking signature, but the message inside stays as old as it is.
        if abs(int(timestamp) - int(created)) > config.tolerance:
            raise Unauthorized(f"CreateTime is outside the allowed window of ±{config.tolerance} s",
                               code="stale_message")

    def _bind(self, request: WebhookRequest, account: Account, config: _Config, signed: tuple[str, str, str],
              digest: str) -> None:
        """Bind the signed values to ``digest``; another body under them is refused (401)."""
        timestamp, nonce, signature = signed
        now = int(request.received_at or time.time())
        expires = int(timestamp) + config.tolerance
        if _TIMESTAMP_RE.match(nonce) and now < int(nonce) <= now + SWAP_GUARD_SECONDS:
            expires = max(expires, int(nonce) + config.tolerance)
        # Timestamp and nonce sorted: the swapped pair signs the same, so it meets the same item.
        key = binding_key(self.name, account.name, *sorted((timestamp, nonce)), signature)
        if not self.binding(account).bind(key, digest, expires):
            raise Unauthorized("this signature was already used with another body", code="signature_reused")

    def handshake(self, request: WebhookRequest, account: Account) -> WebhookResponse:
        """Answer WeChat's URL check: verify the query signature and echo `echostr`."""
        config = self._config(account)
        signed = self._verify_query(request, config)
        echostr = request.query.get("echostr")
        if not echostr:
            raise BadRequest("echostr is required for URL verification")
        if len(echostr) > MAX_ECHOSTR or not echostr.isprintable():
            raise BadRequest("echostr is not a short printable string")
        # A verification signature is then spent on this handshake and cannot carry a POST body.
        self._bind(request, account, config, signed, body_digest(b"GET\n" + echostr.encode("utf-8")))
        # The raw value and nothing else: WeChat compares the body byte for byte.
        return WebhookResponse(
            status=200,
            body=echostr,
            content_type="text/plain; charset=utf-8",
            headers={"X-Content-Type-Options": "nosniff"},
        )

    def receive(self, request: WebhookRequest, account: Account) -> Inbound:
        """Verify the push (signature, window, binding), decrypt it in safe mode and parse the message XML."""
        check_size(request.body, self.max_body_bytes)
        config = self._config(account)
        signed = self._verify_query(request, config)
        timestamp, nonce, _ = signed
        if "echostr" in request.query:
            # A URL-verification signature (often in access logs) must not authorize a message.
            raise Unauthorized("a POST must not carry echostr", code="bad_signature")
        encrypt_type = (request.query.get("encrypt_type") or "raw").lower()
        if encrypt_type == "raw":
            if config.require_encryption:
                raise Forbidden("plaintext mode is refused for this account; switch it to safe mode")
            message = _parse(request.body, "body")
            inbound = self._inbound([message], request.body, mode="plain", key_index=None)
        else:
            inbound = self._receive_encrypted(request, config, timestamp, nonce, encrypt_type)
        self._check_create_time(timestamp, inbound.messages[0], config)
        if encrypt_type == "raw" or not config.require_encryption:
            # Only where a plaintext body can ride on a signature: in safe and compatible mode
            # msg_signature covers the ciphertext, so the same signature cannot carry another
            # message, and an account that refuses plaintext leaves a captured signature no
            # body to carry. Skipping the binding there saves a write on every such push.
            self._bind(request, account, config, signed, body_digest(request.body))
        return inbound

    def _receive_encrypted(self, request: WebhookRequest, config: _Config, timestamp: str, nonce: str,
                           encrypt_type: str) -> Inbound:
        if encrypt_type != "aes":
            raise BadRequest(f"unsupported encrypt_type {encrypt_type[:16]!r}")
        envelope = _parse(request.body, "body")
        encrypted = _text(envelope.get("Encrypt"))
        if not encrypted:
            raise BadRequest("encrypt_type=aes but the body has no Encrypt element")
        msg_signature = request.query.get("msg_signature")
        if not msg_signature:
            raise Unauthorized("msg_signature is required when encrypt_type=aes")
        if not wechat_crypto.check_signature(msg_signature, config.token, timestamp, nonce, encrypted):
            raise Unauthorized("msg_signature does not match")
        if not config.aes_keys or not config.app_id:
            raise Unavailable("the account needs encodingAesKey and appId to read encrypted pushes",
                              code="account_misconfigured")
        return self._decrypt(envelope, encrypted, config.aes_keys, config.app_id)

    def _decrypt(self, envelope: dict[str, Any], encrypted: str, aes_keys: list[str], app_id: str) -> Inbound:
        try:
            payload, key_index = wechat_crypto.decrypt_with_any(encrypted, aes_keys, app_id)
        except wechat_crypto.WeChatCryptoError as exc:
            raise BadRequest(DECRYPT_FAILED, code="decrypt_failed") from exc
        message = _parse(payload, "decrypted message")
        if _text(message.get("ToUserName")) != _text(envelope.get("ToUserName")):
            raise BadRequest("the decrypted ToUserName does not match the envelope's")
        mode: Mode = "safe" if set(envelope) <= {"ToUserName", "Encrypt"} else "compat"
        return self._inbound([message], payload, mode=mode, key_index=key_index)

    def _inbound(self, messages: list[dict[str, Any]], payload: bytes, *, mode: Mode, key_index: int | None
                 ) -> Inbound:
        context: dict[str, Any] = {"mode": mode}
        if key_index is not None:
            context["keyIndex"] = key_index
        return Inbound(messages=messages, payload=payload, payload_type="application/xml", context=context)

    def parse_unverified(self, request: WebhookRequest, account: Account) -> Inbound:
        """No signature or timestamp checks (dry runs, replays of stored clear-text payloads).
        An encrypted body is decrypted when the secret has the key; a compatible-mode body
        without one falls back to its plaintext copy."""
        if request.method == "GET":
            raise BadRequest("a GET is WeChat's URL verification (echostr); it carries no message")
        check_size(request.body, self.max_body_bytes)
        message = _parse(request.body, "body")
        encrypted = _text(message.get("Encrypt"))
        if not encrypted:
            return self._inbound([message], request.body, mode="plain", key_index=None)
        secret = account.secret or {}
        keys = [str(secret[name]) for name in ("encodingAesKey", "previousEncodingAesKey") if secret.get(name)]
        if keys and secret.get("appId"):
            return self._decrypt(message, encrypted, keys, str(secret["appId"]))
        if set(message) <= {"ToUserName", "Encrypt"}:
            raise BadRequest("the body is encrypted (safe mode); the account's secret needs encodingAesKey and appId")
        plain = {name: value for name, value in message.items() if name != "Encrypt"}
        return self._inbound([plain], request.body, mode="compat", key_index=None)

    def request_names(self) -> RequestNames:
        """The query values besides the signatures: the follower's openid, the mode, the signed time."""
        return RequestNames(query=frozenset(("openid", "encrypt_type", "timestamp", "nonce")))

    # -- replies ----------------------------------------------------------------------------

    def reply(self, request: WebhookRequest, outcome: IngestOutcome) -> WebhookResponse:
        # "success" needs no encryption even in safe mode, and stops WeChat's retries.
        """Plain `success`, which WeChat accepts in every mode and which stops its retries."""
        return WebhookResponse(status=200, body="success", content_type="text/plain; charset=utf-8")

    def error_reply(self, request: WebhookRequest | None, error: WebhookError) -> WebhookResponse:
        """The error's JSON body with its status."""
        return json_response(error.status, error.to_body())

    def __repr__(self) -> str:
        return f"WeChatSource({self.name!r})"


def build(mapping: MappingPlan) -> WeChatSource:
    """The registry's factory for the WeChat source."""
    return WeChatSource(mapping)
