"""Signature schemes as configuration: the ``verification:`` block of a mapping file.

A scheme says where the signature (and optionally a timestamp) lives in the request, how
the signed bytes are assembled from named parts, which algorithm and key produce the
digest, and how the digest is encoded. That covers the usual webhook families without code:

- plain digests with the secret inside the signed string (Youzan, Doudian:
  ``md5(client_id + body + secret)``);
- HMACs keyed by a secret field, hex or base64, with prefixes like ``sha256=``;
- Standard Webhooks: ``v1,<base64 HMAC-SHA256 of id.timestamp.body>`` with a ``whsec_``
  base64 key, several space-separated signatures (key rotation), a ±5 min window, and
  ``v1a`` ed25519 signatures with a ``whpk_`` public key.

Everything is validated when the mapping loads (:func:`parse_verification`), so a bad block
fails ``check-config`` naming the field. At request time :func:`verify` raises
:class:`~dmhub_adapter.errors.Unauthorized` (401) for a missing, malformed or wrong signature
or a missing or stale timestamp; digests are compared in constant time.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from functools import lru_cache
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from dmhub_adapter.errors import Unauthorized, Unavailable
from dmhub_adapter.mapping.config import block_problems
from dmhub_adapter.validation import StrictModel

HASHES: dict[str, Callable[..., Any]] = {
    "md5": hashlib.md5,
    "sha1": hashlib.sha1,
    "sha256": hashlib.sha256,
    "sha512": hashlib.sha512,
}
HMACS = {f"hmac-{name}": name for name in HASHES}
#: public-key signatures (RSASSA-PKCS1-v1_5): WeChat Pay APIv3, Alipay RSA2
RSA = {"rsa-sha256": hashlib.sha256}
ALGORITHMS = (*HASHES, *HMACS, "ed25519", *RSA)
ENCODINGS = ("hex", "hex-lower", "hex-upper", "base64", "base64url")
KEY_DECODINGS = ("text", "base64", "hex", "whsec", "pem")
#: a selector value (key id, certificate serial) longer than this is not one
MAX_KEY_ID = 128
#: prefixes Standard Webhooks puts before base64 key material (secret, signing key, public key)
_KEY_PREFIXES = ("whsec_", "whsk_", "whpk_")
#: more signatures than this in one header is not rotation but an attempt to make us work
MAX_SIGNATURES = 16
_GMT8 = timezone(timedelta(hours=8))


#: a header name, or several: the first one present in the request is read
HeaderNames = str | list[str]


def header_names(header: HeaderNames | None) -> list[str]:
    """The header names a location accepts, in order (a single name is a list of one)."""
    if header is None:
        return []
    return [header] if isinstance(header, str) else list(header)


def _check_headers(value: HeaderNames | None) -> HeaderNames | None:
    names = header_names(value)
    if value is not None and (not names or any(not name for name in names)):
        raise ValueError("a header is a non-empty name or a non-empty list of names")
    if len({name.lower() for name in names}) != len(names):
        raise ValueError("the same header is named twice")
    return value


class _Located(StrictModel):
    """A value in the request: exactly one of a header, a query parameter or a body field.

    ``header`` may list alternatives (``[svix-id, webhook-id]``): the first present wins, so one
    mapping accepts senders that name the same value differently."""

    header: HeaderNames | None = Field(
        default=None, description="header name (case-insensitive), or a list of alternatives: first present wins"
    )
    query: str | None = Field(default=None, min_length=1, description="query parameter name")
    field: str | None = Field(default=None, min_length=1, description="top-level field of the parsed body")

    @field_validator("header")
    @classmethod
    def _headers(cls, value: HeaderNames | None) -> HeaderNames | None:
        return _check_headers(value)

    @model_validator(mode="after")
    def _one_place(self) -> _Located:
        places = [name for name in ("header", "query", "field") if getattr(self, name) is not None]
        if len(places) != 1:
            raise ValueError("give exactly one of header, query or field")
        return self

    @property
    def where(self) -> str:
        return _where(self.header, self.query, self.field)


class SignatureLocation(_Located):
    """Where the signature is and how it is written."""

    encoding: str = Field(default="hex", description=f"one of {', '.join(ENCODINGS)}")
    prefix: str = Field(default="", description="text before the digest, e.g. 'sha256=' or 'v1,'")
    separator: str | None = Field(
        default=None, description="several signatures in one value split by this (e.g. ' '); any match passes"
    )

    @field_validator("encoding")
    @classmethod
    def _encoding(cls, value: str) -> str:
        if value not in ENCODINGS:
            raise ValueError(f"unknown encoding {value!r}; known: {', '.join(ENCODINGS)}")
        return value


class TimestampSpec(_Located):
    """A timestamp the sender sets; requests outside ``tolerance`` seconds are refused."""

    format: Literal["seconds", "milliseconds", "gmt8", "iso8601"] = Field(
        default="seconds", description="epoch seconds, epoch milliseconds, 'yyyy-MM-dd HH:mm:ss' GMT+8, ISO-8601"
    )
    tolerance: int = Field(default=300, ge=1, le=86400, description="allowed clock difference in seconds")


class KeySelector(StrictModel):
    """Where the request names its key (``{header: Wechatpay-Serial}``): the secret field is then
    an object of keys by id, and the named one verifies (several for rotation)."""

    header: HeaderNames = Field(description="header carrying the key id (certificate serial, public-key id)")

    @field_validator("header")
    @classmethod
    def _headers(cls, value: HeaderNames) -> HeaderNames:
        checked = _check_headers(value)
        assert checked is not None
        return checked


class KeySpec(StrictModel):
    """The key of an HMAC (or the ed25519 / RSA public key): a secret field, decoded."""

    secret: list[str] = Field(
        min_length=1,
        description="secret field name; a list names the current key first, then older ones still accepted",
    )
    decode: str = Field(default="text", description=f"one of {', '.join(KEY_DECODINGS)}")
    select: KeySelector | None = Field(
        default=None, description="the request names the key: the secret field is {key id: key}"
    )

    @field_validator("secret", mode="before")
    @classmethod
    def _one(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("decode")
    @classmethod
    def _decode(cls, value: str) -> str:
        if value not in KEY_DECODINGS:
            raise ValueError(f"unknown key decoding {value!r}; known: {', '.join(KEY_DECODINGS)}")
        return value


class SortedParams(StrictModel):
    """``k1v1k2v2…`` over parameters sorted by name (the TOP/Qimen style)."""

    from_: Literal["query", "fields"] = Field(default="query", alias="from", description="query or body fields")
    exclude: list[str] = Field(default_factory=list, description="names left out (e.g. sign)")
    skip_empty: bool = Field(default=True, alias="skipEmpty", description="leave out empty values")
    assign: str = Field(default="", description="between a name and its value")
    join: str = Field(default="", description="between pairs")


_BARE_PARTS = ("body", "timestamp")


class Part(StrictModel):
    """One piece of the signed bytes. In YAML: ``body``, ``timestamp``, or a one-key mapping."""

    body: bool = Field(default=False, description="the raw request body, byte for byte")
    timestamp: bool = Field(default=False, description="the timestamp value exactly as sent")
    header: HeaderNames | None = Field(default=None, description="a header, or alternatives: first present wins")
    query: str | None = None
    field: str | None = Field(default=None, description="top-level field of the parsed body, as text")
    secret: str | None = Field(default=None, description="a field of the account's secret")
    literal: str | None = None
    sorted_params: SortedParams | None = Field(default=None, alias="sortedParams")

    @model_validator(mode="before")
    @classmethod
    def _bare(cls, data: Any) -> Any:
        if isinstance(data, str):
            if data not in _BARE_PARTS:
                raise ValueError(
                    f"unknown part {data!r}; use body, timestamp or a mapping such as {{header: NAME}}, "
                    "{query: NAME}, {field: NAME}, {secret: NAME}, {literal: TEXT}, {sortedParams: {...}}"
                )
            return {data: True}
        return data

    @field_validator("header")
    @classmethod
    def _headers(cls, value: HeaderNames | None) -> HeaderNames | None:
        return _check_headers(value)

    @model_validator(mode="after")
    def _one(self) -> Part:
        chosen = [name for name in ("header", "query", "field", "secret", "literal", "sorted_params")
                  if getattr(self, name) is not None]
        chosen += [name for name in _BARE_PARTS if getattr(self, name)]
        if len(chosen) != 1:
            raise ValueError("each part is exactly one of body, timestamp, header, query, field, secret, "
                             "literal or sortedParams")
        return self


class NoVerification(StrictModel):
    """``{scheme: none}``: an unauthenticated source (demos, trusted networks). Must be explicit."""

    scheme: Literal["none"]


class SignatureScheme(StrictModel):
    """``{scheme: signature, ...}``: a digest over named parts of the request."""

    scheme: Literal["signature"]
    algorithm: str = Field(description=f"one of {', '.join(ALGORITHMS)}")
    signature: SignatureLocation
    signed: list[Part] = Field(min_length=1, description="the parts concatenated into the signed bytes")
    key: KeySpec | None = Field(default=None, description="HMAC key or ed25519 public key (not for plain digests)")
    timestamp: TimestampSpec | None = None
    charset: str = Field(default="utf-8", description="how text parts (not the body) become bytes")
    header_values: dict[str, list[str]] = Field(
        default_factory=dict, alias="headerValues",
        description="headers that, when sent, must hold one of these values (e.g. a signature type); "
        "absent is allowed",
    )
    otherwise: SignatureScheme | None = Field(
        default=None,
        description="a second scheme tried only when this one's signature is absent from the request "
        "(a legacy dialect of the same sender); a present but wrong signature is refused outright",
    )

    @field_validator("algorithm")
    @classmethod
    def _algorithm(cls, value: str) -> str:
        if value not in ALGORITHMS:
            raise ValueError(f"unknown algorithm {value!r}; known: {', '.join(ALGORITHMS)}")
        return value

    @field_validator("charset")
    @classmethod
    def _charset(cls, value: str) -> str:
        try:
            "".encode(value)
        except LookupError as exc:
            raise ValueError(f"unknown charset {value!r}") from exc
        return value

    @model_validator(mode="after")
    def _consistent(self) -> SignatureScheme:
        keyed = self.algorithm in HMACS or self.algorithm == "ed25519" or self.algorithm in RSA
        if self.key is not None and (self.algorithm in RSA) != (self.key.decode == "pem"):
            raise ValueError("RSA keys are PEM (key.decode: pem) and PEM keys are for RSA algorithms")
        if self.key is not None and self.key.select is not None and self.algorithm not in RSA:
            raise ValueError("key.select (a key chosen by the request) is for public-key algorithms only")
        if keyed and self.key is None:
            raise ValueError(f"algorithm {self.algorithm!r} needs 'key' naming the secret field it is keyed with")
        if not keyed:
            if self.key is not None:
                raise ValueError(f"algorithm {self.algorithm!r} is a plain digest and takes no 'key'; "
                                 "put the secret into 'signed' as {secret: FIELD}")
            if not any(part.secret for part in self.signed):
                raise ValueError(f"algorithm {self.algorithm!r} is a plain digest: 'signed' must contain a "
                                 "{secret: FIELD} part, or anyone could compute the signature")
        if any(part.timestamp for part in self.signed) and self.timestamp is None:
            raise ValueError("part 'timestamp' in 'signed' needs a 'timestamp' block saying where it is")
        return self

    def is_asymmetric(self) -> bool:
        """Whether the signature is checked with a public key rather than recomputed."""
        return self.algorithm == "ed25519" or self.algorithm in RSA

    def secret_fields(self) -> list[str]:
        """Secret fields the scheme requires (the first key field; older keys are optional)."""
        names = [part.secret for part in self.signed if part.secret]
        if self.key is not None:
            names.append(self.key.secret[0])
        return list(dict.fromkeys(names))


Verification = NoVerification | SignatureScheme


class VerificationConfigError(ValueError):
    """A verification block that cannot work, with one message per problem for `check-config`."""
    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def parse_verification(data: Any, prefix: str = "verification") -> Verification:
    """Validate a ``verification`` block; raises :class:`VerificationConfigError` naming fields."""
    if data is None:
        raise VerificationConfigError(
            [f"field {prefix!r}: required; name a signature scheme, or write {{scheme: none}} "
             "for an unauthenticated source"]
        )
    if not isinstance(data, dict):
        raise VerificationConfigError([f"field {prefix!r}: expected a mapping"])
    scheme = data.get("scheme")
    model: type[NoVerification] | type[SignatureScheme]
    if scheme == "none":
        model = NoVerification
    elif scheme == "signature":
        model = SignatureScheme
    else:
        what = "required" if scheme is None else f"unknown scheme {scheme!r}"
        raise VerificationConfigError([f"field '{prefix}.scheme': {what}; known: signature, none"])
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise VerificationConfigError(block_problems(exc, prefix)) from exc


# --------------------------------------------------------------------------------------------
# Request time


@dataclass(frozen=True)
class SignedRequest:
    """What a scheme reads from a request. ``fields`` is the parsed body's top level (if any)."""

    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)  # lower-case names
    query: Mapping[str, str] = field(default_factory=dict)
    fields: Mapping[str, Any] = field(default_factory=dict)
    received_at: float = 0.0


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return str(value)
    return None


