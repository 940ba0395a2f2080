"""Taobao order and refund messages (TMC), forwarded by a relay and signed the TOP SPI way.

Taobao pushes TMC messages over a WebSocket, never to a URL, so a relay (an ISV's TMC
consumer, an ERP) forwards each message to ``POST /webhooks/taobao/{account}``. The relay
signs like a TOP SPI / Qimen caller, with tools every Taobao integrator already has:

- query ``app_key`` (must equal the account's ``appKey``), ``timestamp`` (GMT+8
  ``yyyy-MM-dd HH:mm:ss`` or epoch milliseconds, within ±10 minutes by default),
  ``sign_method`` (``md5`` when absent, ``hmac`` or ``hmac-sha256``) and ``sign``;
- headers named in a ``top-sign-list`` header (SpiUtils) are signed with the parameters;
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

from __future__ import annotations

import base64
import binascii
import hmac
import json
import time
import zlib
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from dmhub_adapter.errors import BadRequest, MethodNotAllowed, Unauthorized, Unavailable, WebhookError
from dmhub_adapter.mapping.config import block_problems
from dmhub_adapter.mapping.converters import load_json
from dmhub_adapter.mapping.plan import MappingPlan
from dmhub_adapter.sources.base import Account, Inbound, IngestOutcome, MessageRejection, RequestNames, SignedParts
from dmhub_adapter.sources.payloads import check_size, decode_text, text_codec
from dmhub_adapter.sources.taobao.signing import (
    SIGN_LIST_HEADER,
    SIGN_METHODS,
    SignMethod,
    parse_timestamp,
    sign_list_params,
    top_sign,
)
from dmhub_adapter.webhook import WebhookRequest, WebhookResponse, json_response

DEFAULT_MAX_BODY_BYTES = 1024 * 1024
DEFAULT_MAX_MESSAGES = 200  # the TMC consume API hands out at most 200 messages at a time
DEFAULT_TOLERANCE_SECONDS = 600

# Relays that declare the older GB2312 name still send GBK text; GBK decodes both identically.
_CHARSET_ALIASES = {"gb2312": "gbk", "gb_2312": "gbk", "x-gbk": "gbk"}


# --------------------------------------------------------------------------------------------
# Adapter settings (the mapping file's ``verification`` and ``options`` blocks)


class _Verification(BaseModel):
    model_config = ConfigDict(extra="forbid")

    timestamp_tolerance_seconds: int = Field(default=DEFAULT_TOLERANCE_SECONDS, ge=1, le=86400)
    sign_methods: list[SignMethod] = Field(default_factory=lambda: list(SIGN_METHODS), min_length=1)


class _Options(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_body_bytes: int = Field(default=DEFAULT_MAX_BODY_BYTES, ge=1024, le=6 * 1024 * 1024)
    max_messages: int = Field(default=DEFAULT_MAX_MESSAGES, ge=1, le=10000)
    #: a cap on decompressed gzip ``content`` so a small body cannot inflate without bound
    max_content_bytes: int = Field(default=DEFAULT_MAX_BODY_BYTES, ge=1024, le=64 * 1024 * 1024)


def _settings(mapping: MappingPlan) -> tuple[_Verification, _Options]:
    return _Verification.model_validate(mapping.verification or {}), _Options.model_validate(mapping.options)


#: every field a Taobao account's secret may hold
SECRET_FIELDS = ("appKey", "appSecret", "userId")


def secret_fields(mapping: MappingPlan) -> list[str]:
    """Every field an account's secret may hold."""
    return list(SECRET_FIELDS)


def check_secret(mapping: MappingPlan, secret: Mapping[str, Any]) -> list[str]:
    """Problems with an account's secret (empty when usable): appKey and appSecret are needed."""
    return [f"needs a non-empty {name!r}" for name in ("appKey", "appSecret")
            if not isinstance(secret.get(name), (str, int)) or isinstance(secret.get(name), bool)
            or str(secret.get(name)) == ""]


def sign_request(mapping: MappingPlan, secret: Mapping[str, Any], body: bytes, headers: Mapping[str, str],
                 query: Mapping[str, str], now: float) -> SignedParts:
    """``body`` (TMC messages) signed as a relay sends it (TOP ``sign`` over the query and body;
    ``query`` may carry ``sign_method`` and extra parameters)."""
    from dmhub_adapter.sources.taobao.signing import signed_request

    extra = {k: v for k, v in query.items() if k != "sign_method"}
    raw_query = signed_request(secret, body, query.get("sign_method", "md5"), now, extra_params=extra)
    return SignedParts(body=body, headers={"content-type": "application/json; charset=utf-8", **headers},
                       raw_query=raw_query)


