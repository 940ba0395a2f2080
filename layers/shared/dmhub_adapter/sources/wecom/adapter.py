"""WeCom (企业微信) customer-contact callbacks (``/webhooks/wecom/{account}``).

- ``GET``  URL verification: ``msg_signature`` = sha1 of the sorted token, timestamp, nonce and
  ``echostr``; ``echostr`` is encrypted and its plaintext is the answer (text/plain, nothing
  added: no quotes, BOM or newline).
- ``POST`` every callback, always encrypted: ``<xml><ToUserName/><Encrypt/><AgentID/></xml>``,
  ``msg_signature`` over token, timestamp, nonce and ``Encrypt``; the AES scheme is WeChat's
  (:mod:`dmhub_adapter.sources.msgcrypt`) with the CorpID as the receive id, so a push encrypted
  for another corp never decrypts here. The decrypted ``ToUserName`` must be the CorpID too.
- A timestamp window (default and minimum ±300 s; WeCom retries three times within seconds)
  bounds replays of a captured request, and the message's own ``CreateTime`` must lie in the
  same window of the signed timestamp. The signature covers the whole encrypted message, so no
  other body can ride on it.
- Answer: 200 with an empty body (WeCom retries on anything else).

The account secret is ``{"token", "encodingAesKey", "corpId"}`` plus the optional
``previousEncodingAesKey`` (key rotation). See ``docs/wecom.md``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dmhub_adapter.errors import BadRequest, Forbidden, Unauthorized, Unavailable, WebhookError
from dmhub_adapter.mapping.plan import MappingPlan
from dmhub_adapter.sources import msgcrypt
from dmhub_adapter.sources.base import Account, Inbound, IngestOutcome
from dmhub_adapter.sources.payloads import check_size
from dmhub_adapter.sources.xml import XmlError, parse_xml
from dmhub_adapter.webhook import WebhookRequest, WebhookResponse, json_response

DEFAULT_MAX_BODY_BYTES = 64 * 1024
#: WeCom documents no window; a shorter one than five minutes would refuse clock-skewed retries
MIN_TOLERANCE = 300
MAX_TOLERANCE = 3600
MAX_ECHOSTR = 1024
#: one answer for every decryption failure, the receive id (CorpID) included: distinct ones would
#: be a CBC padding oracle for anyone holding the token but not the key
DECRYPT_FAILED = "Encrypt could not be decrypted with this account's key and CorpID"
OPTIONS = ("max_body_bytes", "timestamp_tolerance_seconds")
_TIMESTAMP_RE = re.compile(r"^[0-9]{1,12}$")


@dataclass(frozen=True)
class _Config:
    token: str
    aes_keys: list[str]
    corp_id: str


def _account_config(account: Account) -> _Config:
    """The account's token, keys and CorpID; a missing or broken one is 503 naming the field."""
    secret = account.secret or {}
    values = {}
    for name in ("token", "encodingAesKey", "corpId"):
        value = secret.get(name)
        if not isinstance(value, str) or not value:
            raise Unavailable(f"WeCom account {account.name!r}: the secret has no {name!r}",
                              code="account_misconfigured")
        values[name] = value
    keys = [values["encodingAesKey"]]
    previous = secret.get("previousEncodingAesKey")
    if isinstance(previous, str) and previous:
        keys.append(previous)
    for name, key in zip(("encodingAesKey", "previousEncodingAesKey"), keys, strict=False):
        try:
            msgcrypt.aes_key(key)
        except msgcrypt.InvalidKey as exc:
            raise Unavailable(f"WeCom account {account.name!r}: {name!r} is not 43 letters or digits",
                              code="account_misconfigured") from exc
    return _Config(token=values["token"], aes_keys=keys, corp_id=values["corpId"])


def _int_option(options: Mapping[str, Any], name: str, default: int, low: int, high: int) -> int:
    value = options.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"field 'options.{name}': an integer from {low} to {high}")
    return value


def check_config(mapping: MappingPlan) -> list[str]:
    """Problems with the wecom-specific parts of a mapping file (used by check-config)."""
    problems = []
    if mapping.format != "xml":
        problems.append(f"field 'format': the wecom adapter reads XML, not {mapping.format!r}")
    for name in ("verification", "reply"):
        if getattr(mapping, name) is not None:
            problems.append(f"field {name!r}: the wecom adapter's {name} is fixed by the protocol; remove it")
    for name in mapping.options:
        if name not in OPTIONS:
            problems.append(f"field 'options.{name}': unknown option; known: {', '.join(OPTIONS)}")
    for name, default, low, high in (("max_body_bytes", DEFAULT_MAX_BODY_BYTES, 1024, 1024 * 1024),
                                     ("timestamp_tolerance_seconds", MIN_TOLERANCE, MIN_TOLERANCE, MAX_TOLERANCE)):
        try:
            _int_option(mapping.options, name, default, low, high)
        except ValueError as exc:
            problems.append(str(exc))
    return problems


def _parse(body: bytes, what: str) -> dict[str, Any]:
    try:
        return parse_xml(body)
    except XmlError as exc:
        raise BadRequest(f"{what}: {exc}") from exc


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


