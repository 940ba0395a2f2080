"""Named converters a mapping rule can apply to a value (``convert: [name, name:arg]``).

Each converter takes the value and an optional argument (the text after ``:``) and returns
the converted value or raises :class:`ConversionError` saying what is wrong. ``None`` passes
through every converter untouched, so optional fields stay optional.
"""

from __future__ import annotations

import base64
import gzip
import json
import math
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar
from urllib.parse import unquote_plus

from dmhub_adapter.model.rules import civil, format_dmhub_date

# A form-encoded query may carry the space as '+'.
_GMT8_RE = re.compile(r"^([0-9]{4})-([0-9]{2})-([0-9]{2})[ +]([0-9]{2}):([0-9]{2}):([0-9]{2})$")
_INTEGER_RE = re.compile(r"-?[0-9]+")
#: a decimal number as text: sign, digits with an optional point, an optional short exponent.
#: Checked before Decimal or int sees the text, so no caller-chosen exponent or digit count
#: reaches arithmetic (``1e1000000`` took 27 s in int(); 5,000 digits exceed int()'s limit).
_DECIMAL_RE = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]{1,3})?")

#: no webhook number has more significant characters than this (19-digit ids, amounts)
MAX_NUMBER_CHARS = 40
#: |value| below 10**MAX_MAGNITUDE: far beyond any amount or id, small enough for float and JSON
MAX_MAGNITUDE = 40
#: JSON nesting deeper than this is refused before the recursive parser sees it
MAX_JSON_DEPTH = 64
_JSON_TOKEN_RE = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')

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
    """Register a converter under ``name`` (the word a mapping file writes in ``convert``);
    ``needs_argument`` makes ``name:ARG`` mandatory.

    Example::

        @converter("strip")
        def strip(value: Any, _: str | None) -> str:
            return to_string(value, None).strip()
    """
    def register(fn: _F) -> _F:
        CONVERTERS[name] = fn
        if needs_argument:
            NEEDS_ARGUMENT.add(name)
        return fn

    return register