def check_config(mapping: MappingPlan) -> list[str]:
    """Problems with the taobao-specific parts of a mapping file (empty when it is fine)."""
    problems: list[str] = []
    if mapping.format != "json":
        problems.append("field 'format': the taobao adapter reads JSON bodies; use format: json")
    try:
        _Verification.model_validate(mapping.verification or {})
    except ValidationError as exc:
        problems.extend(block_problems(exc, "verification"))
    try:
        _Options.model_validate(mapping.options)
    except ValidationError as exc:
        problems.extend(block_problems(exc, "options"))
    identities = [(rule.name, rule.identity) for rule in mapping.rules]
    identities.append(("defaults", mapping.defaults.identity))
    for name, identity in identities:
        # buyer_nick is masked ("t**") in TMC output: as a customer key it would merge strangers.
        if identity is not None and identity.value.path is not None and "buyer_nick" in identity.value.path:
            where = "defaults" if name == "defaults" else f"rule {name!r}"
            problems.append(f"{where}, field 'identity.value': buyer_nick is masked by Taobao; use buyer_open_uid")
    return problems


# --------------------------------------------------------------------------------------------
# Parsing


class InvalidMessage(ValueError):
    """One message of the payload is unusable; the text names the field."""


def _json(text: str, what: str) -> Any:
    try:
        # Nesting is bounded before the recursive parser runs (a deep body is cheap to send).
        return load_json(text)
    except ValueError as exc:
        detail = f"{exc.msg} at position {exc.pos}" if isinstance(exc, json.JSONDecodeError) else str(exc)[:200]
        raise InvalidMessage(f"{what} is not valid JSON ({detail})") from exc


def _gunzip(data: bytes, limit: int) -> bytes:
    inflater = zlib.decompressobj(wbits=31)  # 31: gzip header and trailer
    try:
        raw = inflater.decompress(data, limit)
    except zlib.error as exc:
        raise InvalidMessage(f"field 'content' is neither JSON nor base64 of gzip data ({exc})") from exc
    if inflater.unconsumed_tail:
        raise InvalidMessage(f"field 'content' inflates beyond {limit} bytes")
    if not inflater.eof:
        raise InvalidMessage("field 'content' is truncated gzip data")
    return raw


def decode_content(content: Any, *, max_bytes: int = DEFAULT_MAX_BODY_BYTES) -> dict[str, Any]:
    """A TMC ``content`` (JSON string, object, or base64 of gzip of JSON) → its object."""
    if content is None:
        raise InvalidMessage("field 'content' is missing")
    if isinstance(content, dict):
        return content
    if not isinstance(content, str):
        raise InvalidMessage(f"field 'content' must be a JSON string, got {type(content).__name__}")
    text = content.strip()
    if not text.startswith(("{", "[")):
        try:
            compressed = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise InvalidMessage("field 'content' is not valid JSON (nor base64 of gzip data)") from exc
        try:
            text = _gunzip(compressed, max_bytes).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidMessage("field 'content' inflates to text that is not UTF-8") from exc
    decoded = _json(text, "field 'content'")
    if not isinstance(decoded, dict):
        raise InvalidMessage("field 'content' must hold a JSON object")
    return decoded


def _message(item: Any, options: _Options) -> dict[str, Any]:
    if not isinstance(item, dict):
        raise InvalidMessage("a message must be a JSON object")
    topic = item.get("topic")
    if topic is None or topic == "":
        raise InvalidMessage("field 'topic' is missing")
    if not isinstance(topic, str):
        raise InvalidMessage("field 'topic' must be a string")
    if "content" not in item:
        raise InvalidMessage("field 'content' is missing")
    return {**item, "content": decode_content(item["content"], max_bytes=options.max_content_bytes)}


def _charset(request: WebhookRequest) -> str:
    name = request.charset.lower()
    name = _CHARSET_ALIASES.get(name, name)
    # A real text encoding or 400: ``undefined``, ``base64`` and the like are not charsets.
    text_codec(name)
    return name


def _body_text(request: WebhookRequest, charset: str) -> str:
    return decode_text(request.body, charset)


# --------------------------------------------------------------------------------------------
# The adapter


