"""XML request bodies → flat dicts, through defusedxml only.

One parser for every XML source (WeChat, WeCom, config-defined ``format: xml``): DTDs, entity
declarations and external references are refused, nesting is capped at ``MAX_DEPTH`` levels,
and CDATA text is kept byte for byte while the indentation of pretty-printed bodies is
dropped. Real WeChat pushes are flat, untrimmed ``<xml>`` documents, which the element tree
reads exactly; anything else (nesting, repeats, whitespace around text) takes the CDATA-aware
builder.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from xml.etree.ElementTree import ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import DefusedXMLParser
from defusedxml.ElementTree import fromstring as defused_fromstring

#: nesting deeper than this is refused (no webhook needs it; expat would recurse on it)
MAX_DEPTH = 8
_MAX_DEPTH = MAX_DEPTH

class XmlError(ValueError):
    """A body is not acceptable XML; the message is safe to return to the caller."""


class _FlatBuilder:
    """Builds ``{tag: text}`` from the root's children as expat reports them (parser target).

    Character data is kept with a flag saying whether it came from a CDATA section, so CDATA
    text is kept byte for byte while the indentation around it (pretty-printed bodies) and
    around bare numbers is dropped. Repeated tags become lists; nested elements (menu events'
    ``ScanCodeInfo``, ``SendPicsInfo``) become dicts.
    """

    def __init__(self) -> None:
        self.in_cdata = False
        self._stack: list[tuple[str, dict[str, Any], list[tuple[str, bool]]]] = []
        self._root: tuple[str, Any] | None = None

    def start_cdata(self) -> None:
        self.in_cdata = True

    def end_cdata(self) -> None:
        self.in_cdata = False

    def start(self, tag: str, attrib: Mapping[str, str]) -> None:
        if len(self._stack) >= _MAX_DEPTH:
            raise XmlError(f"XML nested deeper than {_MAX_DEPTH} levels")
        self._stack.append((tag, {}, []))

    def data(self, text: str) -> None:
        if self._stack:
            self._stack[-1][2].append((text, self.in_cdata))

    def end(self, tag: str) -> None:
        name, children, chunks = self._stack.pop()
        value: Any = children if children else _leaf_text(chunks)
        if not self._stack:
            self._root = (name, value)
            return
        siblings = self._stack[-1][1]
        if name in siblings:
            previous = siblings[name]
            siblings[name] = [*previous, value] if isinstance(previous, list) else [previous, value]
        else:
            siblings[name] = value

    def close(self) -> tuple[str, Any] | None:
        return self._root


def _leaf_text(chunks: list[tuple[str, bool]]) -> str:
    if any(is_cdata for _, is_cdata in chunks):
        # Whitespace-only plain text around CDATA is formatting; any other text is content.
        return "".join(text for text, is_cdata in chunks if is_cdata or text.strip())
    return "".join(text for text, _ in chunks).strip()


def parse_xml(body: bytes | str, *, root: str = "xml") -> dict[str, Any]:
    """A WeChat XML body → ``{tag: text}`` (``""`` for empty elements). DTDs, entity
    declarations and external references are refused; raises :class:`XmlError`.

    Real pushes are flat, untrimmed ``<xml>`` documents, which the element tree reads exactly;
    anything else (nesting, repeats, whitespace around text) takes the CDATA-aware builder."""
    data = body.encode("utf-8") if isinstance(body, str) else body
    try:
        element = defused_fromstring(data, forbid_dtd=True)
    except DefusedXmlException as exc:
        raise XmlError(f"XML with a DTD or entity declarations is refused ({type(exc).__name__})") from exc
    except (ParseError, ValueError, LookupError) as exc:
        raise XmlError(f"not well-formed XML: {exc}") from exc
    if element.tag != root:
        raise XmlError(f"the XML root element must be <{root}>, got <{element.tag}>")
    flat: dict[str, Any] = {}
    for child in element:
        text = child.text or ""
        if len(child) or child.tag in flat or text != text.strip() or not isinstance(child.tag, str):
            return _parse_xml_precisely(data, root)
        flat[child.tag] = text
    if not flat:
        raise XmlError(f"<{root}> has no child elements")
    return flat


def _parse_xml_precisely(data: bytes, root: str) -> dict[str, Any]:
    builder = _FlatBuilder()
    parser = DefusedXMLParser(target=builder, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    expat = parser.parser  # the pure-Python XMLParser exposes its expat parser
    expat.StartCdataSectionHandler = builder.start_cdata
    expat.EndCdataSectionHandler = builder.end_cdata
    try:
        parser.feed(data)
        # close() returns whatever the target built (typed as an Element in the stubs)
        result: tuple[str, Any] | None = parser.close()  # type: ignore[assignment]
    except DefusedXmlException as exc:
        raise XmlError(f"XML with a DTD or entity declarations is refused ({type(exc).__name__})") from exc
    except XmlError:
        raise
    except (ParseError, ValueError, LookupError) as exc:
        raise XmlError(f"not well-formed XML: {exc}") from exc
    if result is None:
        raise XmlError("not well-formed XML: no root element")
    name, value = result
    if name != root:
        raise XmlError(f"the XML root element must be <{root}>, got <{name}>")
    if not isinstance(value, dict):
        raise XmlError(f"<{root}> has no child elements")
    return value


