"""The generic adapter: a source defined by its mapping file alone, no Python per platform.

Three blocks of the mapping file configure it (all validated by :func:`check_config`, which
the registry runs when the file loads and ``check-config`` reports):

``verification``  the signature scheme (:mod:`.signatures`); ``{scheme: none}`` must be
                  written out to accept unauthenticated requests. A file without the block
                  still maps payloads (``map`` dry runs) but its requests get 503 until one
                  is configured: nothing is accepted unauthenticated by omission.
``reply``         how the platform wants to be answered: status, content type and a body
                  template for success and for each kind of rejection (default JSON).
``options``       ``maxBodyBytes`` (default the MAX_BODY_BYTES setting), ``requestValues``
                  (header/query values copied into every message as ``_request.<name>``, e.g.
                  a delivery id used as externalId), ``handshake`` (a GET that echoes a query
                  parameter, for URL verification), ``accountValues`` (fields of the
                  account's secret copied into every message as ``_account.<name>``, e.g. the
                  identity type an openid belongs to) and ``decrypt`` (fields the sender
                  encrypts, opened with a key from the secret after verification: AES-256-GCM).

The payload ``format`` (json, form, xml) and the ``messages`` split come from the mapping file.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal

from jmespath.exceptions import JMESPathError
from pydantic import Field, PrivateAttr, TypeAdapter, ValidationError, field_validator, model_validator

from dmhub_adapter.errors import BadRequest, MethodNotAllowed, Unauthorized, Unavailable, WebhookError
from dmhub_adapter.mapping import converters
from dmhub_adapter.mapping.config import ValueSpec, block_problems
from dmhub_adapter.mapping.engine import MappingError, _compile_value, decode_message, split_messages
from dmhub_adapter.mapping.functions import compile_expression, is_false, search
from dmhub_adapter.mapping.plan import MappingPlan
from dmhub_adapter.model.customer_event import IdentityType
from dmhub_adapter.sources import payloads
from dmhub_adapter.sources.base import Account, Inbound, IngestOutcome, MessageRejection, RequestNames, SignedParts
from dmhub_adapter.sources.generic import signatures
from dmhub_adapter.validation import StrictModel
from dmhub_adapter.webhook import WebhookRequest, WebhookResponse

_PLACEHOLDER_RE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
SUCCESS_PLACEHOLDERS = ("enqueued", "duplicates", "skipped", "unmapped", "rejected", "requestId")
ERROR_PLACEHOLDERS = ("status", "code", "message", "requestId")
HANDSHAKE_PLACEHOLDERS = ("value",)
#: error kinds a reply block may give its own answer, by the error's class code
ERROR_KINDS = ("bad_request", "unauthorized", "forbidden", "not_found", "method_not_allowed",
               "payload_too_large", "unavailable")
MAX_BODY_LIMIT = 6 * 1024 * 1024  # API Gateway → Lambda payload limit
MAX_ECHO = 512
_IDENTITY_TYPE: TypeAdapter[str] = TypeAdapter(IdentityType)
#: an encrypted field larger than this (base64 text) is refused before decoding
MAX_CIPHERTEXT = 1024 * 1024


def _is_json(content_type: str) -> bool:
    return "json" in content_type.split(";")[0].lower()


def render(template: str, values: dict[str, Any], *, json_escape: bool) -> str:
    """Fill ``{name}`` placeholders; in JSON bodies the values are JSON-escaped strings."""

    def one(match: re.Match[str]) -> str:
        value = values.get(match.group(1), "")
        text = value if isinstance(value, str) else json.dumps(value)
        return json.dumps(text, ensure_ascii=False)[1:-1] if json_escape else text

    return _PLACEHOLDER_RE.sub(one, template)


class ReplyTemplate(StrictModel):
    """A reply a mapping writes for the sender: status, content type and a body with `{placeholder}`s."""
    status: int | None = Field(default=None, ge=100, le=599, description="default: 200, or the error's status")
    content_type: str = Field(default="application/json", alias="contentType")
    body: str = Field(description="text with {placeholder}s")


def _check_template(template: ReplyTemplate, allowed: tuple[str, ...]) -> None:
    unknown = sorted(set(_PLACEHOLDER_RE.findall(template.body)) - set(allowed))
    if unknown:
        raise ValueError(f"unknown placeholder(s) {unknown} in body; allowed: {list(allowed)}")
    if _is_json(template.content_type):
        sample = render(template.body, {name: "1" for name in allowed}, json_escape=True)
        try:
            json.loads(sample)
        except ValueError as exc:
            raise ValueError(f"body is not valid JSON once filled in ({exc})") from exc


class ReplyConfig(StrictModel):
    """``reply:`` — ``success``, ``error`` (every rejection) and ``errors`` (by kind)."""

    success: ReplyTemplate | None = None
    error: ReplyTemplate | None = None
    errors: dict[str, ReplyTemplate] = Field(default_factory=dict)

    @field_validator("success")
    @classmethod
    def _success(cls, value: ReplyTemplate | None) -> ReplyTemplate | None:
        if value is not None:
            _check_template(value, SUCCESS_PLACEHOLDERS)
        return value

    @field_validator("error")
    @classmethod
    def _error(cls, value: ReplyTemplate | None) -> ReplyTemplate | None:
        if value is not None:
            _check_template(value, ERROR_PLACEHOLDERS)
        return value

    @field_validator("errors")
    @classmethod
    def _errors(cls, value: dict[str, ReplyTemplate]) -> dict[str, ReplyTemplate]:
        unknown = sorted(set(value) - set(ERROR_KINDS))
        if unknown:
            raise ValueError(f"unknown error kind(s) {unknown}; known: {list(ERROR_KINDS)}")
        for kind, template in value.items():
            try:
                _check_template(template, ERROR_PLACEHOLDERS)
            except ValueError as exc:
                raise ValueError(f"{kind}: {exc}") from exc
        return value


class RequestValue(StrictModel):
    """A header or query parameter a mapping reads as `request.<name>`; exactly one of the two is named.

    ``header`` may list alternatives (first present wins), like the verification block's."""
    header: signatures.HeaderNames | None = Field(default=None)
    query: str | None = Field(default=None, min_length=1)

    @field_validator("header")
    @classmethod
    def _headers(cls, value: signatures.HeaderNames | None) -> signatures.HeaderNames | None:
        return signatures._check_headers(value)

    @model_validator(mode="after")
    def _one(self) -> RequestValue:
        if (self.header is None) == (self.query is None):
            raise ValueError("give exactly one of header or query")
        return self