def first_header(headers: Mapping[str, str], header: HeaderNames) -> str | None:
    """The value of the first of ``header``'s names present in ``headers`` (lower-case keys)."""
    for name in header_names(header):
        value = headers.get(name.lower())
        if value is not None:
            return value
    return None


def _lookup(request: SignedRequest, header: HeaderNames | None, query: str | None, name: str | None) -> str | None:
    if header is not None:
        return first_header(request.headers, header)
    if query is not None:
        return request.query.get(query)
    assert name is not None
    return _text(request.fields.get(name))


def _locate(spec: _Located, request: SignedRequest) -> str | None:
    return _lookup(request, spec.header, spec.query, spec.field)


def _where(header: HeaderNames | None, query: str | None, name: str | None) -> str:
    if header is not None:
        names = header_names(header)
        return f"header {names[0]!r}" if len(names) == 1 else f"header {' or '.join(repr(n) for n in names)}"
    return f"query parameter {query!r}" if query is not None else f"body field {name!r}"


def _secret_text(secret: Mapping[str, Any], name: str) -> str:
    value = secret.get(name)
    if value is None or value == "":
        # The account is misconfigured; the platform's retry succeeds once it is fixed.
        raise Unavailable(f"the account's secret has no {name!r} field", code="account_misconfigured")
    return str(value)