class TaobaoSource:
    """Taobao order messages relayed as a TOP-signed form post (see this package's docstring for the protocol)."""
    def __init__(self, mapping: MappingPlan) -> None:
        self.name = mapping.source
        self.mapping = mapping
        self.verification, self.options = _settings(mapping)

    # -- Source protocol ---------------------------------------------------------------------

    def handshake(self, request: WebhookRequest, account: Account) -> WebhookResponse:
        """Always 405: Taobao relays only POST messages."""
        raise MethodNotAllowed("Taobao relays POST messages; there is no GET handshake")

    def receive(self, request: WebhookRequest, account: Account) -> Inbound:
        """Check the size and charset, verify the TOP signature, then parse the batch of messages."""
        check_size(request.body, self.options.max_body_bytes)
        charset = _charset(request)
        text = _body_text(request, charset)
        self.verify(request, account, text, charset)
        return self._parse(request, text, charset)

    def parse_unverified(self, request: WebhookRequest, account: Account) -> Inbound:
        """Parse the batch without verifying it, for dry runs and replays."""
        check_size(request.body, self.options.max_body_bytes)
        charset = _charset(request)
        return self._parse(request, _body_text(request, charset), charset)

    def request_names(self) -> RequestNames:
        """The query's app key, time and sign method (never ``sign``): the context a replay rebuilds."""
        return RequestNames(query=frozenset(("app_key", "timestamp", "sign_method")))

    def reply(self, request: WebhookRequest, outcome: IngestOutcome) -> WebhookResponse:
        """`{"success": true}` when every message was taken; 400 otherwise so the relay sends the batch again."""
        if not outcome.rejected:
            return json_response(200, {"success": True})
        accepted = outcome.enqueued + outcome.duplicates + outcome.skipped + outcome.unmapped
        # 400 keeps the relay from confirming the batch; a resend is harmless because the
        # accepted messages' idempotency keys make their second delivery a duplicate.
        return json_response(
            400,
            {
                "success": False,
                "error": "invalid_messages",
                "message": f"{len(outcome.rejected)} message(s) rejected; {accepted} other message(s) were accepted "
                "and processed (resending them is safe: duplicates are dropped)",
                "rejected": [{"index": r.index, "reason": r.reason} for r in outcome.rejected],
                "accepted": accepted,
            },
        )

    def error_reply(self, request: WebhookRequest | None, error: WebhookError) -> WebhookResponse:
        """The error's JSON body with its status."""
        return json_response(error.status, error.to_body())

    # -- verification ------------------------------------------------------------------------


    def verify(self, request: WebhookRequest, account: Account, body_text: str, charset: str) -> None:
        """Check ``app_key``, ``timestamp`` and ``sign``; raise :class:`Unauthorized` if any fails."""
        app_key, app_secret = _credentials(account)
        params = _query_params(request)
        sign = params.get("sign", "")
        if not sign:
            raise Unauthorized("query parameter 'sign' is missing", code="missing_signature")
        method = params.get("sign_method") or "md5"
        if method not in self.verification.sign_methods:
            allowed = ", ".join(self.verification.sign_methods)
            raise Unauthorized(f"sign_method {method!r} is not accepted; use one of {allowed}", code="bad_signature")
        # The gateway stamps received_at (requestContext.timeEpoch); the caller cannot set it.
        self._check_timestamp(params.get("timestamp", ""), request.received_at or time.time())
        # The app key is judged only together with the signature, and a wrong one gets the same
        # answer as a wrong signature: a separate "bad app key" would confirm a guessed key.
        key_matches = hmac.compare_digest(params.get("app_key", "").encode("utf-8"), app_key.encode("utf-8"))
        expected = sign.strip().upper().encode("utf-8")
        signed = {**params, **_signed_headers(request, params, charset)}
        matched = False
        # Every variant needs the secret, so trying the few canonical forms relays use costs no safety.
        for variant in _param_variants(signed):
            for keep_empty in (False, True) if any(v == "" for v in variant.values()) else (False,):
                try:
                    actual = top_sign(variant, app_secret, method, body_text, charset=charset, keep_empty=keep_empty)
                except UnicodeError:
                    continue  # a query value the declared charset cannot encode was never signed in it
                matched |= hmac.compare_digest(expected, actual.encode("ascii"))
        if not (matched and key_matches):
            raise Unauthorized("signature does not match", code="bad_signature")

    def _check_timestamp(self, value: str, now: float) -> None:
        if not value:
            raise Unauthorized("query parameter 'timestamp' is missing", code="bad_timestamp")
        try:
            stamp = parse_timestamp(value)
        except ValueError as exc:
            raise Unauthorized(
                "timestamp must be GMT+8 'yyyy-MM-dd HH:mm:ss' or epoch milliseconds", code="bad_timestamp"
            ) from exc
        skew = stamp - now
        tolerance = self.verification.timestamp_tolerance_seconds
        if abs(skew) > tolerance:
            raise Unauthorized(
                f"timestamp is {abs(int(skew))} s {'ahead of' if skew > 0 else 'behind'} the receiver's clock; "
                f"the window is ±{tolerance} s",
                code="stale_timestamp",
            )

    # -- parsing -----------------------------------------------------------------------------

    def _parse(self, request: WebhookRequest, text: str, charset: str) -> Inbound:
        try:
            payload = json.loads(text)
        except RecursionError as exc:
            raise BadRequest("body is nested too deeply", code="bad_json") from exc
        except ValueError as exc:
            raise BadRequest("body is not valid JSON", code="bad_json") from exc
        batch = isinstance(payload, list) or (isinstance(payload, dict) and "messages" in payload)
        items = payload.get("messages") if isinstance(payload, dict) and batch else payload
        if not batch:
            items = [payload]
        if not isinstance(items, list):
            raise BadRequest("field 'messages' must be a list of TMC messages", code="bad_request")
        if not items:
            raise BadRequest("field 'messages' is empty", code="bad_request")
        if len(items) > self.options.max_messages:
            raise BadRequest(
                f"field 'messages' holds {len(items)} messages; the limit is {self.options.max_messages}",
                code="too_many_messages",
            )
        messages: list[dict[str, Any]] = []
        indexes: list[int] = []
        rejected: list[MessageRejection] = []
        for index, item in enumerate(items):
            try:
                messages.append(_message(item, self.options))
                indexes.append(index)
            except InvalidMessage as exc:
                if not batch:
                    raise BadRequest(str(exc), code="invalid_message") from exc
                rejected.append(MessageRejection(index=index, reason=str(exc)))
        return Inbound(
            messages=messages,
            rejected=rejected,
            payload=request.body,
            payload_type=f"application/json; charset={charset}",
            context={
                "batch": batch,
                "indexes": indexes,  # position of each accepted message in the request
                "message_ids": [str(m["id"]) if m.get("id") is not None else None for m in messages],
                "app_key": request.query.get("app_key"),
            },
        )


