"""JMESPath with a few string functions mapping configs need (JMESPath has no lower())."""

from __future__ import annotations

from typing import Any

import jmespath
from jmespath import functions


class _MappingFunctions(functions.Functions):  # type: ignore[misc]
    @functions.signature({"types": ["string", "null"]})  # type: ignore[untyped-decorator]
    def _func_lower(self, value: str | None) -> str | None:
        return None if value is None else value.lower()

    @functions.signature({"types": ["string", "null"]})  # type: ignore[untyped-decorator]
    def _func_upper(self, value: str | None) -> str | None:
        return None if value is None else value.upper()

    @functions.signature({"types": ["string", "null"]}, {"types": ["string"]})  # type: ignore[untyped-decorator]
    def _func_strip_prefix(self, value: str | None, prefix: str) -> str | None:
        # Strip once: scene strings may themselves contain the prefix.
        if value is None:
            return None
        return value[len(prefix) :] if value.startswith(prefix) else value

    @functions.signature({"types": ["string", "null"]}, {"types": ["string"]})  # type: ignore[untyped-decorator]
    def _func_has_prefix(self, value: str | None, prefix: str) -> bool:
        return value is not None and value.startswith(prefix)

    @functions.signature({"types": ["string", "null"]}, {"types": ["string"]})  # type: ignore[untyped-decorator]
    def _func_split(self, value: str | None, separator: str) -> list[str]:
        return [] if not value else value.split(separator)

    @functions.signature({"types": []})  # type: ignore[untyped-decorator]
    def _func_str(self, value: Any) -> str:
        # Exact text for numbers (19-digit ids stay exact), "" for null.
        if value is None:
            return ""
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(value)


OPTIONS = jmespath.Options(custom_functions=_MappingFunctions())

#: Names of the functions added to standard JMESPath, for documentation and the JSON schema.
EXTRA_FUNCTIONS = ("lower", "upper", "strip_prefix", "has_prefix", "split", "str")


def compile_expression(expression: str) -> Any:
    """Compile once at config load; raises ``jmespath.exceptions.ParseError`` on bad syntax."""
    return jmespath.compile(expression)


def search(compiled: Any, data: Any) -> Any:
    return compiled.search(data, options=OPTIONS)