def _sorted_params(spec: SortedParams, request: SignedRequest) -> str:
    source: Mapping[str, Any] = request.query if spec.from_ == "query" else request.fields
    pairs = []
    for name in sorted(source):
        if name in spec.exclude:
            continue
        value = _text(source[name])
        if value is None:
            if spec.from_ == "fields":
                # An object, array or null has no k+v text, so the signature cannot cover it; it
                # would reach the mapping unsigned (an added "customer": {...} verified before).
                raise Unauthorized(f"body field {name[:64]!r} is not a string, number or boolean, so the "
                                   "signature cannot cover it", code="unsigned_field")
            continue
        if spec.skip_empty and value == "":
            continue  # the sender leaves it out too; an empty text carries no value to forge
        pairs.append(f"{name}{spec.assign}{value}")
    return spec.join.join(pairs)


def signed_bytes(scheme: SignatureScheme, request: SignedRequest, secret: Mapping[str, Any]) -> bytes:
    """The exact bytes the sender signed; a referenced value that is absent → 401."""
    chunks: list[bytes] = []
    for part in scheme.signed:
        if part.body:
            chunks.append(request.body)
            continue
        text: str | None
        if part.timestamp:
            assert scheme.timestamp is not None
            text = _locate(scheme.timestamp, request)
            what = f"timestamp ({scheme.timestamp.where})"
        elif part.secret is not None:
            text = _secret_text(secret, part.secret)
            what = "secret"
        elif part.literal is not None:
            text, what = part.literal, "literal"
        elif part.sorted_params is not None:
            text, what = _sorted_params(part.sorted_params, request), "sortedParams"
        else:
            text = _lookup(request, part.header, part.query, part.field)
            what = _where(part.header, part.query, part.field)
        if text is None:
            raise Unauthorized(f"missing {what}, which the signature covers", code="missing_signature_input")
        chunks.append(text.encode(scheme.charset))
    return b"".join(chunks)


