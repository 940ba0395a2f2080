"""JMESPath with a few string functions mapping configs need (JMESPath has no lower())."""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jmespath
from jmespath import functions, visitor


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


_FUNCTIONS = _MappingFunctions()
OPTIONS = jmespath.Options(custom_functions=_FUNCTIONS)
_INTERPRETER = visitor.TreeInterpreter(OPTIONS)

#: Names of the functions added to standard JMESPath, for documentation and the JSON schema.
EXTRA_FUNCTIONS = ("lower", "upper", "strip_prefix", "has_prefix", "split", "str")

Evaluator = Callable[[Any], Any]


def is_false(value: Any) -> bool:
    # JMESPath falsiness differs from Python's: 0 is true, "" [] {} null false are false.
    """JMESPath falsiness, which differs from Python's: 0 is true; "", [], {}, null and false are
    false."""
    return value == "" or value == [] or value == {} or value is None or value is False


# Mapping rules run on every webhook, so their expressions are compiled once into closures
# (about ten times faster than walking the AST per message). Each closure mirrors jmespath's
# TreeInterpreter for its node type; any other node type is handed to the interpreter itself,
# so semantics never drift from JMESPath.
def _compile_node(node: dict[str, Any]) -> Evaluator:
    kind = node["type"]
    children = node.get("children", [])
    if kind == "field":
        key = node["value"]

        def field(value: Any) -> Any:
            return value.get(key) if isinstance(value, dict) else None

        return field
    if kind in ("subexpression", "index_expression", "pipe"):
        steps = [_compile_node(child) for child in children]

        def chain(value: Any) -> Any:
            for step in steps:
                value = step(value)
            return value

        return chain
    if kind == "literal":
        constant = node["value"]
        return lambda value: constant
    if kind in ("current", "identity"):
        return lambda value: value
    if kind == "comparator" and node["value"] in ("eq", "ne"):
        left, right = (_compile_node(child) for child in children)
        if any(child["type"] == "literal" and isinstance(child["value"], str) for child in children):
            # Against a text literal JMESPath equality is Python's: its one special case (0 and 1
            # never equal false and true) needs a number on one side and a boolean on the other.
            if node["value"] == "eq":
                return lambda value: left(value) == right(value)
            return lambda value: left(value) != right(value)
        if node["value"] == "eq":
            return lambda value: visitor._equals(left(value), right(value))
        return lambda value: not visitor._equals(left(value), right(value))
    if kind == "comparator" and node["value"] in _ORDERING:
        left, right = (_compile_node(child) for child in children)
        compare = _ORDERING[node["value"]]

        def ordered(value: Any) -> Any:
            # The JMESPath spec orders numbers only (jmespath also orders strings) and gives null
            # otherwise; jmespath-python raises TypeError on a string against a number, which a
            # payload could trigger at will.
            a, b = left(value), right(value)
            if _orderable(a) and _orderable(b) and isinstance(a, str) == isinstance(b, str):
                return compare(a, b)
            return None

        return ordered
    if kind == "and_expression":
        first, second = (_compile_node(child) for child in children)

        def conjunction(value: Any) -> Any:
            matched = first(value)
            return matched if is_false(matched) else second(value)

        return conjunction
    if kind == "or_expression":
        first, second = (_compile_node(child) for child in children)

        def disjunction(value: Any) -> Any:
            matched = first(value)
            return second(value) if is_false(matched) else matched

        return disjunction
    if kind == "function_expression":
        return _compile_call(node["value"], [_compile_node(child) for child in children])
    if kind == "multi_select_list":
        items = [_compile_node(child) for child in children]
        return lambda value: None if value is None else [item(value) for item in items]
    if kind == "filter_projection":
        base, project, condition = (_compile_node(child) for child in children)

        def filtered(value: Any) -> Any:
            elements = base(value)
            if not isinstance(elements, list):
                return None
            collected = []
            for element in elements:
                if not is_false(condition(element)):
                    current = project(element)
                    if current is not None:
                        collected.append(current)
            return collected

        return filtered
    visit = _INTERPRETER.visit
    return lambda value: visit(node, value)


