"""Request bodies → Python values for config-defined sources (``format: json | form | xml``).

Every failure is a :class:`~dmhub_adapter.errors.BadRequest` (400) saying what is wrong;
size is capped before anything is decoded (413). XML goes through defusedxml only.
"""

from __future__ import annotations

import codecs
from typing import Any
from urllib.parse import unquote_plus
from xml.etree.ElementTree import Element, ParseError

from dmhub_adapter.errors import BadRequest, PayloadTooLarge
from dmhub_adapter.mapping.converters import MAX_JSON_DEPTH, load_json

#: a form with more fields than this is not a webhook
MAX_FORM_FIELDS = 1000
#: XML nested deeper than this is refused before the recursive conversion walks it
MAX_XML_DEPTH = 32
#: Python codecs that are not charsets: they transform text (escapes, IDNA) or refuse every use
#: (``undefined``), so a Content-Type naming one is a bad request, not a reason to crash
_NOT_CHARSETS = frozenset({"undefined", "unicode_escape", "raw_unicode_escape", "idna", "punycode",
                           "mbcs", "oem", "palmos"})

CONTENT_TYPES = {
    "json": "application/json",
    "form": "application/x-www-form-urlencoded",
    "xml": "application/xml",
}


def check_size(body: bytes, limit: int) -> None:
    """Refuse (413) a body over the source's own cap, before any decoding or parsing."""
    if len(body) > limit:
        raise PayloadTooLarge(f"body is {len(body)} bytes; this source accepts at most {limit}")


def text_codec(charset: str) -> str:
    """The codec name of a Content-Type charset that really is a text encoding; else 400.

    ``codecs.lookup`` also finds bytes-to-bytes codecs (base64, zlib), text transforms and the
    ``undefined`` codec that raises on every use; none of them is a charset."""
    shown = charset[:40]
    try:
        info = codecs.lookup(charset)
    except (LookupError, ValueError, TypeError) as exc:
        raise BadRequest(f"unknown charset {shown!r} in Content-Type", code="bad_charset") from exc
    if not getattr(info, "_is_text_encoding", True) or info.name.replace("-", "_") in _NOT_CHARSETS:
        raise BadRequest(f"{shown!r} in Content-Type is not a charset", code="bad_charset")
    return info.name


def decode_text(body: bytes, charset: str) -> str:
    """``body`` decoded in ``charset``; every failure is a 400 naming the charset."""
    codec = text_codec(charset)
    try:
        return body.decode(codec)
    except UnicodeDecodeError as exc:
        raise BadRequest(f"body is not valid {codec}: {exc.reason} at byte {exc.start}", code="bad_charset") from exc
    except (UnicodeError, LookupError, ValueError) as exc:
        raise BadRequest(f"body cannot be decoded as {codec}", code="bad_charset") from exc


_text = decode_text


def parse_json(body: bytes, charset: str) -> Any:
    """JSON text → value; nesting beyond ``MAX_JSON_DEPTH`` is refused before parsing (400)."""
    try:
        return load_json(_text(body, charset), max_depth=MAX_JSON_DEPTH)
    except ValueError as exc:
        raise BadRequest(f"body is not valid JSON: {str(exc)[:200]}") from exc


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
        try:
            fields.setdefault(unquote_plus(name, encoding=charset), unquote_plus(value, encoding=charset))
        except (UnicodeError, LookupError, ValueError) as exc:
            raise BadRequest(f"form field {name[:40]!r} cannot be decoded as {charset[:40]}",
                             code="bad_charset") from exc
    return fields


def _depth(element: Element) -> int:
    """Nesting of an element tree, found without recursion (the tree may be very deep)."""
    deepest, stack = 0, [(element, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        if deepest > MAX_XML_DEPTH:
            break
        stack.extend((child, depth + 1) for child in node)
    return deepest


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
    if _depth(root) > MAX_XML_DEPTH:
        raise BadRequest(f"body is XML nested deeper than {MAX_XML_DEPTH} levels")
    value = _element_value(root)
    return value if isinstance(value, dict) else {}


def parse_body(body: bytes, fmt: str, charset: str) -> Any:
    """Parse a body in the mapping's ``format`` (json, form or xml) and the request's charset;
    empty, malformed, too deep or oversized bodies are a 400."""
    if not body.strip():
        raise BadRequest("body is empty")
    if fmt == "json":
        return parse_json(body, charset)
    if fmt == "form":
        return parse_form(body, charset)
    if fmt == "xml":
        return parse_xml(body)
    raise BadRequest(f"unsupported payload format {fmt!r}")