_BASE64_RE = re.compile(r"[A-Za-z0-9+/]*={0,2}")
_HEX_RE = re.compile(r"(?:[0-9A-Fa-f]{2})*")
#: the field prime of edwards25519
_P25519 = 2**255 - 19
#: y-coordinates of the points of small order (1, 2, 4, 8): as public keys they make forged
#: signatures verify (the identity point accepts (R = identity, S = 0) for every message).
#: The same set libsodium refuses in ``crypto_sign_verify_detached`` (``has_small_order``).
_SMALL_ORDER_Y = frozenset({
    0,
    1,
    _P25519 - 1,
    int.from_bytes(bytes.fromhex("26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05"), "little"),
    int.from_bytes(bytes.fromhex("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a"), "little"),
})


def decode_key(raw: str, decoding: str) -> bytes:
    """Key material from a secret field (``whsec``: Standard Webhooks' prefixed base64).

    Strict: a character outside the alphabet is an error, never silently dropped (a key with
    junk in it is a typo the operator must see, not a different key)."""
    if decoding in ("text", "pem"):
        return raw.encode("utf-8")
    text = raw.strip()
    if decoding == "hex":
        if not _HEX_RE.fullmatch(text):
            raise ValueError("not an even number of hex digits")
        return bytes.fromhex(text)
    if decoding == "whsec":
        for prefix in _KEY_PREFIXES:
            text = text.removeprefix(prefix)
    # Keys are often stored without padding: pad to a multiple of 4, then decode strictly.
    text = text.rstrip("=")
    if not _BASE64_RE.fullmatch(text) or len(text) % 4 == 1:
        raise ValueError("not base64")
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