_ORDERING: dict[str, Callable[[Any, Any], bool]] = {
    "lt": operator.lt, "lte": operator.le, "gt": operator.gt, "gte": operator.ge,
}


def _orderable(value: Any) -> bool:
    return isinstance(value, (int, float, str)) and not isinstance(value, bool)


def _compile_call(name: str, arguments: list[Evaluator]) -> Evaluator:
    call = _FUNCTIONS.call_function
    fast = _FAST_CALLS.get(name)
    if fast is not None and len(arguments) == 2:
        return fast(call, *arguments)
    spec = _FUNCTIONS.FUNCTION_TABLE.get(name)
    signature: list[dict[str, Any]] = spec["signature"] if spec else []
    # Functions with plain argument types get their type check precomputed; anything else
    # (unknown names, wrong arity, variadic or typed-array arguments) goes through jmespath,
    # which raises exactly as it would when interpreting.
    if (
        spec is None
        or len(signature) != len(arguments)
        or any(arg.get("variadic") for arg in signature)
        or any(_FUNCTIONS._get_allowed_pytypes(arg["types"])[1] for arg in signature)
    ):
        return lambda value: call(name, [argument(value) for argument in arguments])
    function = spec["function"]
    checks = [
        (frozenset(_FUNCTIONS._get_allowed_pytypes(arg["types"])[0]), arg["types"]) if arg["types"] else None
        for arg in signature
    ]
    check_single = _FUNCTIONS._type_check_single

    if len(arguments) == 1:
        (only,), (check,) = arguments, checks

        def invoke_one(value: Any) -> Any:
            current = only(value)
            if check is not None and type(current).__name__ not in check[0]:
                check_single(current, check[1], name)  # raises JMESPathTypeError
            return function(_FUNCTIONS, current)

        return invoke_one

    def invoke(value: Any) -> Any:
        resolved = [argument(value) for argument in arguments]
        for current, check in zip(resolved, checks, strict=True):
            if check is not None and type(current).__name__ not in check[0]:
                check_single(current, check[1], name)  # raises JMESPathTypeError
        return function(_FUNCTIONS, *resolved)

    return invoke


def _fast_join(call: Callable[[str, list[Any]], Any], separator_of: Evaluator, items_of: Evaluator) -> Evaluator:
    """``join(separator, items)``: text items joined directly; anything else through jmespath,
    which refuses it exactly as the interpreter would."""

    def join(value: Any) -> Any:
        separator, items = separator_of(value), items_of(value)
        if type(separator) is str and type(items) is list and all(type(item) is str for item in items):
            return separator.join(items)
        return call("join", [separator, items])

    return join


def _fast_contains(call: Callable[[str, list[Any]], Any], subject_of: Evaluator, search_of: Evaluator
                   ) -> Evaluator:
    """``contains(subject, search)`` on a list, or text in text, directly; anything else through
    jmespath."""

    def contains(value: Any) -> Any:
        subject, search = subject_of(value), search_of(value)
        if type(subject) is list or (type(subject) is str and type(search) is str):
            return search in subject
        return call("contains", [subject, search])

    return contains


#: built-in functions with array arguments that rules use on every message, evaluated directly
#: for the argument types they are meant for (the generic path type-checks every element)
_FAST_CALLS: dict[str, Callable[..., Evaluator]] = {"join": _fast_join, "contains": _fast_contains}


@dataclass(frozen=True)
class CompiledExpression:
    """A JMESPath expression compiled once at config load into a plain Python callable."""

    expression: str
    evaluate: Evaluator

    def search(self, data: Any) -> Any:
        """Evaluate the expression on ``data`` (``None`` where it selects nothing)."""
        return self.evaluate(data)


def compile_expression(expression: str) -> CompiledExpression:
    """Compile once at config load; raises ``jmespath.exceptions.ParseError`` on bad syntax."""
    parsed = jmespath.compile(expression).parsed
    return CompiledExpression(expression, _compile_node(parsed))


def search(compiled: CompiledExpression, data: Any) -> Any:
    """Evaluate ``compiled`` on ``data``; the functional form of :meth:`CompiledExpression.search`."""
    return compiled.evaluate(data)
