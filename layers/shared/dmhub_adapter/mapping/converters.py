"""Named converters a mapping rule can apply to a value (``convert: [name, name:arg]``).

Each converter takes the value and an optional argument (the text after ``:``) and returns
the converted value or raises :class:`ConversionError` saying what is wrong. ``None`` passes
through every converter untouched, so optional fields stay optional.
"""

from __future__ import annotations

import base64
import gzip
import json
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar
from urllib.parse import unquote_plus

from dmhub_adapter.model.customer_event import _civil, format_dmhub_date

# A form-encoded query may carry the space as '+'.
_GMT8_RE = re.compile(r"^([0-9]{4})-([0-9]{2})-([0-9]{2})[ +]([0-9]{2}):([0-9]{2}):([0-9]{2})$")
_INTEGER_RE = re.compile(r"-?[0-9]+")

#: China Standard Time has no daylight saving; a fixed offset avoids loading tzdata.
GMT8 = timezone(timedelta(hours=8), "Asia/Shanghai")

# Epoch bounds keep absurd timestamps (garbage, or milliseconds read as seconds) out of DM Hub.
_MIN_EPOCH = 0
_MAX_EPOCH = 253402300799  # 9999-12-31T23:59:59Z


class ConversionError(ValueError):
    """A value could not be converted; the message says which converter and why."""


Converter = Callable[[Any, str | None], Any]
CONVERTERS: dict[str, Converter] = {}
#: converters that require an argument after ``:``
NEEDS_ARGUMENT: set[str] = set()


_F = TypeVar("_F", bound=Converter)


def converter(name: str, *, needs_argument: bool = False) -> Callable[[_F], _F]:
    def register(fn: _F) -> _F:
        CONVERTERS[name] = fn
        if needs_argument:
            NEEDS_ARGUMENT.add(name)
        return fn

    return register


def _number(value: Any, what: str) -> int:
    if isinstance(value, bool):
        raise ConversionError(f"{what}: expected a number, got a boolean")
    if isinstance(value, int):
        return value
    # ASCII digits only: str.isdigit() also accepts '²' and other digits int() refuses.
    if isinstance(value, str) and _INTEGER_RE.fullmatch(value.strip()):
        return int(value.strip())
    if isinstance(value, float) and value.is_integer():
        return int(value)
    raise ConversionError(f"{what}: expected an integer, got {value!r}")


def _epoch_to_date(seconds: int, what: str) -> str:
    if not _MIN_EPOCH <= seconds <= _MAX_EPOCH:
        raise ConversionError(f"{what}: {seconds} is outside the supported range of epoch seconds")
    return format_dmhub_date(datetime.fromtimestamp(seconds, tz=UTC))


@converter("unix_seconds")
def unix_seconds(value: Any, _: str | None) -> str:
    """Unix epoch seconds (int or digit string) → ``YYYY-MM-DDTHH:MM:SSZ``."""
    return _epoch_to_date(_number(value, "unix_seconds"), "unix_seconds")