def check_ed25519_public_key(key: bytes) -> None:
    """Raise ValueError unless ``key`` is a 32-byte canonical ed25519 point of large order."""
    if len(key) != 32:
        raise ValueError(f"an ed25519 public key is 32 bytes, not {len(key)}")
    y = int.from_bytes(key, "little") & ((1 << 255) - 1)
    if y >= _P25519:
        raise ValueError("not a canonical ed25519 point encoding")
    if y in _SMALL_ORDER_Y:
        raise ValueError("a small-order ed25519 point (it would accept forged signatures)")


def _keys(scheme: SignatureScheme, secret: Mapping[str, Any]) -> list[bytes]:
    assert scheme.key is not None
    keys = []
    for index, name in enumerate(scheme.key.secret):
        if index > 0 and not secret.get(name):
            continue  # older keys are optional
        try:
            key = decode_key(_secret_text(secret, name), scheme.key.decode)
            if scheme.algorithm == "ed25519":
                check_ed25519_public_key(key)
        except (ValueError, binascii.Error) as exc:
            # The field is named (the operator must find it); the key itself never is.
            raise Unavailable(f"the account's secret field {name!r} is not a valid {scheme.key.decode} "
                              f"{'ed25519 public key' if scheme.algorithm == 'ed25519' else 'key'}: {exc}",
                              code="account_misconfigured") from exc
        if not key:
            raise Unavailable(f"the account's secret field {name!r} is empty", code="account_misconfigured")
        keys.append(key)
    return keys


def account_keys(scheme: SignatureScheme, secret: Mapping[str, Any]) -> list[bytes]:
    """The decoded keys of an account's secret (for start-up checks); raises
    :class:`~dmhub_adapter.errors.Unavailable` naming the field that does not decode."""
    return _keys(scheme, secret)


def digest(scheme: SignatureScheme, data: bytes, key: bytes | None = None) -> bytes:
    """The raw hash or HMAC of `data` with the scheme's algorithm (`key` is required for HMACs)."""
    if scheme.algorithm in HASHES:
        return bytes(HASHES[scheme.algorithm](data).digest())
    if scheme.algorithm in HMACS:
        assert key is not None
        return hmac.new(key, data, HMACS[scheme.algorithm]).digest()
    raise ValueError(f"{scheme.algorithm} is verified with a public key, not recomputed")


def encode(raw: bytes, encoding: str) -> str:
    """The digest written the way the sender writes it: hex, upper-case hex, base64 or base64url."""
    if encoding == "hex-upper":
        return raw.hex().upper()
    if encoding in ("hex", "hex-lower"):
        return raw.hex()
    if encoding == "base64url":
        return base64.urlsafe_b64encode(raw).decode("ascii")
    return base64.b64encode(raw).decode("ascii")


def _decode_signature(text: str, encoding: str) -> bytes | None:
    """The digest a presented signature encodes, or None when it is not even well-formed."""
    try:
        if encoding.startswith("hex"):
            return bytes.fromhex(text)
        if encoding == "base64url":
            return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (ValueError, binascii.Error):
        return None