class HandshakeSpec(StrictModel):
    """A GET verification that echoes a query parameter, for senders that check the URL before pushing."""
    query: str = Field(min_length=1, description="the query parameter echoed back")
    content_type: str = Field(default="text/plain; charset=utf-8", alias="contentType")
    body: str = Field(default="{value}", description="template; {value} is the parameter's value")

    @model_validator(mode="after")
    def _placeholders(self) -> HandshakeSpec:
        _check_template(ReplyTemplate(content_type=self.content_type, body=self.body), HANDSHAKE_PLACEHOLDERS)
        return self


#: keys of the ``verification`` block this module reads (the rest is the signature scheme)
REPLAY_KEYS = ("maxAge", "replayWindow")
#: the longest ``maxAge``: the claim TTL (DEDUP_TTL_DAYS default 7); a replay older than the
#: claims but younger than maxAge would be delivered again
MAX_AGE_LIMIT = 7 * 86400


class MaxAge(StrictModel):
    """``verification.maxAge``: how old the payload's own time may be, for schemes whose
    sender signs no timestamp (Youzan, Doudian). Set it above the platform's retry schedule:
    a late retry refused here is an event lost."""

    seconds: int = Field(ge=60, le=MAX_AGE_LIMIT, description="largest |received - payload time| accepted")
    time: ValueSpec = Field(
        description="the payload time per (decoded) message: epoch seconds, or a date through a converter "
        "such as unix_seconds, unix_millis, gmt8 or iso8601"
    )
    when: str | None = Field(
        default=None, description="JMESPath: only matching messages are bounded (e.g. not connectivity checks)"
    )

    _when: Any = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _compile(self) -> MaxAge:
        try:
            self._when = compile_expression(self.when) if self.when else None
        except JMESPathError as exc:
            raise ValueError(f"when: bad JMESPath expression: {exc}") from exc
        return self


class NoReplayWindow(StrictModel):
    """``verification.replayWindow: {none: REASON}``: the scheme is deliberately unbounded."""

    none: str = Field(min_length=10, description="why no time bound is possible (shown by check-config)")


class ReplayBound(StrictModel):
    """The replay-related keys of a ``verification`` block."""

    max_age: MaxAge | None = Field(default=None, alias="maxAge")
    replay_window: NoReplayWindow | None = Field(default=None, alias="replayWindow")


class FallbackBound(ReplayBound):
    """``verification.otherwise``'s own keys: its time bound and ``agree``.

    A fallback dialect often signs less than the primary one (Youzan's legacy push signs
    ``msg`` only), so it brings its own ``maxAge`` on a time it does sign, and ``agree``: body
    fields it leaves unsigned that must equal a value derived from what it signs (else 401)."""

    agree: dict[str, str] = Field(
        default_factory=dict,
        description="{unsigned top-level field: JMESPath over the decoded message giving the signed value, "
        "or a list of the values allowed}",
    )

    _agree: dict[str, Any] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _compile_agree(self) -> FallbackBound:
        try:
            self._agree = {name: compile_expression(expression) for name, expression in self.agree.items()}
        except JMESPathError as exc:
            raise ValueError(f"agree: bad JMESPath expression: {exc}") from exc
        return self


#: keys of a ``verification.otherwise`` block this module reads (besides its replay keys)
OTHERWISE_KEYS = (*REPLAY_KEYS, "agree")