class WeComSource:
    """The WeCom callback dialect (see the module docstring)."""

    def __init__(self, mapping: MappingPlan) -> None:
        problems = check_config(mapping)
        if problems:
            raise ValueError("; ".join(problems))
        self.name = mapping.source
        self.mapping = mapping
        self.max_body_bytes = _int_option(mapping.options, "max_body_bytes", DEFAULT_MAX_BODY_BYTES, 1024, 1 << 20)
        self.tolerance = _int_option(mapping.options, "timestamp_tolerance_seconds", MIN_TOLERANCE, MIN_TOLERANCE,
                                     MAX_TOLERANCE)

    def _signed_query(self, request: WebhookRequest, config: _Config, encrypted: str) -> str:
        """Check ``msg_signature`` over ``encrypted`` and the timestamp window; returns the timestamp."""
        query = request.query
        signature, timestamp, nonce = (query.get(name) for name in ("msg_signature", "timestamp", "nonce"))
        if not signature or not timestamp or not nonce:
            raise Unauthorized("msg_signature, timestamp and nonce are required", code="missing_signature")
        if not msgcrypt.check_signature(signature, config.token, timestamp, nonce, encrypted):
            raise Unauthorized("msg_signature does not match", code="bad_signature")
        if not _TIMESTAMP_RE.match(timestamp):
            raise Unauthorized("timestamp is not Unix seconds", code="bad_timestamp")
        now = request.received_at or time.time()
        if abs(now - int(timestamp)) > self.tolerance:
            raise Unauthorized(f"timestamp is outside the allowed window of ±{self.tolerance} s",
                               code="stale_timestamp")
        return timestamp

    def _decrypt(self, encrypted: str, config: _Config) -> bytes:
        try:
            return msgcrypt.decrypt_with_any(encrypted, config.aes_keys, config.corp_id)[0]
        except msgcrypt.WeChatCryptoError as exc:
            raise BadRequest(DECRYPT_FAILED, code="decrypt_failed") from exc

    def handshake(self, request: WebhookRequest, account: Account) -> WebhookResponse:
        """Answer WeCom's URL check: verify ``msg_signature`` over ``echostr``, reply its plaintext."""
        config = _account_config(account)
        echostr = request.query.get("echostr")
        if not echostr:
            raise BadRequest("echostr is required for URL verification")
        if len(echostr) > MAX_ECHOSTR:
            raise BadRequest(f"echostr is longer than {MAX_ECHOSTR} characters")
        self._signed_query(request, config, echostr)
        plain = self._decrypt(echostr, config)
        try:
            text = plain.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise BadRequest("the decrypted echostr is not text", code="decrypt_failed") from exc
        if not text.isprintable():
            raise BadRequest("the decrypted echostr is not printable text", code="decrypt_failed")
        return WebhookResponse(status=200, body=text, content_type="text/plain; charset=utf-8",
                               headers={"X-Content-Type-Options": "nosniff"})

    def receive(self, request: WebhookRequest, account: Account) -> Inbound:
        """Verify and decrypt a callback, check its CorpID and time, and parse the message XML."""
        check_size(request.body, self.max_body_bytes)
        config = _account_config(account)
        if "echostr" in request.query:
            raise Unauthorized("a POST must not carry echostr", code="bad_signature")
        envelope = _parse(request.body, "body")
        encrypted = _text(envelope.get("Encrypt"))
        if not encrypted:
            raise BadRequest("the body has no Encrypt element (WeCom callbacks are always encrypted)")
        timestamp = self._signed_query(request, config, encrypted)
        payload = self._decrypt(encrypted, config)
        message = _parse(payload, "decrypted message")
        if _text(message.get("ToUserName")) != config.corp_id:
            raise Forbidden("the payload belongs to another account: its ToUserName is not this account's corpId")
        created = _text(message.get("CreateTime")).strip()
        if not _TIMESTAMP_RE.match(created):
            raise BadRequest("CreateTime is missing or not Unix seconds")
        if abs(int(timestamp) - int(created)) > self.tolerance:
            raise Unauthorized(f"CreateTime is outside the allowed window of ±{self.tolerance} s",
                               code="stale_message")
        return self._inbound(message, payload)

    def _inbound(self, message: dict[str, Any], payload: bytes) -> Inbound:
        # the decrypted XML is what is kept for replay: clear text, parsed the same way again
        return Inbound(messages=[message], payload=payload, payload_type="application/xml")

    def parse_unverified(self, request: WebhookRequest, account: Account) -> Inbound:
        """No signature or time checks (dry runs, replays of stored clear-text payloads); an
        encrypted body is decrypted when the secret has the key and CorpID."""
        if request.method == "GET":
            raise BadRequest("a GET is WeCom's URL verification (echostr); it carries no message")
        check_size(request.body, self.max_body_bytes)
        payload = request.body
        message = _parse(payload, "body")
        encrypted = _text(message.get("Encrypt"))
        if encrypted:
            payload = self._decrypt(encrypted, _account_config(account))
            message = _parse(payload, "decrypted message")
        return self._inbound(message, payload)

    def reply(self, request: WebhookRequest, outcome: IngestOutcome) -> WebhookResponse:
        """200 with an empty body, which stops WeCom's retries."""
        return WebhookResponse(status=200, body="", content_type="text/plain; charset=utf-8")

    def error_reply(self, request: WebhookRequest | None, error: WebhookError) -> WebhookResponse:
        """The error's JSON body with its status."""
        return json_response(error.status, error.to_body())

    def __repr__(self) -> str:
        return f"WeComSource({self.name!r})"


def build(mapping: MappingPlan) -> WeComSource:
    """The registry's factory for the WeCom source."""
    return WeComSource(mapping)