def presented_signatures(location: SignatureLocation, value: str) -> list[str]:
    """The candidate signatures in a header value, split and unprefixed as the location says."""
    entries = value.split(location.separator) if location.separator else [value]
    found = []
    for entry in entries[: MAX_SIGNATURES * 4]:
        entry = entry.strip()
        # Entries of another version (e.g. v1a beside v1) are not ours to check.
        if entry and entry.startswith(location.prefix):
            found.append(entry[len(location.prefix) :])
    return found[:MAX_SIGNATURES]


def format_timestamp(spec: TimestampSpec, now: float) -> str:
    """``now`` written the way the scheme's sender writes its timestamp (the inverse of
    :func:`parse_timestamp`, for tools that sign)."""
    if spec.format == "seconds":
        return str(int(now))
    if spec.format == "milliseconds":
        return str(int(now * 1000))
    if spec.format == "gmt8":
        return datetime.fromtimestamp(now, _GMT8).strftime("%Y-%m-%d %H:%M:%S")
    return datetime.fromtimestamp(int(now), UTC).isoformat().replace("+00:00", "Z")


def parse_timestamp(spec: TimestampSpec, text: str) -> float:
    """Epoch seconds of a timestamp as sent; raises ValueError when it does not parse."""
    text = text.strip()
    if spec.format in ("seconds", "milliseconds"):
        if not re.fullmatch(r"[0-9]{1,16}(\.[0-9]{1,9})?", text):
            raise ValueError("not an epoch number")
        seconds = float(text)
        return seconds / 1000 if spec.format == "milliseconds" else seconds
    if spec.format == "gmt8":
        # A form-encoded space may arrive as '+'.
        local = datetime.strptime(text.replace("+", " "), "%Y-%m-%d %H:%M:%S")
        return local.replace(tzinfo=_GMT8).timestamp()
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        raise ValueError("no UTC offset")
    return parsed.timestamp()


def check_timestamp(spec: TimestampSpec, request: SignedRequest) -> None:
    """Refuse a request whose signed timestamp is missing, malformed or outside the allowed window."""
    text = _locate(spec, request)
    if not text:
        raise Unauthorized(f"missing timestamp ({spec.where})", code="missing_timestamp")
    try:
        sent = parse_timestamp(spec, text)
    except ValueError as exc:
        raise Unauthorized(f"malformed timestamp ({spec.where})", code="bad_timestamp") from exc
    now = request.received_at or time.time()
    if abs(now - sent) > spec.tolerance:
        raise Unauthorized(
            f"timestamp ({spec.where}) is {int(now - sent)} s from now; tolerance is {spec.tolerance} s",
            code="stale_timestamp",
        )


def verify(scheme: Verification, request: SignedRequest, secret: Mapping[str, Any] | None) -> Verification:
    """Check a request against its scheme; returns the scheme that verified it (the scheme, or
    its ``otherwise`` fallback when the request carries no signature where the scheme looks)
    or raises Unauthorized/Unavailable."""
    if isinstance(scheme, NoVerification):
        return scheme
    if secret is None:
        raise Unavailable("the account has no secret configured", code="account_misconfigured")
    value = _locate(scheme.signature, request)
    presented = presented_signatures(scheme.signature, value) if value else []
    if not presented:
        if scheme.otherwise is not None and value is None:
            return verify(scheme.otherwise, request, secret)
        raise Unauthorized(f"missing signature ({scheme.signature.where})", code="missing_signature")
    for name, allowed in scheme.header_values.items():
        sent = request.headers.get(name.lower())
        if sent is not None and sent.strip() not in allowed:
            raise Unauthorized(f"header {name!r} is {sent[:64]!r}; accepted: {', '.join(allowed)}",
                               code="bad_signature")
    if scheme.timestamp is not None:
        check_timestamp(scheme.timestamp, request)
    data = signed_bytes(scheme, request, secret)
    candidates = [_decode_signature(text, scheme.signature.encoding) for text in presented]
    if scheme.algorithm == "ed25519":
        if _ed25519_matches(_keys(scheme, secret), data, candidates):
            return scheme
    elif scheme.algorithm in RSA:
        if _rsa_matches(scheme, _selected_pem(scheme, request, secret), data, candidates):
            return scheme
    else:
        keys: list[bytes | None] = list(_keys(scheme, secret)) if scheme.key is not None else [None]
        expected = [digest(scheme, data, key) for key in keys]
        matched = False
        # Every candidate against every key, without an early exit, so timing says nothing.
        for candidate in candidates:
            for want in expected:
                matched |= hmac.compare_digest(want, candidate or b"")
        if matched:
            return scheme
    raise Unauthorized("signature does not match", code="bad_signature")