def split_verification(block: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``verification`` → (the signature scheme, the replay keys). The ``otherwise`` block's
    own replay and ``agree`` keys stay out of the scheme (see :func:`otherwise_keys`)."""
    scheme = {k: v for k, v in block.items() if k not in REPLAY_KEYS}
    otherwise = scheme.get("otherwise")
    if isinstance(otherwise, dict):
        scheme["otherwise"] = {k: v for k, v in otherwise.items() if k not in OTHERWISE_KEYS}
    return scheme, {k: v for k, v in block.items() if k in REPLAY_KEYS}


def otherwise_keys(block: dict[str, Any]) -> dict[str, Any]:
    """The replay and ``agree`` keys of ``verification.otherwise`` (empty without one)."""
    otherwise = block.get("otherwise")
    if not isinstance(otherwise, dict):
        return {}
    return {k: v for k, v in otherwise.items() if k in OTHERWISE_KEYS}


def replay_problems(scheme: signatures.Verification, bound: ReplayBound) -> list[str]:
    """A signed scheme needs a time bound: a signed timestamp, a ``maxAge`` on the payload's own
    time, or an explicit ``replayWindow: {none: REASON}``; never two of them."""
    if isinstance(scheme, signatures.NoVerification):
        if bound.max_age or bound.replay_window:
            return ["field 'verification': maxAge and replayWindow apply to signed schemes only"]
        return []
    if bound.max_age is not None and bound.replay_window is not None:
        return ["field 'verification': give maxAge or replayWindow, not both"]
    if scheme.timestamp is None and bound.max_age is None and bound.replay_window is None:
        return ["field 'verification': the scheme signs no timestamp, so a captured request could be "
                "replayed once its claim expires; add maxAge {seconds, time} bounding the payload's own "
                "time (above the platform's retry schedule), or replayWindow: {none: REASON}"]
    return []


class AccountValue(StrictModel):
    """A field of the account's secret a mapping reads as ``_account.<name>``."""

    secret: str = Field(min_length=1, description="the secret's field")
    default: str | None = Field(default=None, description="when the secret has no such field")
    kind: Literal["text", "identityType"] = Field(
        default="text", description="identityType: checked as a DM Hub identity type (503 when it is not one)"
    )


class DecryptKey(StrictModel):
    """The key of a ``decrypt`` step: a secret field, as text (WeChat Pay's APIv3 key) or base64."""

    secret: str = Field(min_length=1)
    decode: Literal["text", "base64", "hex"] = "text"


class DecryptSpec(StrictModel):
    """``options.decrypt``: an object field the sender encrypted, opened after verification.

    AES-256-GCM (WeChat Pay's ``AEAD_AES_256_GCM``): ``ciphertext`` is base64 of the ciphertext
    followed by the 16-byte tag, ``nonce`` and ``associatedData`` are text; the plaintext is
    JSON and replaces the field. A field that holds no ``ciphertext`` (an already decrypted,
    stored payload being replayed) is left as it is."""

    field: str = Field(min_length=1, description="top-level field holding the encrypted object")
    algorithm: Literal["aes-256-gcm"] = "aes-256-gcm"
    key: DecryptKey
    ciphertext: str = Field(default="ciphertext", description="its sub-field with the base64 ciphertext")
    nonce: str = Field(default="nonce", description="its sub-field with the nonce")
    associated_data: str | None = Field(default=None, alias="associatedData",
                                        description="its sub-field with the associated data (absent = empty)")
    expect: dict[str, str] = Field(default_factory=dict,
                                   description="sub-fields that must hold these values, e.g. the algorithm name")


def _check_names(values: Mapping[str, object], namespace: str) -> None:
    """Refuse value names a mapping could not write as ``{namespace}.<name>``."""
    bad = sorted(name for name in values if not _NAME_RE.match(name))
    if bad:
        raise ValueError(f"names {bad} must be letters, digits and '_' (they become {namespace}.<name>)")


class GenericOptions(StrictModel):
    """The `options` block of a config-described source: body limit, request values, handshake,
    account values and decryption."""
    max_body_bytes: int | None = Field(default=None, ge=1, le=MAX_BODY_LIMIT, alias="maxBodyBytes")
    request_values: dict[str, RequestValue] = Field(default_factory=dict, alias="requestValues")
    handshake: HandshakeSpec | None = None
    account_values: dict[str, AccountValue] = Field(default_factory=dict, alias="accountValues")
    decrypt: list[DecryptSpec] = Field(default_factory=list, max_length=4)

    @field_validator("account_values")
    @classmethod
    def _account_names(cls, value: dict[str, AccountValue]) -> dict[str, AccountValue]:
        _check_names(value, "_account")
        for name, spec in value.items():
            if spec.kind == "identityType" and spec.default is not None:
                try:
                    _IDENTITY_TYPE.validate_python(spec.default)
                except ValidationError as exc:
                    raise ValueError(f"{name}.default: not an identity type") from exc
        return value

    @field_validator("request_values")
    @classmethod
    def _names(cls, value: dict[str, RequestValue]) -> dict[str, RequestValue]:
        _check_names(value, "_request")
        return value


def check_config(mapping: MappingPlan) -> list[str]:
    """Problems with the file's verification, reply and options blocks (empty when valid)."""
    problems: list[str] = []
    if mapping.verification is not None:
        block, replay = split_verification(mapping.verification) if isinstance(mapping.verification, dict) \
            else (mapping.verification, {})
        scheme: signatures.Verification | None = None
        try:
            scheme = signatures.parse_verification(block)
        except signatures.VerificationConfigError as exc:
            problems.extend(exc.problems)
        try:
            bound = ReplayBound.model_validate(replay)
        except ValidationError as exc:
            problems.extend(block_problems(exc, "verification"))
        else:
            if scheme is not None:
                problems.extend(replay_problems(scheme, bound))
        if isinstance(scheme, signatures.SignatureScheme) and scheme.otherwise is not None:
            try:
                fallback = FallbackBound.model_validate(otherwise_keys(mapping.verification))
            except ValidationError as exc:
                problems.extend(block_problems(exc, "verification.otherwise"))
            else:
                problems.extend(problem.replace("'verification'", "'verification.otherwise'")
                                for problem in replay_problems(scheme.otherwise, fallback))
    try:
        GenericOptions.model_validate(mapping.options)
    except ValidationError as exc:
        problems.extend(block_problems(exc, "options"))
    problems.extend(_request_value_problems(mapping))
    problems.extend(_account_value_problems(mapping))
    try:
        ReplyConfig.model_validate(mapping.reply or {})
    except ValidationError as exc:
        problems.extend(block_problems(exc, "reply"))
    return problems


#: ``_request`` in a JMESPath expression, with the name after it when there is one
_REQUEST_REF_RE = re.compile(r'(?<![A-Za-z0-9_])_request(?:\s*\.\s*(?:([A-Za-z_][A-Za-z0-9_]*)|"([^"]+)"))?')


def _header_key(header: signatures.HeaderNames) -> tuple[str, ...]:
    return tuple(name.lower() for name in signatures.header_names(header))


def _signed_names(scheme: signatures.Verification) -> tuple[set[tuple[str, ...]], set[str] | None]:
    """Header locations (lower-case name tuples: alternatives in order) and query names the
    signature covers; ``None`` for the query names means every parameter (a ``sortedParams``
    over the query). A request value is signed only when it reads the same alternatives in the
    same order as a signed part: ``webhook-id`` alone beside a signed ``[svix-id, webhook-id]``
    would read an unsigned header whenever both are sent."""
    headers: set[tuple[str, ...]] = set()
    queries: set[str] | None = set()
    if not isinstance(scheme, signatures.SignatureScheme):
        return headers, queries
    for part in scheme.signed:
        if part.header:
            headers.add(_header_key(part.header))
        if part.query and queries is not None:
            queries.add(part.query)
        if part.timestamp and scheme.timestamp is not None:
            if scheme.timestamp.header:
                headers.add(_header_key(scheme.timestamp.header))
            if scheme.timestamp.query and queries is not None:
                queries.add(scheme.timestamp.query)
        if part.sorted_params is not None and part.sorted_params.from_ == "query":
            queries = None
    return headers, queries


def _request_value_problems(mapping: MappingPlan) -> list[str]:
    """``externalId`` decides what counts as a redelivery, so a ``requestValues`` entry feeding it
    must come from a signed part of the request: an unsigned header (a delivery id) lets anyone
    holding a captured body turn it into a new event with each fresh value."""
    options = mapping.options.get("requestValues") if isinstance(mapping.options, dict) else None
    if not isinstance(options, dict) or not options:
        return []
    scheme: signatures.Verification | None = None
    if isinstance(mapping.verification, dict):
        try:
            scheme = signatures.parse_verification(split_verification(mapping.verification)[0])
        except signatures.VerificationConfigError:
            return []  # reported on its own
    headers, queries = _signed_names(scheme) if scheme is not None else (set(), set())
    problems: list[str] = []
    for rule in mapping.rules:
        spec = rule.external_id
        if spec is None:
            continue
        text = " ".join(part for part in (spec.path, spec.template) if part)
        used: set[str] = set()
        for match in _REQUEST_REF_RE.finditer(text):
            name = match.group(1) or match.group(2)
            used.update([name] if name else options)
        for name in sorted(used):
            value = options.get(name)
            if not isinstance(value, dict):
                continue
            header, query = value.get("header"), value.get("query")
            signed = (isinstance(header, (str, list)) and _header_key(header) in headers) or (
                isinstance(query, str) and (queries is None or query in queries))
            if not signed:
                where = f"header {header!r}" if header else f"query parameter {query!r}"
                problems.append(
                    f"rule {rule.name!r}, field 'externalId': uses _request.{name}, the {where}, which the "
                    "signature does not cover: a replayed body with a fresh value would be a new event; sign "
                    "it (a part of verification.signed) or build externalId from the body"
                )
    return problems


def secret_fields(mapping: MappingPlan) -> list[str]:
    """Every secret field the file names: its verification's (keys, older keys, signed secrets,
    the fallback's), its decrypt steps' keys and its ``accountValues``."""
    scheme = GenericSource(mapping).verification
    names: list[str] = []
    while isinstance(scheme, signatures.SignatureScheme):  # the scheme, then its fallback
        names.extend(part.secret for part in scheme.signed if part.secret)
        if scheme.key is not None:
            names.extend(scheme.key.secret)
        scheme = scheme.otherwise
    options = mapping.options if isinstance(mapping.options, dict) else {}
    for step in options.get("decrypt") or []:  # resource keys (WeChat Pay's APIv3 key)
        key = step.get("key") if isinstance(step, dict) else None
        if isinstance(key, dict) and isinstance(key.get("secret"), str):
            names.append(key["secret"])
    for spec in (options.get("accountValues") or {}).values():  # per-account values (identity type)
        if isinstance(spec, dict) and isinstance(spec.get("secret"), str):
            names.append(spec["secret"])
    return list(dict.fromkeys(names))


def check_secret(mapping: MappingPlan, secret: Mapping[str, Any]) -> list[str]:
    """Problems with an account's secret, as a request would meet them (empty when usable):
    every field the scheme needs, and key material that decodes (``whsec_``, base64, hex,
    ed25519 public keys)."""
    scheme = GenericSource(mapping).verification
    if not isinstance(scheme, signatures.SignatureScheme):
        return []
    problems = [f"needs a non-empty {name!r} (verification of {mapping.source!r})"
                for name in scheme.secret_fields() if not str(secret.get(name) or "")]
    if not problems and scheme.key is not None and scheme.key.decode == "pem":
        problems.extend(_pem_problems(scheme, secret))
    elif not problems and scheme.key is not None:
        try:
            signatures.account_keys(scheme, secret)
        except Unavailable as exc:
            problems.append(exc.message)
    return problems


def _pem_problems(scheme: signatures.SignatureScheme, secret: Mapping[str, Any]) -> list[str]:
    """Public keys (or certificates) that do not load: a field of PEM text, or with ``key.select``
    a mapping of key id to PEM."""
    assert scheme.key is not None
    problems: list[str] = []
    for index, name in enumerate(scheme.key.secret):
        value = secret.get(name)
        if index > 0 and not value:
            continue
        entries = value.items() if isinstance(value, Mapping) else [(None, value)]
        if scheme.key.select is not None and not isinstance(value, Mapping):
            problems.append(f"field {name!r} must map key ids (the request's "
                            f"{signatures.header_names(scheme.key.select.header)[0]}) to PEM public keys")
            continue
        for key_id, pem in entries:
            where = f"{name!r}" + (f" key {key_id!r}" if key_id is not None else "")
            try:
                signatures.load_rsa_public_key(str(pem))
            except Exception as exc:  # cryptography raises ValueError and its own types
                problems.append(f"field {where} is not a PEM public key or certificate ({type(exc).__name__})")
    return problems


def sign_request(mapping: MappingPlan, secret: Mapping[str, Any], body: bytes, headers: Mapping[str, str],
                 query: Mapping[str, str], now: float) -> SignedParts:
    """``body`` signed the way the file's ``verification`` says: the timestamp set to ``now`` in
    the scheme's format, a missing signed delivery id (a name ending in ``id``) generated, then
    the signature put where the scheme reads it. Raises ``ValueError`` for what cannot be signed
    here (an ed25519 scheme needs the sender's private key; a signed value nobody gave)."""
    import secrets as random
    from urllib.parse import urlencode

    scheme = GenericSource(mapping).verification
    headers = {k.lower(): v for k, v in headers.items()}
    query = dict(query)
    content_type = {"json": "application/json", "xml": "application/xml",
                    "form": "application/x-www-form-urlencoded"}.get(mapping.format, "application/json")
    headers.setdefault("content-type", content_type)
    if not isinstance(scheme, signatures.SignatureScheme):
        return SignedParts(body=body, headers=headers, raw_query=urlencode(query))
    if scheme.algorithm == "ed25519":
        raise ValueError("an ed25519 scheme is signed with the sender's private key, which no account secret holds")
    # Alternatives ([svix-id, webhook-id]): the family of the one the caller gave, else the last.
    family = -1
    for part in scheme.signed:
        names = [n.lower() for n in signatures.header_names(part.header)]
        for index, name in enumerate(names):
            if name in headers and len(names) > 1:
                family = index

    def pick(header: signatures.HeaderNames) -> str:
        names = [n.lower() for n in signatures.header_names(header)]
        return names[min(family, len(names) - 1)] if family >= 0 else names[-1]

    if scheme.timestamp is not None:
        stamp = signatures.format_timestamp(scheme.timestamp, now)
        if scheme.timestamp.header:
            headers[pick(scheme.timestamp.header)] = stamp
        elif scheme.timestamp.query:
            query[scheme.timestamp.query] = stamp
        else:
            raise ValueError("the scheme reads its timestamp from a body field: put it in the payload")
    for part in scheme.signed:
        if part.header and not any(n.lower() in headers for n in signatures.header_names(part.header)):
            name = pick(part.header)
            if not name.endswith("id"):
                raise ValueError(f"the signature covers header {name!r}: give it with --header")
            headers[name] = "msg_" + random.token_hex(12)
        if part.query and part.query not in query:
            if not part.query.lower().endswith("id"):
                raise ValueError(f"the signature covers query parameter {part.query!r}: give it with --query")
            query[part.query] = random.token_hex(12)
    fields: dict[str, Any] = {}
    if GenericSource(mapping)._needs_fields:
        parsed = payloads.parse_body(body, mapping.format, "utf-8")
        fields = parsed if isinstance(parsed, dict) else {}
    value = signatures.sign(scheme, signatures.SignedRequest(body=body, headers=headers, query=query, fields=fields,
                                                             received_at=now), secret)
    if scheme.signature.header:
        headers[pick(scheme.signature.header)] = value
    elif scheme.signature.query:
        query[scheme.signature.query] = value
    else:
        raise ValueError("the scheme reads the signature from a body field: sign it into the payload yourself")
    return SignedParts(body=body, headers=headers, raw_query=urlencode(query))


def _key_fields(block: Any) -> set[str]:
    """Secret fields a verification block (and its fallback) uses as key material."""
    names: set[str] = set()
    while isinstance(block, dict):
        key = block.get("key")
        if isinstance(key, dict):
            secret = key.get("secret")
            names.update([secret] if isinstance(secret, str) else [n for n in secret or [] if isinstance(n, str)])
        for part in block.get("signed") or []:
            if isinstance(part, dict) and isinstance(part.get("secret"), str):
                names.add(part["secret"])
        block = block.get("otherwise")
    return names


def _account_value_problems(mapping: MappingPlan) -> list[str]:
    """``accountValues`` copy secret fields into every message (and so into dry runs, unmapped
    reasons and logs): key material must never be one of them."""
    options = mapping.options if isinstance(mapping.options, dict) else {}
    values = options.get("accountValues")
    if not isinstance(values, dict):
        return []
    keys = _key_fields(mapping.verification)
    for step in options.get("decrypt") or []:
        if isinstance(step, dict) and isinstance(step.get("key"), dict) and isinstance(step["key"].get("secret"), str):
            keys.add(step["key"]["secret"])
    return [f"field 'options.accountValues.{name}': secret field {spec['secret']!r} is key material; "
            "it must not be copied into messages"
            for name, spec in values.items() if isinstance(spec, dict) and spec.get("secret") in keys]


class GenericSource:
    """A source described entirely by its mapping file.

    Verification, parsing, request values and replies all come from config.

    Adding a platform of this kind needs one YAML file and no code (see docs/add-a-source.md).
    """
    def __init__(self, mapping: MappingPlan) -> None:
        self.name = mapping.source
        self.mapping = mapping
        # No block at all is valid for mapping work (dry runs, tests) but never accepts a request.
        block, replay = split_verification(mapping.verification or {})
        self.verification: signatures.Verification | None = (
            None if mapping.verification is None else signatures.parse_verification(block)
        )
        self.max_age = ReplayBound.model_validate(replay).max_age
        self._payload_time = None if self.max_age is None else _compile_value(self.max_age.time)
        self.fallback = FallbackBound.model_validate(otherwise_keys(mapping.verification or {}))
        self._fallback_time = (None if self.fallback.max_age is None
                               else _compile_value(self.fallback.max_age.time))
        self.replies = ReplyConfig.model_validate(mapping.reply or {})
        self.options = GenericOptions.model_validate(mapping.options)
        self._needs_fields = self._scheme_reads_body_fields()

    def _scheme_reads_body_fields(self) -> bool:
        scheme: signatures.Verification | None = self.verification
        while isinstance(scheme, signatures.SignatureScheme):
            if scheme.signature.field or (scheme.timestamp and scheme.timestamp.field):
                return True
            if any(part.field or (part.sorted_params and part.sorted_params.from_ == "fields")
                   for part in scheme.signed):
                return True
            scheme = scheme.otherwise
        return False

    # -- request handling ------------------------------------------------------------------

    def _max_body(self) -> int:
        if self.options.max_body_bytes is not None:
            return self.options.max_body_bytes
        # without its own cap the source takes what the pipeline let through (MAX_BODY_BYTES)
        return MAX_BODY_LIMIT

    def handshake(self, request: WebhookRequest, account: Account) -> WebhookResponse:
        """Answer the mapping's GET handshake by echoing the named query parameter, or 405 when it has none."""
        spec = self.options.handshake
        if spec is None:
            raise MethodNotAllowed(f"source {self.name!r} takes POST only")
        value = request.query.get(spec.query)
        if not value:
            raise BadRequest(f"missing query parameter {spec.query!r}")
        if len(value) > MAX_ECHO:
            raise BadRequest(f"query parameter {spec.query!r} is longer than {MAX_ECHO} characters")
        body = render(spec.body, {"value": value}, json_escape=_is_json(spec.content_type))
        return WebhookResponse(status=200, body=body, content_type=spec.content_type)

    def _parse(self, request: WebhookRequest) -> Any:
        payloads.check_size(request.body, self._max_body())
        return payloads.parse_body(request.body, self.mapping.format, request.charset)

    def _account_values(self, account: Account) -> dict[str, Any]:
        """``_account.<name>`` for each ``accountValues`` entry; a bad identity type is 503."""
        secret = account.secret or {}
        values: dict[str, Any] = {}
        for name, spec in self.options.account_values.items():
            value = secret.get(spec.secret)
            if value is None or value == "":
                value = spec.default
            elif spec.kind == "identityType":
                try:
                    value = _IDENTITY_TYPE.validate_python(value)
                except ValidationError as exc:
                    raise Unavailable(f"the account's secret field {spec.secret!r} is not a DM Hub identity type "
                                      "(lower case letters, digits, '-' or '_')",
                                      code="account_misconfigured") from exc
            values[name] = value
        return values

    def _decrypt(self, messages: list[dict[str, Any]], account: Account) -> list[dict[str, Any]]:
        out = []
        for message in messages:
            message = dict(message)
            for spec in self.options.decrypt:
                value = message.get(spec.field)
                if isinstance(value, dict) and spec.ciphertext in value:
                    message[spec.field] = _open(spec, value, account)
            out.append(message)
        return out

    def _inbound(self, request: WebhookRequest, payload: Any, account: Account | None = None, *,
                 decrypt: bool = False) -> Inbound:
        try:
            messages = split_messages(self.mapping, payload)
        except MappingError as exc:
            raise BadRequest(str(exc)) from exc
        clear_text = request.body
        if self.options.decrypt and account is not None:
            opened = self._decrypt(messages, account) if decrypt or account.secret else messages
            if opened != messages:
                # What is kept for replay is the clear text, so a replay needs no key.
                messages = opened
                clear_text = json.dumps(messages[0] if isinstance(payload, dict) else messages,
                                        ensure_ascii=False).encode("utf-8")
        if account is not None and self.options.account_values:
            values_of_account = self._account_values(account)
            messages = [{**message, "_account": values_of_account} for message in messages]
        context: dict[str, Any] = {}
        if self.options.request_values:
            values = {name: (signatures.first_header(request.headers, spec.header) if spec.header
                             else request.query.get(spec.query or ""))
                      for name, spec in self.options.request_values.items()}
            context["request"] = values
            messages = [{**message, "_request": values} for message in messages]
        payload_type = payloads.CONTENT_TYPES[self.mapping.format]
        if self.mapping.format != "xml" and request.charset.lower() not in ("utf-8", "utf8"):
            payload_type += f"; charset={request.charset}"
        return Inbound(messages=messages, payload=clear_text, payload_type=payload_type, context=context)

    def receive(self, request: WebhookRequest, account: Account) -> Inbound:
        """Verify the request with the mapping's verification block, then parse its body into messages."""
        if self.verification is None:
            # Fail closed: accepting unauthenticated requests must be written down as {scheme: none}.
            raise Unavailable(
                f"source {self.name!r} has no verification block; configure a signature scheme, "
                "or {scheme: none} to accept unauthenticated requests",
                code="verification_not_configured",
            )
        payload: Any = None
        if self._needs_fields:
            payload = self._parse(request)
        else:
            # Verify before parsing: an unauthenticated body is never decoded.
            payloads.check_size(request.body, self._max_body())
        fields = payload if isinstance(payload, dict) else {}
        used = signatures.verify(
            self.verification,
            signatures.SignedRequest(
                body=request.body,
                headers=request.headers,
                query=request.query,
                fields=fields,
                received_at=request.received_at,
            ),
            account.secret,
        )
        if payload is None:
            payload = self._parse(request)
        inbound = self._inbound(request, payload, account, decrypt=True)
        fallback = isinstance(self.verification, signatures.SignatureScheme) and \
            used is self.verification.otherwise
        if fallback:
            self._agree(inbound)
            if self.fallback.max_age is not None and self._fallback_time is not None:
                self._bound_age(request, inbound, self.fallback.max_age, self._fallback_time)
        elif self.max_age is not None and self._payload_time is not None:
            self._bound_age(request, inbound, self.max_age, self._payload_time)
        return inbound

    def _agree(self, inbound: Inbound) -> None:
        """Refuse (401) a fallback-verified payload whose unsigned fields differ from the signed
        values ``verification.otherwise.agree`` derives them from."""
        for message in inbound.messages:
            try:
                decoded = decode_message(self.mapping, message)
            except MappingError as exc:
                raise Unauthorized("the signed part of the body cannot be read to check the unsigned fields",
                                   code="unsigned_field") from exc
            for name, expression in self.fallback._agree.items():
                try:
                    signed = search(expression, decoded)
                except JMESPathError:
                    signed = None
                # a list names every value the signed content allows (a chain shop's root and branch ids)
                allowed = {_scalar(item) for item in signed} if isinstance(signed, list) else {_scalar(signed)}
                allowed.discard(None)
                if _scalar(message.get(name)) not in allowed:
                    raise Unauthorized(f"body field {name!r} is not covered by the signature and does not match "
                                       "the signed content", code="unsigned_field")

    def _bound_age(self, request: WebhookRequest, inbound: Inbound, spec: MaxAge, read: Any) -> None:
        """Refuse (401) a payload with a message older (or newer) than ``maxAge``; a bounded
        message without a readable time is refused on its own and kept on the UnmappedQueue."""
        kept: list[dict[str, Any]] = []
        for index, message in enumerate(inbound.messages):
            try:
                decoded = decode_message(self.mapping, message)
                bounded = spec._when is None or not is_false(search(spec._when, decoded))
                moment = _epoch(read(decoded)) if bounded else None
            except (MappingError, converters.ConversionError, JMESPathError):
                bounded, moment = True, None
            if bounded and moment is None:
                inbound.rejected.append(MessageRejection(
                    index, "no payload time to bound its age (verification.maxAge.time); kept, not delivered"))
                continue
            if moment is not None and abs(request.received_at - moment) > spec.seconds:
                raise Unauthorized(f"stale payload: a message's own time is more than {spec.seconds} s "
                                   "from now (verification.maxAge)", code="stale")
            kept.append(message)
        inbound.messages = kept

    def parse_unverified(self, request: WebhookRequest, account: Account) -> Inbound:
        """Parse the body without verifying it, for dry runs and replays of payloads verified on arrival."""
        return self._inbound(request, self._parse(request), account)

    def request_names(self) -> RequestNames:
        """What ``requestValues`` reads (routing, externalIds) and the signed headers and query
        parameters the verification names; the signature itself is never among them."""
        headers = {name.lower() for spec in self.options.request_values.values()
                   for name in signatures.header_names(spec.header)}
        query = {spec.query for spec in self.options.request_values.values() if spec.query}
        scheme = self.verification
        while isinstance(scheme, signatures.SignatureScheme):  # the scheme, then its fallback
            signed_headers, signed_query = _signed_names(scheme)
            headers |= {name for names in signed_headers for name in names}
            query |= signed_query or set()
            headers -= {name.lower() for name in signatures.header_names(scheme.signature.header)}
            if scheme.signature.query:
                query.discard(scheme.signature.query)
            scheme = scheme.otherwise
        return RequestNames(headers=frozenset(headers), query=frozenset(query))

    # -- answers ---------------------------------------------------------------------------

    def reply(self, request: WebhookRequest, outcome: IngestOutcome) -> WebhookResponse:
        """The success reply: the mapping's template, or a JSON summary of what was enqueued."""
        template = self.replies.success
        if template is None:
            return _json(200, {"success": True, "enqueued": outcome.enqueued, "duplicates": outcome.duplicates})
        values = {
            "enqueued": outcome.enqueued,
            "duplicates": outcome.duplicates,
            "skipped": outcome.skipped,
            "unmapped": outcome.unmapped,
            "rejected": len(outcome.rejected),
            "requestId": request.request_id or "",
        }
        body = render(template.body, values, json_escape=_is_json(template.content_type))
        return WebhookResponse(status=template.status or 200, body=body, content_type=template.content_type)

    def error_reply(self, request: WebhookRequest | None, error: WebhookError) -> WebhookResponse:
        """The error reply: the mapping's template for the error's code, or the error's own JSON body."""
        template = self.replies.errors.get(type(error).code) or self.replies.error
        if template is None:
            return _json(error.status, error.to_body())
        values = {
            "status": error.status,
            "code": error.code,
            "message": error.message,
            "requestId": (request.request_id if request else None) or "",
        }
        body = render(template.body, values, json_escape=_is_json(template.content_type))
        return WebhookResponse(status=template.status or error.status, body=body,
                               content_type=template.content_type)


def _scalar(value: Any) -> str | None:
    """A scalar as comparable text (``10001`` and ``"10001"`` agree); None for anything else."""
    if value is None or isinstance(value, (dict, list, bool)):
        return None
    try:
        return converters.to_string(value, None)
    except converters.ConversionError:
        return None


def _open(spec: DecryptSpec, value: dict[str, Any], account: Account) -> Any:
    """Decrypt one ``decrypt`` field: 400 for what the request got wrong, 503 for a bad key."""
    import base64
    import binascii

    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    for name, wanted in spec.expect.items():
        if value.get(name) != wanted:
            raise BadRequest(f"{spec.field}.{name} must be {wanted!r}", code="decrypt_failed")
    raw_key = (account.secret or {}).get(spec.key.secret)
    if not isinstance(raw_key, str) or not raw_key:
        raise Unavailable(f"the account's secret has no {spec.key.secret!r} field", code="account_misconfigured")
    try:
        key = signatures.decode_key(raw_key, spec.key.decode)
    except (ValueError, binascii.Error) as exc:
        raise Unavailable(f"the account's secret field {spec.key.secret!r} is not {spec.key.decode}",
                          code="account_misconfigured") from exc
    if len(key) != 32:
        raise Unavailable(f"the account's secret field {spec.key.secret!r} is {len(key)} bytes; AES-256 needs 32",
                          code="account_misconfigured")
    ciphertext, nonce = value.get(spec.ciphertext), value.get(spec.nonce)
    associated = value.get(spec.associated_data) if spec.associated_data else None
    if not isinstance(ciphertext, str) or not isinstance(nonce, str) or not nonce:
        raise BadRequest(f"{spec.field} needs text fields {spec.ciphertext!r} and {spec.nonce!r}",
                         code="decrypt_failed")
    if associated is not None and not isinstance(associated, str):
        raise BadRequest(f"{spec.field}.{spec.associated_data} must be text", code="decrypt_failed")
    if len(ciphertext) > MAX_CIPHERTEXT or len(nonce) > 64 or len(associated or "") > 1024:
        raise BadRequest(f"{spec.field} is too large to decrypt", code="decrypt_failed")
    try:
        data = base64.b64decode(ciphertext, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BadRequest(f"{spec.field}.{spec.ciphertext} is not base64", code="decrypt_failed") from exc
    if len(data) <= 16:
        raise BadRequest(f"{spec.field}.{spec.ciphertext} is too short to hold a tag", code="decrypt_failed")
    try:
        plain = AESGCM(key).decrypt(nonce.encode("utf-8"), data, (associated or "").encode("utf-8"))
    except InvalidTag as exc:
        # Wrong key, nonce, associated data or a changed ciphertext: GCM cannot say which.
        raise BadRequest(f"{spec.field} could not be decrypted with this account's key (authentication tag "
                         "mismatch)", code="decrypt_failed") from exc
    except ValueError as exc:
        raise BadRequest(f"{spec.field}.{spec.nonce} is not a usable nonce", code="decrypt_failed") from exc
    try:
        return converters.load_json(plain)
    except (ValueError, RecursionError) as exc:
        raise BadRequest(f"decrypted {spec.field} is not JSON", code="decrypt_failed") from exc


def _epoch(value: Any) -> float | None:
    """A payload time as epoch seconds: an int (epoch seconds) or a converter's DM Hub date."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return float(value)
    if isinstance(value, str):
        try:
            return datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()
        except ValueError:
            return None
    return None


def _json(status: int, body: dict[str, Any]) -> WebhookResponse:
    from dmhub_adapter.webhook import json_response

    return json_response(status, body)


def build(mapping: MappingPlan) -> GenericSource:
    """The registry's factory for config-described sources."""
    return GenericSource(mapping)
