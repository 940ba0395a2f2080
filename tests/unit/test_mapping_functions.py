"""Compiled mapping expressions must behave exactly like JMESPath's own interpreter."""

from __future__ import annotations

from typing import Any

import jmespath
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jmespath.exceptions import JMESPathError

from dmhub_adapter.mapping.config import available_sources, load_mapping
from dmhub_adapter.mapping.functions import OPTIONS, compile_expression, search

HAND_WRITTEN = [
    "a",
    "a.b.c",
    "a == 'x'",
    "a != `1`",
    "a == `true`",
    "a && b",
    "a || b",
    "!a",
    "a.b || `\"fallback\"`",
    "lower(a) == 'x' && has_prefix(b, 'qr_')",
    "strip_prefix(a, 'qrscene_')",
    "join('|', [a, str(b), str(c)][?@ != ''])",
    "[a, b]",
    "a[0]",
    "a[*].b",
    "a[?b == 'x'].c",
    "length(a)",
    "a | b",
    "to_string(a)",
    "@",
    "a > `1`",
    "split(a, ',')",
    "a == 'x'",
    "'' != a",
    "contains(a, 'x')",
    "contains(a, b)",
    "contains(['x', 'event'], a)",
    "join(a, b)",
    "join(',', a)",
]


def _packaged_expressions() -> list[str]:
    found: set[str] = set()
    for source in available_sources():
        mapping = load_mapping(source)
        assert mapping is not None
        for rule in mapping.rules:
            found.update(e for e in (rule.when, rule.foreach) if e)
            specs = [rule.event, rule.external_id, rule.date, *rule.fields.values(), *rule.attributes.values()]
            if rule.identity is not None:
                specs += [rule.identity.value, rule.identity.name]
            found.update(spec.path for spec in specs if spec is not None and spec.path)
    return sorted(found)


EXPRESSIONS = HAND_WRITTEN + _packaged_expressions()

scalars = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.sampled_from(["", "x", "qr_1", "a,b", "event"]))
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.sampled_from(["a", "b", "c", "content", "topic", "tid"]), inner, max_size=4),
    ),
    max_leaves=8,
)
documents = st.dictionaries(
    st.sampled_from(["a", "b", "c", "MsgType", "Event", "EventKey", "topic", "content", "_meta", "_item"]),
    values,
    max_size=6,
)


def _outcome(fn: Any) -> tuple[str, Any]:
    try:
        return ("value", fn())
    except JMESPathError as exc:
        return ("error", type(exc).__name__)
    except TypeError:
        # jmespath-python orders a string against a number with Python's `<` and raises; the
        # JMESPath spec gives null, which is what the compiled form answers
        return ("value", None)


def test_the_packaged_mappings_contribute_expressions() -> None:
    assert len(EXPRESSIONS) > len(HAND_WRITTEN) + 10


@pytest.mark.parametrize("expression", EXPRESSIONS)
@settings(max_examples=25, deadline=None)
@given(document=documents)
def test_compiled_expression_matches_jmespath(expression: str, document: dict[str, Any]) -> None:
    compiled = compile_expression(expression)
    expected = _outcome(lambda: jmespath.search(expression, document, options=OPTIONS))
    assert _outcome(lambda: search(compiled, document)) == expected