def _selected_pem(scheme: SignatureScheme, request: SignedRequest, secret: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(secret field path, PEM text) of the keys to try: the one the request names under
    ``key.select``, or each listed secret field."""
    assert scheme.key is not None
    if scheme.key.select is None:
        return [(name, _secret_text(secret, name)) for index, name in enumerate(scheme.key.secret)
                if index == 0 or secret.get(name)]
    where = _where(scheme.key.select.header, None, None)
    key_id = first_header(request.headers, scheme.key.select.header)
    if not key_id:
        raise Unauthorized(f"missing key id ({where})", code="missing_key_id")
    key_id = key_id.strip()
    if len(key_id) > MAX_KEY_ID or not key_id.isprintable():
        raise Unauthorized(f"malformed key id ({where})", code="unknown_key")
    found: list[tuple[str, str]] = []
    for name in scheme.key.secret:
        keys = secret.get(name)
        if keys is None:
            continue
        if not isinstance(keys, Mapping):
            raise Unavailable(f"the account's secret field {name!r} must be an object of keys by id",
                              code="account_misconfigured")
        pem = keys.get(key_id)
        if pem is not None:
            if not isinstance(pem, str) or not pem.strip():
                raise Unavailable(f"the account's secret field {name}.{key_id[:64]} is not PEM text",
                                  code="account_misconfigured")
            found.append((f"{name}.{key_id}", pem))
    if not found:
        # Never fetched on the request path: the operator adds a rotated key to the secret.
        raise Unauthorized(f"unknown key id {key_id[:64]!r} ({where}); the account's secret has no such key",
                           code="unknown_key")
    return found


@lru_cache(maxsize=64)
def load_rsa_public_key(pem: str) -> Any:
    """An RSA public key from PEM: a ``PUBLIC KEY`` or a ``CERTIFICATE`` (WeChat Pay platform
    certificates); raises ValueError for anything else (checked at load, never at verify)."""
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    data = pem.strip().encode("ascii", "strict")
    key = x509.load_pem_x509_certificate(data).public_key() if b"CERTIFICATE" in data[:40] \
        else load_pem_public_key(data)
    if not isinstance(key, RSAPublicKey):
        raise ValueError("not an RSA public key")
    if key.key_size < 2048:
        raise ValueError(f"an RSA key of {key.key_size} bits is too weak (at least 2048)")
    return key


def _rsa_matches(scheme: SignatureScheme, pems: list[tuple[str, str]], data: bytes,
                 candidates: list[bytes | None]) -> bool:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    for field_path, pem in pems:
        try:
            public = load_rsa_public_key(pem)
        except (ValueError, UnicodeError, TypeError) as exc:
            # The field is named (the operator must find it); the key itself never is.
            raise Unavailable(f"the account's secret field {field_path[:96]!r} is not a usable RSA public key "
                              f"or certificate: {str(exc)[:120]}", code="account_misconfigured") from exc
        for candidate in candidates:
            if not candidate:
                continue
            try:
                public.verify(candidate, data, padding.PKCS1v15(), hashes.SHA256())
                return True
            except InvalidSignature:
                continue
    return False


def _ed25519_matches(keys: list[bytes], data: bytes, candidates: list[bytes | None]) -> bool:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    for key in keys:
        try:
            public = Ed25519PublicKey.from_public_bytes(key)
        except ValueError as exc:
            raise Unavailable("the account's ed25519 public key is not 32 bytes",
                              code="account_misconfigured") from exc
        for candidate in candidates:
            if candidate is None:
                continue
            try:
                public.verify(candidate, data)
                return True
            except InvalidSignature:
                continue
    return False


def sign(scheme: SignatureScheme, request: SignedRequest, secret: Mapping[str, Any]) -> str:
    """The signature value a sender puts in the request (prefix included), for tools and tests.

    ed25519 and RSA need the private key, which an account secret never holds: sign those elsewhere.
    """
    data = signed_bytes(scheme, request, secret)
    key = _keys(scheme, secret)[0] if scheme.key is not None else None
    return scheme.signature.prefix + encode(digest(scheme, data, key), scheme.signature.encoding)