def _credentials(account: Account) -> tuple[str, str]:
    secret = account.secret or {}
    app_key, app_secret = secret.get("appKey"), secret.get("appSecret")
    if not app_key or not app_secret:
        # The messages are fine; the relay should keep them and retry once the secret is set.
        raise Unavailable(f"account {account.name!r} has no appKey/appSecret configured", code="account_not_ready")
    return str(app_key), str(app_secret)


def _query_params(request: WebhookRequest) -> dict[str, str]:
    if not request.raw_query:
        return dict(request.query)
    params: dict[str, str] = {}
    for name, value in parse_qsl(request.raw_query, keep_blank_values=True):
        if name in params:
            # Which of two values was signed is ambiguous; refuse rather than guess.
            raise Unauthorized(f"query parameter {name!r} is repeated", code="bad_signature")
        params[name] = value
    return params


def _signed_headers(request: WebhookRequest, params: dict[str, str], charset: str) -> dict[str, str]:
    """The headers ``top-sign-list`` names, as signed parameters; a name that is also a query
    parameter is refused (which of the two values was signed is ambiguous)."""
    if SIGN_LIST_HEADER not in request.headers:
        return {}
    try:
        headers = sign_list_params(request.headers, charset)
    except (ValueError, UnicodeError) as exc:
        raise Unauthorized(f"{SIGN_LIST_HEADER}: {exc}", code="bad_signature") from exc
    clash = sorted(set(headers) & set(params))
    if clash or "sign" in headers:
        raise Unauthorized(f"{SIGN_LIST_HEADER} names {(clash or ['sign'])[0][:64]!r}, which is also a query "
                           "parameter", code="bad_signature")
    return headers


def _param_variants(params: dict[str, str]) -> list[dict[str, str]]:
    # A relay that form-encoded a literal '+' for the timestamp's space signed the space.
    variants = [params]
    stamp = params.get("timestamp", "")
    if "+" in stamp:
        variants.insert(0, {**params, "timestamp": stamp.replace("+", " ")})
    return variants


def build(mapping: MappingPlan) -> TaobaoSource:
    """The registry's factory for the Taobao source."""
    return TaobaoSource(mapping)