@converter("unix_millis")
def unix_millis(value: Any, _: str | None) -> str:
    """Unix epoch milliseconds → ``YYYY-MM-DDTHH:MM:SSZ`` (sub-second part dropped)."""
    return _epoch_to_date(_number(value, "unix_millis") // 1000, "unix_millis")


@converter("gmt8")
def gmt8(value: Any, _: str | None) -> str:
    """China time ``yyyy-MM-dd HH:mm:ss`` (Taobao, Youzan) → UTC ``YYYY-MM-DDTHH:MM:SSZ``."""
    if not isinstance(value, str):
        raise ConversionError(f"gmt8: expected 'yyyy-MM-dd HH:mm:ss', got {value!r}")
    try:
        return format_dmhub_date(parse_gmt8(value))
    except ValueError as exc:
        raise ConversionError(f"gmt8: {exc}") from exc


def parse_gmt8(text: str) -> datetime:
    """``yyyy-MM-dd HH:mm:ss`` China time (``+`` accepted for the space) → aware datetime;
    raises ``ValueError`` saying what is wrong."""
    match = _GMT8_RE.match(text.strip())
    if not match:
        raise ValueError(f"expected 'yyyy-MM-dd HH:mm:ss', got {text!r}")
    try:
        return _civil(match).replace(tzinfo=GMT8)
    except ValueError as exc:
        raise ValueError(f"{text!r} is not a real calendar time") from exc


@converter("iso8601")
def iso8601(value: Any, _: str | None) -> str:
    """An ISO-8601 timestamp with an offset (``Z`` or ``+08:00``) → UTC ``...Z``; naive is refused."""
    if not isinstance(value, str):
        raise ConversionError(f"iso8601: expected a string, got {value!r}")
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise ConversionError(f"iso8601: {value!r} is not an ISO-8601 timestamp") from exc
    if parsed.tzinfo is None:
        raise ConversionError(f"iso8601: {value!r} has no UTC offset (naive times are ambiguous)")
    return format_dmhub_date(parsed)


@converter("string")
def to_string(value: Any, _: str | None) -> str:
    """Text of a scalar; integers keep every digit (19-digit order ids stay exact)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float, Decimal)):
        return str(value)
    raise ConversionError(f"string: expected a scalar, got {type(value).__name__}")


@converter("int")
def to_int(value: Any, _: str | None) -> int:
    return _number(value, "int")


@converter("lower")
def lower(value: Any, _: str | None) -> str:
    return to_string(value, None).lower()


@converter("upper")
def upper(value: Any, _: str | None) -> str:
    return to_string(value, None).upper()


@converter("strip")
def strip(value: Any, _: str | None) -> str:
    return to_string(value, None).strip()


@converter("strip_prefix", needs_argument=True)
def strip_prefix(value: Any, prefix: str | None) -> str:
    """Remove a literal prefix once (``qrscene_qrscene_x`` → ``qrscene_x``)."""
    text = to_string(value, None)
    assert prefix is not None
    return text[len(prefix) :] if text.startswith(prefix) else text


@converter("empty_as_null")
def empty_as_null(value: Any, _: str | None) -> Any:
    """``""`` (an empty XML element, say) → null, so the field is left out."""
    return None if value == "" else value


@converter("fen_to_yuan")
def fen_to_yuan(value: Any, _: str | None) -> str:
    """Integer fen (Doudian, Douyin) → yuan string with two decimals (``1990`` → ``19.90``)."""
    fen = _number(value, "fen_to_yuan")
    try:
        return str((Decimal(fen) / 100).quantize(Decimal("0.01")))
    except InvalidOperation as exc:  # more digits than the decimal context holds
        raise ConversionError(f"fen_to_yuan: {value!r} is too large an amount") from exc


@converter("yuan")
def yuan(value: Any, _: str | None) -> str:
    """A yuan amount (``"199"``, ``199.5``) → two-decimal string (``"199.00"``)."""
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation as exc:
        raise ConversionError(f"yuan: {value!r} is not a decimal amount") from exc
    if not amount.is_finite():
        raise ConversionError(f"yuan: {value!r} is not a finite amount")
    try:
        return str(amount.quantize(Decimal("0.01")))
    except InvalidOperation as exc:  # more digits than the decimal context holds (e.g. 1e26)
        raise ConversionError(f"yuan: {value!r} is too large an amount") from exc


@converter("number")
def number(value: Any, _: str | None) -> int | float:
    """A numeric custom attribute (DM Hub quantity/amount attributes)."""
    if isinstance(value, bool):
        raise ConversionError("number: expected a number, got a boolean")
    if isinstance(value, (int, float)):
        return value
    try:
        parsed = Decimal(str(value).strip())
    except InvalidOperation as exc:
        raise ConversionError(f"number: {value!r} is not a number") from exc
    if not parsed.is_finite():
        raise ConversionError(f"number: {value!r} is not a finite number")
    return int(parsed) if parsed == parsed.to_integral_value() else float(parsed)


@converter("json")
def json_text(value: Any, _: str | None) -> Any:
    """A field holding JSON as a string → the decoded value (already-decoded values pass)."""
    if isinstance(value, (dict, list)):
        return value
    if isinstance(value, bytes):
        value = value.decode("utf-8")
    if not isinstance(value, str):
        raise ConversionError(f"json: expected a JSON string, got {type(value).__name__}")
    try:
        return json.loads(value)
    except json.JSONDecodeError as exc:
        raise ConversionError(f"json: not valid JSON ({exc.msg} at position {exc.pos})") from exc


@converter("urldecode")
def urldecode(value: Any, _: str | None) -> str:
    """URL-decoding (``+`` as space), e.g. Youzan's ``msg`` before ``json``."""
    return unquote_plus(to_string(value, None))


@converter("urlencoded_json")
def urlencoded_json(value: Any, _: str | None) -> Any:
    return json_text(urldecode(value, None), None)


@converter("base64_gzip_json")
def base64_gzip_json(value: Any, _: str | None) -> Any:
    """Base64 of gzip of JSON (compressed TMC content); plain JSON strings pass through ``json``."""
    if isinstance(value, (dict, list)):
        return value
    text = to_string(value, None).strip()
    if text[:1] in ("{", "["):
        return json_text(text, None)
    try:
        raw = gzip.decompress(base64.b64decode(text, validate=True))
    except (ValueError, OSError, EOFError) as exc:
        raise ConversionError(f"base64_gzip_json: not base64 of gzip data ({exc})") from exc
    return json_text(raw.decode("utf-8"), None)


def parse_converter(spec: str) -> tuple[str, str | None]:
    """``"strip_prefix:qrscene_"`` → ``("strip_prefix", "qrscene_")``; raises on an unknown name."""
    name, sep, argument = spec.partition(":")
    if name not in CONVERTERS:
        raise ConversionError(f"unknown converter {name!r}; known: {', '.join(sorted(CONVERTERS))}")
    if name in NEEDS_ARGUMENT and not argument:
        raise ConversionError(f"converter {name!r} needs an argument, as in '{name}:VALUE'")
    return name, (argument if sep else None)


def apply(chain: list[tuple[str, str | None]], value: Any) -> Any:
    for name, argument in chain:
        if value is None:
            return None
        value = CONVERTERS[name](value, argument)
    return value
