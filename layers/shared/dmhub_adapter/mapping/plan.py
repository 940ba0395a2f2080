"""A checked mapping file as the runtime holds it: plain objects, no pydantic.

:mod:`dmhub_adapter.mapping.config` checks a mapping file with pydantic (the file's schema and
every rule across its fields) and then turns the checked file into a :class:`MappingPlan`
here; the engine, the adapters and the account binding read only plans. The plan keeps the
file's names (``rules``, ``decode``, ``defaults``, ``accountBinding``, …) and adds what is
compiled once per file: JMESPath expressions, template parts and converter chains. The plan's
classes are :func:`~dmhub_adapter.records.record` s, which a cold start defines faster than
dataclasses.

A plan is made from the checked file's data (pydantic's ``model_dump(by_alias=True)``) by
:func:`plan_from_data`, the one way there is. The mappings shipped in the package are checked
when the layer is built and their data is written as JSON beside them
(:mod:`dmhub_adapter.mapping.compiled`), so a cold start loads a packaged mapping without
importing pydantic or PyYAML; an edited file, an override directory or a budget the build did
not check go through pydantic as before.

Example::

    plan = plan_from_data(MappingFile.model_validate(data).model_dump(by_alias=True), budget)
    plan.rules[0].name
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from dmhub_adapter.mapping import converters
from dmhub_adapter.mapping.functions import CompiledExpression, compile_expression
from dmhub_adapter.model.rules import SEED_ATTRIBUTE_BUDGET, AttributeBudget
from dmhub_adapter.records import field, record

TEMPLATE_PART_RE = re.compile(r"\{([^{}]+)\}")

Chain = list[tuple[str, str | None]]


def converter_chain(specs: list[str]) -> Chain:
    """The parsed converter chain of ``convert:`` names; raises ``ConversionError``."""
    return [converters.parse_converter(spec) for spec in specs]


def template_parts(template: str) -> list[tuple[str, CompiledExpression]]:
    """A template's ``{JMESPath}`` placeholders, each with its compiled expression; raises
    ``JMESPathError``."""
    return [(match.group(0), compile_expression(match.group(1))) for match in TEMPLATE_PART_RE.finditer(template)]


def optional_expression(expression: str | None) -> CompiledExpression | None:
    """``expression`` compiled, or None when there is none (absent or empty, as for ``when``,
    ``foreach`` and ``messages``); raises ``JMESPathError``."""
    return compile_expression(expression) if expression else None


@record(frozen=True, eq=False)
class ValuePlan:
    """Where a value comes from: exactly one of ``path``, ``value`` or ``template``, then the
    ``convert`` chain, the ``default`` and ``truncate`` (the file's ``ValueSpec``)."""

    path: str | None
    value: Any
    template: str | None
    convert: list[str]
    default: Any
    truncate: bool
    #: DM Hub's attribute kind (text, quantity, amount) when the value is a custom attribute
    kind: str = "text"
    _compiled: CompiledExpression | None = None
    _template_parts: list[tuple[str, CompiledExpression]] = field(default_factory=list)
    _chain: Chain = field(default_factory=list)


@record(frozen=True, eq=False)
class IdentityPlan:
    """A rule's identity: DM Hub type, where the message says the type, the value, a name."""

    type: str
    type_from: ValuePlan | None
    value: ValuePlan
    name: ValuePlan | None
    create: bool


@record(frozen=True, eq=False)
class DecodePlan:
    """One ``decode`` step: a top-level field converted in place before the rules run."""

    field: str
    convert: list[str]
    required: bool
    _chain: Chain


@record(frozen=True, eq=False)
class RulePlan:
    """One rule: when it applies or is skipped, and the event it makes."""

    name: str
    description: str | None
    when: str | None
    skip: str | None
    continue_: bool
    foreach: str | None
    event: ValuePlan | None
    identity: IdentityPlan | None
    external_id: ValuePlan | None
    date: ValuePlan | None
    fields: dict[str, ValuePlan]
    attributes: dict[str, ValuePlan]
    _when: CompiledExpression | None
    _foreach: CompiledExpression | None

    def attribute_kinds(self) -> dict[str, str]:
        """The kinds of this rule's attributes that are not text."""
        return {name: spec.kind for name, spec in self.attributes.items() if spec.kind != "text"}


@record(frozen=True, eq=False)
class DefaultsPlan:
    """The identity and fields every rule inherits unless it sets its own."""

    identity: IdentityPlan | None
    fields: dict[str, ValuePlan]


@record(frozen=True, eq=False)
class BindingPlan:
    """An account binding: a payload value that must equal a field of the account's secret."""

    path: str
    secret: str
    when: str | None
    _compiled: CompiledExpression
    _when: CompiledExpression | None


@record(frozen=True, eq=False)
class MappingPlan:
    """One source's checked mapping file, ready to run."""

    source: str
    adapter: str
    description: str | None
    format: str
    messages: str | None
    decode: list[DecodePlan]
    defaults: DefaultsPlan
    rules: list[RulePlan]
    verification: dict[str, Any] | None
    reply: dict[str, Any] | None
    options: dict[str, Any]
    account_binding: BindingPlan | list[BindingPlan] | None
    _messages: CompiledExpression | None
    #: the attribute budget the file was checked against; the engine checks events with it
    _budget: AttributeBudget = SEED_ATTRIBUTE_BUDGET

    def account_bindings(self) -> list[BindingPlan]:
        """The file's account bindings as a list (none, one, or several)."""
        binding = self.account_binding
        if binding is None:
            return []
        return binding if isinstance(binding, list) else [binding]


def _value(data: Mapping[str, Any]) -> ValuePlan:
    path, template = data["path"], data["template"]
    return ValuePlan(
        path=path, value=data["value"], template=template, convert=list(data["convert"]), default=data["default"],
        truncate=data["truncate"], kind=data.get("kind", "text"),
        _compiled=compile_expression(path) if path is not None else None,
        _template_parts=template_parts(template) if template is not None else [],
        _chain=converter_chain(data["convert"]),
    )


def _optional_value(data: Mapping[str, Any] | None) -> ValuePlan | None:
    return None if data is None else _value(data)


def _identity(data: Mapping[str, Any] | None) -> IdentityPlan | None:
    if data is None:
        return None
    return IdentityPlan(type=data["type"], type_from=_optional_value(data["typeFrom"]), value=_value(data["value"]),
                        name=_optional_value(data["name"]), create=data["create"])


def _rule(data: Mapping[str, Any]) -> RulePlan:
    return RulePlan(
        name=data["name"],
        description=data["description"],
        when=data["when"],
        skip=data["skip"],
        continue_=data["continue"],
        foreach=data["foreach"],
        event=_optional_value(data["event"]),
        identity=_identity(data["identity"]),
        external_id=_optional_value(data["externalId"]),
        date=_optional_value(data["date"]),
        fields={name: _value(spec) for name, spec in data["fields"].items()},
        attributes={name: _value(spec) for name, spec in data["attributes"].items()},
        _when=optional_expression(data["when"]),
        _foreach=optional_expression(data["foreach"]),
    )


def _binding(data: Mapping[str, Any]) -> BindingPlan:
    return BindingPlan(path=data["path"], secret=data["secret"], when=data["when"],
                       _compiled=compile_expression(data["path"]), _when=optional_expression(data["when"]))


def plan_from_data(data: Mapping[str, Any], budget: AttributeBudget = SEED_ATTRIBUTE_BUDGET) -> MappingPlan:
    """The plan of a mapping file already checked against ``budget``: ``data`` is the checked
    file as pydantic dumps it (``MappingFile.model_dump(by_alias=True)``), every key present.

    Nothing is checked here beyond what compiling needs: call it only with a checked file's data
    (:func:`dmhub_adapter.mapping.config.parse_mapping` or a plan the build wrote)."""
    binding = data["accountBinding"]
    defaults = data["defaults"]
    return MappingPlan(
        source=data["source"],
        adapter=data["adapter"],
        description=data["description"],
        format=data["format"],
        messages=data["messages"],
        decode=[DecodePlan(field=step["field"], convert=list(step["convert"]), required=step["required"],
                           _chain=converter_chain(step["convert"])) for step in data["decode"]],
        defaults=DefaultsPlan(
            identity=_identity(defaults["identity"]),
            fields={name: _value(spec) for name, spec in defaults["fields"].items()},
        ),
        rules=[_rule(rule) for rule in data["rules"]],
        verification=data["verification"],
        reply=data["reply"],
        options=data["options"],
        account_binding=(
            None if binding is None else [_binding(b) for b in binding] if isinstance(binding, list)
            else _binding(binding)
        ),
        _messages=optional_expression(data["messages"]),
        _budget=budget,
    )
