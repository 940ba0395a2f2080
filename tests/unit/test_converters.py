"""Every named converter, with property tests for the date converters."""

from __future__ import annotations

import base64
import gzip
import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dmhub_adapter.mapping import converters as c
from dmhub_adapter.mapping.converters import ConversionError, apply, parse_converter

MOMENTS = st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(9998, 12, 30))


def test_unix_seconds_known_value_and_digit_strings() -> None:
    assert c.unix_seconds(1732780800, None) == "2024-11-28T08:00:00Z"
    assert c.unix_seconds("1732780800", None) == "2024-11-28T08:00:00Z"


@given(MOMENTS)
def test_unix_seconds_round_trip(moment: datetime) -> None:
    aware = moment.replace(tzinfo=UTC, microsecond=0)
    assert c.unix_seconds(int(aware.timestamp()), None) == aware.strftime("%Y-%m-%dT%H:%M:%SZ")


@given(MOMENTS)
def test_unix_millis_drops_the_sub_second_part(moment: datetime) -> None:
    aware = moment.replace(tzinfo=UTC)
    millis = int(aware.timestamp() * 1000)
    expected = datetime.fromtimestamp(millis // 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert c.unix_millis(millis, None) == expected


@given(MOMENTS)
def test_gmt8_is_eight_hours_ahead_of_utc(moment: datetime) -> None:
    local = moment.replace(microsecond=0)
    expected = (local - timedelta(hours=8)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert c.gmt8(local.strftime("%Y-%m-%d %H:%M:%S"), None) == expected


def test_gmt8_known_value_and_form_encoded_space() -> None:
    assert c.gmt8("2024-06-18 20:01:41", None) == "2024-06-18T12:01:41Z"
    assert c.gmt8("2024-06-18+20:01:41", None) == "2024-06-18T12:01:41Z"


@given(MOMENTS, st.integers(min_value=-14 * 60, max_value=14 * 60))
def test_iso8601_with_any_offset_is_the_same_instant_in_utc(moment: datetime, offset_minutes: int) -> None:
    tz = timezone(timedelta(minutes=offset_minutes))
    aware = moment.replace(microsecond=0, tzinfo=tz)
    assert c.iso8601(aware.isoformat(), None) == aware.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.mark.parametrize(
    ("converter", "value", "message"),
    [
        (c.unix_seconds, "abc", "expected an integer"),
        (c.unix_seconds, True, "boolean"),
        (c.unix_seconds, 10**13, "outside the supported range"),
        (c.unix_seconds, -1, "outside the supported range"),
        (c.gmt8, "2024/06/18 20:01:41", "yyyy-MM-dd HH:mm:ss"),
        (c.gmt8, 1718712101, "yyyy-MM-dd HH:mm:ss"),
        (c.iso8601, "2024-06-18T20:01:41", "no UTC offset"),
        (c.iso8601, "yesterday", "not an ISO-8601"),
        (c.json_text, "{oops", "not valid JSON"),
        (c.json_text, 12, "expected a JSON string"),
        (c.fen_to_yuan, "1.5", "expected an integer"),
        (c.yuan, "abc", "not a finite decimal"),
        (c.yuan, "NaN", "not a finite"),
        (c.number, "x", "not a finite decimal"),
        (c.base64_gzip_json, "not-base64!", "base64"),
        (c.to_string, {"a": 1}, "expected a scalar"),
    ],
)
def test_bad_values_raise_a_conversion_error_saying_why(converter, value, message) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConversionError, match=message):
        converter(value, None)


def test_string_keeps_nineteen_digit_ids_exact() -> None:
    assert c.to_string(3898765432101234567, None) == "3898765432101234567"
    assert c.to_string(False, None) == "false"


def test_strip_prefix_strips_once() -> None:
    assert c.strip_prefix("qrscene_qrscene_x", "qrscene_") == "qrscene_x"
    assert c.strip_prefix("last_trade_no_1", "qrscene_") == "last_trade_no_1"


def test_money_converters() -> None:
    assert c.fen_to_yuan(1990, None) == "19.90"
    assert c.fen_to_yuan("5", None) == "0.05"
    assert c.yuan("199", None) == "199.00"
    assert c.yuan(199.5, None) == "199.50"
    assert c.number("3", None) == 3 and c.number("3.5", None) == 3.5


@given(st.integers(min_value=0, max_value=10**12))
def test_fen_to_yuan_round_trips(fen: int) -> None:
    yuan_text = c.fen_to_yuan(fen, None)
    whole, cents = yuan_text.split(".")
    assert int(whole) * 100 + int(cents) == fen and len(cents) == 2


def test_json_family() -> None:
    payload = {"tid": 3898765432101234567, "name": "张"}
    text = json.dumps(payload, ensure_ascii=False)
    assert c.json_text(text, None) == payload
    assert c.json_text(payload, None) is payload
    assert c.urlencoded_json("%7B%22tid%22%3A%22E1%22%7D", None) == {"tid": "E1"}
    packed = base64.b64encode(gzip.compress(text.encode())).decode()
    assert c.base64_gzip_json(packed, None) == payload
    assert c.base64_gzip_json(text, None) == payload


def test_empty_as_null_and_case() -> None:
    assert c.empty_as_null("", None) is None
    assert c.empty_as_null("x", None) == "x"
    assert c.lower("SCAN", None) == "scan" and c.upper("a", None) == "A" and c.strip(" a ", None) == "a"


def test_parse_converter_names_and_arguments() -> None:
    assert parse_converter("strip_prefix:qrscene_") == ("strip_prefix", "qrscene_")
    assert parse_converter("gmt8") == ("gmt8", None)
    with pytest.raises(ConversionError, match="unknown converter 'nope'"):
        parse_converter("nope")
    with pytest.raises(ConversionError, match="needs an argument"):
        parse_converter("strip_prefix")


def test_apply_chains_and_passes_null_through() -> None:
    chain = [parse_converter("strip_prefix:qrscene_"), parse_converter("upper")]
    assert apply(chain, "qrscene_ab") == "AB"
    assert apply(chain, None) is None


@pytest.mark.parametrize("text", ["²", "١٢٣", "１２３", "1_000", "+1", " "])
def test_integers_are_ascii_digits_only(text: str) -> None:
    with pytest.raises(ConversionError, match="expected an integer"):
        c.unix_seconds(text, None)


def test_dates_are_ascii_digits_only() -> None:
    with pytest.raises(ConversionError):
        c.gmt8("２０２４-06-18 20:01:41", None)


@pytest.mark.parametrize("text", ['{"amount": NaN}', '{"amount": Infinity}', '[-Infinity]', "NaN"])
def test_json_without_nan_or_infinity(text: str) -> None:
    """Python's parser takes these literals beyond JSON; a NaN amount would pass as a number and
    reach the queue as null, which the sender then refuses."""
    assert json.loads(text) is not None  # what json alone would take
    with pytest.raises(ValueError, match="is not JSON"):
        c.load_json(text)
    assert c.load_json('{"amount": 1e3, "name": "NaN"}') == {"amount": 1000.0, "name": "NaN"}
