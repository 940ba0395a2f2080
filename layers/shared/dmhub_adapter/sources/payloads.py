"""Request bodies → Python values for config-defined sources (``format: json | form | xml``).

Every failure is a :class:`~dmhub_adapter.errors.BadRequest` (400) saying what is wrong;
size is capped before anything is decoded (413). XML goes through defusedxml only.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote_plus
from xml.etree.ElementTree import Element, ParseError

from dmhub_adapter.errors import BadRequest, PayloadTooLarge

#: a form with more fields than this is not a webhook
MAX_FORM_FIELDS = 1000

CONTENT_TYPES = {
    "json": "application/json",
    "form": "application/x-www-form-urlencoded",
    "xml": "application/xml",
}


def check_size(body: bytes, limit: int) -> None:
    if len(body) > limit:
        raise PayloadTooLarge(f"body is {len(body)} bytes; this source accepts at most {limit}")


def _text(body: bytes, charset: str) -> str:
    try:
        return body.decode(charset)
    except LookupError as exc:
        raise BadRequest(f"unknown charset {charset!r} in Content-Type") from exc
    except UnicodeDecodeError as exc:
        raise BadRequest(f"body is not valid {charset}: {exc.reason} at byte {exc.start}") from exc


def parse_json(body: bytes, charset: str) -> Any:
    import json

    try:
        return json.loads(_text(body, charset))
    except ValueError as exc:
        raise BadRequest(f"body is not valid JSON: {exc}") from exc


def parse_form(body: bytes, charset: str) -> dict[str, str]:
    """``a=1&b=x%20y`` → ``{"a": "1", "b": "x y"}`` (first value of a repeated name wins)."""
    text = _text(body, charset)
    fields: dict[str, str] = {}
    segments = [segment for segment in text.split("&") if segment]
    if len(segments) > MAX_FORM_FIELDS:
        raise BadRequest(f"form has more than {MAX_FORM_FIELDS} fields")
    for segment in segments:
        name, sep, value = segment.partition("=")
        if not sep or not name:
            raise BadRequest(f"body is not form-encoded: segment {segment[:40]!r} is not name=value")
        fields.setdefault(unquote_plus(name, encoding=charset), unquote_plus(value, encoding=charset))
    return fields


def _element_value(element: Element) -> Any:
    children = list(element)
    if not children:
        return element.text or ""
    value: dict[str, Any] = {}
    for child in children:
        item = _element_value(child)
        if child.tag in value:
            # Repeated elements become a list, in document order.
            existing = value[child.tag]
            value[child.tag] = [*existing, item] if isinstance(existing, list) else [existing, item]
        else:
            value[child.tag] = item
    return value


def parse_xml(body: bytes) -> dict[str, Any]:
    """The root's child elements as a dict (nested elements as dicts, repeated ones as lists)."""
    from defusedxml import DefusedXmlException
    from defusedxml.ElementTree import fromstring

    try:
        root = fromstring(body)
    except (ParseError, DefusedXmlException, ValueError) as exc:
        raise BadRequest(f"body is not acceptable XML: {exc}") from exc
    value = _element_value(root)
    return value if isinstance(value, dict) else {}


def parse_body(body: bytes, fmt: str, charset: str) -> Any:
    if not body.strip():
        raise BadRequest("body is empty")
    if fmt == "json":
        return parse_json(body, charset)
    if fmt == "form":
        return parse_form(body, charset)
    if fmt == "xml":
        return parse_xml(body)
    raise BadRequest(f"unsupported payload format {fmt!r}")