def _short(value: Any) -> str:
    """A value for an error message, cut short (the caller may have sent megabytes)."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _bounded_int(value: int, what: str) -> int:
    # bit_length is O(1); str() of a huge int would itself hit the conversion limit.
    if value.bit_length() > MAX_MAGNITUDE * 10 // 3:
        raise ConversionError(f"{what}: the number is too large (more than {MAX_MAGNITUDE} digits)")
    if abs(value) >= 10**MAX_MAGNITUDE:
        raise ConversionError(f"{what}: the number is too large (more than {MAX_MAGNITUDE} digits)")
    return value


def _number(value: Any, what: str) -> int:
    if isinstance(value, bool):
        raise ConversionError(f"{what}: expected a number, got a boolean")
    if isinstance(value, int):
        return _bounded_int(value, what)
    # ASCII digits only: str.isdigit() also accepts '²' and other digits int() refuses.
    if isinstance(value, str):
        text = value.strip()
        if _INTEGER_RE.fullmatch(text[: MAX_NUMBER_CHARS + 1]) and len(text) <= MAX_NUMBER_CHARS:
            return int(text)
        if _INTEGER_RE.fullmatch(text):
            raise ConversionError(f"{what}: the number is too large (more than {MAX_NUMBER_CHARS} characters)")
    if isinstance(value, float) and value.is_integer():
        return _bounded_int(int(value), what)
    raise ConversionError(f"{what}: expected an integer, got {_short(value)}")


def _decimal(value: Any, what: str) -> Decimal:
    """A bounded Decimal of a number or numeric text; raises ConversionError before any
    arithmetic when the text is long, has a large exponent or is not a plain decimal."""
    if isinstance(value, bool):
        raise ConversionError(f"{what}: expected a number, got a boolean")
    if isinstance(value, int):
        return Decimal(_bounded_int(value, what))
    if isinstance(value, float):
        text = repr(value)
    elif isinstance(value, (str, Decimal)):
        text = str(value).strip()
    else:
        raise ConversionError(f"{what}: expected a number, got {type(value).__name__}")
    if len(text) > MAX_NUMBER_CHARS:
        raise ConversionError(f"{what}: the number is too large (more than {MAX_NUMBER_CHARS} characters)")
    if not _DECIMAL_RE.fullmatch(text):
        raise ConversionError(f"{what}: {_short(value)} is not a finite decimal number")
    parsed = Decimal(text)
    # adjusted() is the exponent of the leading digit: cheap, and exact for any size
    if parsed and parsed.adjusted() >= MAX_MAGNITUDE:
        raise ConversionError(f"{what}: {_short(value)} is too large (at most {MAX_MAGNITUDE} digits)")
    return parsed


def json_depth(text: str, limit: int = MAX_JSON_DEPTH) -> int:
    """The bracket nesting of JSON text, counting no further than ``limit + 1``.

    Strings are skipped whole by the regular expression (in C), so brackets inside them do not
    count and the scan is linear; malformed text is left for the parser to refuse."""
    if text.count("[") + text.count("{") <= limit:
        return 0  # cannot be deeper than the number of opening brackets
    depth = deepest = 0
    for match in _JSON_TOKEN_RE.finditer(text):
        token = match.group()
        if token in ("[", "{"):
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > limit:
                    break
        elif token in ("]", "}"):
            depth -= 1
    return deepest


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def load_json(text: str | bytes, *, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """``json.loads`` with nesting bounded before the recursive parser runs, and without the
    ``NaN``/``Infinity`` literals Python's parser accepts beyond JSON (a NaN amount would
    pass the amount check and reach the queue as ``null``).

    Raises ``ValueError``: json's own for malformed text and over-long integers, and one
    saying so for nesting deeper than ``max_depth`` or for ``NaN``, ``Infinity``, ``-Infinity``."""
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    if json_depth(text, max_depth) > max_depth:
        raise ValueError(f"JSON nested deeper than {max_depth} levels")
    try:
        return json.loads(text, parse_constant=_no_constant)
    except RecursionError as exc:  # cannot happen below the bound; kept as a last guard
        raise ValueError(f"JSON nested deeper than {max_depth} levels") from exc


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
        return civil(match).replace(tzinfo=GMT8)
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
        try:
            return str(value)
        except ValueError as exc:  # an int beyond the interpreter's digit limit
            raise ConversionError("string: the number is too large to write out") from exc
    raise ConversionError(f"string: expected a scalar, got {type(value).__name__}")


@converter("int")
def to_int(value: Any, _: str | None) -> int:
    """``int``: a bounded integer (digits and magnitude checked before any arithmetic)."""
    return _number(value, "int")


@converter("lower")
def lower(value: Any, _: str | None) -> str:
    """``lower``: the value as text, lower-cased."""
    return to_string(value, None).lower()


@converter("upper")
def upper(value: Any, _: str | None) -> str:
    """``upper``: the value as text, upper-cased."""
    return to_string(value, None).upper()


@converter("strip")
def strip(value: Any, _: str | None) -> str:
    """``strip``: the value as text without surrounding white space."""
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
        raise ConversionError(f"fen_to_yuan: {_short(value)} is too large an amount") from exc


@converter("yuan")
def yuan(value: Any, _: str | None) -> str:
    """A yuan amount (``"199"``, ``199.5``) → two-decimal string (``"199.00"``)."""
    amount = _decimal(value, "yuan")
    try:
        return str(amount.quantize(Decimal("0.01")))
    except InvalidOperation as exc:  # more digits than the decimal context holds (e.g. 1e26)
        raise ConversionError(f"yuan: {_short(value)} is too large an amount") from exc


@converter("number")
def number(value: Any, _: str | None) -> int | float:
    """A numeric custom attribute (DM Hub quantity/amount attributes)."""
    if isinstance(value, float):
        if not math.isfinite(value) or abs(value) >= 10.0**MAX_MAGNITUDE:
            raise ConversionError(f"number: {value!r} is not a finite number below 1e{MAX_MAGNITUDE}")
        return value
    # Bounded in characters and magnitude before any arithmetic (see _decimal).
    parsed = _decimal(value, "number")
    if isinstance(value, int):
        return value
    return int(parsed) if parsed == parsed.to_integral_value() else float(parsed)


@converter("json")
def json_text(value: Any, _: str | None) -> Any:
    """A field holding JSON as a string → the decoded value (already-decoded values pass)."""
    if isinstance(value, (dict, list)):
        return value
    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ConversionError("json: the bytes are not UTF-8") from exc
    if not isinstance(value, str):
        raise ConversionError(f"json: expected a JSON string, got {type(value).__name__}")
    try:
        return load_json(value)
    except json.JSONDecodeError as exc:
        raise ConversionError(f"json: not valid JSON ({exc.msg} at position {exc.pos})") from exc
    except ValueError as exc:  # too deep, or an integer beyond int()'s digit limit
        raise ConversionError(f"json: {exc}") from exc


@converter("urldecode")
def urldecode(value: Any, _: str | None) -> str:
    """URL-decoding (``+`` as space), e.g. Youzan's ``msg`` before ``json``."""
    return unquote_plus(to_string(value, None))


@converter("urlencoded_json")
def urlencoded_json(value: Any, _: str | None) -> Any:
    """``urlencoded_json``: URL-decode then parse JSON (Youzan's ``msg``)."""
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
    """Run a parsed converter chain over ``value``; ``None`` stays ``None`` (a missing value is
    not a conversion error). Raises :class:`ConversionError`."""
    for name, argument in chain:
        if value is None:
            return None
        value = CONVERTERS[name](value, argument)
    return value
