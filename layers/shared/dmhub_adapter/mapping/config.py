"""The mapping config format: one YAML file per source.

A file declares how the source's payload is decoded and a list of rules; the first rule
whose ``when`` holds maps the message (``continue: true`` lets later rules map it too).
Values are JMESPath expressions (with the extra functions of :mod:`.functions`), literals,
or templates, each optionally passed through named converters (:mod:`.converters`).
Everything is checked and compiled when the file loads, so a bad config fails at load time
with the file, the rule and the field named.

The pydantic models below are the file's schema and its checks; a checked file becomes a
:class:`~dmhub_adapter.mapping.plan.MappingPlan`, which is what the runtime runs. A packaged
mapping whose plan the build wrote (:mod:`dmhub_adapter.mapping.compiled`) loads from that
plan without this module.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import yaml
from jmespath.exceptions import JMESPathError
from pydantic import (
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from dmhub_adapter.mapping import converters
from dmhub_adapter.mapping.files import (
    SOURCE_NAME_RE,
    MappingConfigError,
    mapping_path,
    packaged_dir,
    read_compiled_plan,
    search_dirs,
)
from dmhub_adapter.mapping.functions import compile_expression
from dmhub_adapter.mapping.plan import (
    MappingPlan,
    RulePlan,
    converter_chain,
    plan_from_data,
    template_parts,
)
from dmhub_adapter.model.customer_event import (
    ATTRIBUTE_BUDGET_CONTEXT,
    CUSTOM_EVENT_PREFIX,
    EVENT_MAX,
    NOT_ON_CUSTOM_EVENTS,
    SEED_ATTRIBUTE_BUDGET,
    AttributeBudget,
    AttributeKind,
    IdentityType,
    attribute_budget,
)
from dmhub_adapter.validation import StrictModel, error_location, error_message

# names other modules have always imported from here
__all__ = [
    "SOURCE_NAME_RE",
    "AccountBinding",
    "AttributeSpec",
    "DecodeStep",
    "Defaults",
    "IdentitySpec",
    "MappingConfigError",
    "MappingFile",
    "RuleSpec",
    "ValueSpec",
    "available_sources",
    "block_problems",
    "check_mapping",
    "checked_mapping_data",
    "iter_rules",
    "json_schema",
    "load_mapping",
    "mapping_path",
    "packaged_dir",
    "parse_mapping",
]

#: names whose claim keys or secret names would collide with the table's token and identity
#: items (``token#…``, ``identity#…``) or the DM Hub credentials secret (``{prefix}/dmhub``)
RESERVED_SOURCE_NAMES = frozenset({"token", "identity", "dmhub"})
#: CustomerEvent fields a rule may set through ``fields`` (date and externalId have their own keys).
EVENT_FIELDS = (
    "targetId",
    "targetName",
    "source",
    "contentName",
    "score",
    "tag",
    "campaign",
    "campaignName",
    "summary",
    "referrer",
)


#: libyaml's safe loader when PyYAML has it (the wheels do): ten times faster on a mapping file
_SAFE_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _new_list() -> list[Any]:
    # Pydantic inspects a private attribute's default factory for every instance it creates;
    # a Python function's signature is read at once, the builtin ``list``'s is parsed from
    # text each time (40-50 ms over the hundreds of values of one mapping file).
    return []


class ValueSpec(StrictModel):
    """Where a value comes from. In YAML a bare string is a JMESPath ``path`` and any other
    scalar a literal ``value``; the mapping form allows one of ``path``/``value``/``template``
    plus ``convert``, ``default`` and ``truncate``."""

    path: str | None = Field(default=None, description="JMESPath expression evaluated on the message")
    value: Any = Field(default=None, description="a literal value")
    template: str | None = Field(
        default=None, description="text with {JMESPath} placeholders; null renders as ''"
    )
    convert: list[str] = Field(default_factory=list, description="converter names, 'name' or 'name:arg'")
    default: Any = Field(default=None, description="used when the value is null or ''")
    truncate: bool = Field(default=False, description="cut to the field's DM Hub limit instead of failing")

    _compiled: Any = PrivateAttr(default=None)
    _template_parts: list[tuple[str, Any]] = PrivateAttr(default_factory=_new_list)
    _chain: list[tuple[str, str | None]] = PrivateAttr(default_factory=_new_list)

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        if isinstance(data, str):
            return {"path": data}
        if data is None or isinstance(data, (int, float, bool)):
            return {"value": data}
        return data

    @field_validator("convert", mode="before")
    @classmethod
    def _one_converter(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @model_validator(mode="after")
    def _compile(self) -> ValueSpec:
        sources = [name for name in ("path", "template") if getattr(self, name) is not None]
        if self.value is not None:
            sources.append("value")
        if len(sources) != 1:
            raise ValueError("give exactly one of path, value or template")
        try:
            self._compiled = compile_expression(self.path) if self.path is not None else None
            if self.template is not None:
                self._template_parts = template_parts(self.template)
        except JMESPathError as exc:
            raise ValueError(f"bad JMESPath expression: {exc}") from exc
        try:
            self._chain = converter_chain(self.convert)
        except converters.ConversionError as exc:
            raise ValueError(str(exc)) from exc
        return self


class AttributeSpec(ValueSpec):
    """A custom attribute's value plus its ``kind`` as defined in DM Hub (``text`` by default,
    ``quantity`` for integers, ``amount`` for money); with a budget of 16 the kinds are counted."""

    kind: AttributeKind = Field(default="text", description="text, quantity or amount (DM Hub's attribute types)")


def _custom_event_spec(spec: ValueSpec | None) -> bool:
    """Whether an event-type value is (statically) a custom ``c_`` type."""
    if spec is None:
        return False
    if isinstance(spec.value, str) and not spec.convert:
        return spec.value.startswith(CUSTOM_EVENT_PREFIX)
    return spec.template is not None and spec.template.startswith(CUSTOM_EVENT_PREFIX)


class IdentitySpec(StrictModel):
    """``identity:`` of a rule: the DM Hub identity type and where its value (and the customer's
    name) come from; ``create`` lets the sender create an unknown customer."""

    type: IdentityType = Field(description="identity type, e.g. wechat")
    type_from: ValueSpec | None = Field(
        default=None, alias="typeFrom",
        description="where the message says the type (e.g. _account.identityType); 'type' when it has none",
    )
    value: ValueSpec
    name: ValueSpec | None = None
    create: bool = Field(default=True, description="may the sender create the customer when unknown")


class DecodeStep(StrictModel):
    """Decode a field of each message in place before rules run (e.g. Taobao's ``content``)."""

    field: str = Field(description="top-level key of the message")
    convert: list[str] = Field(description="converters applied to it, e.g. [json]")
    required: bool = True

    _chain: list[tuple[str, str | None]] = PrivateAttr(default_factory=_new_list)

    @field_validator("convert", mode="before")
    @classmethod
    def _one(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @model_validator(mode="after")
    def _compile(self) -> DecodeStep:
        try:
            self._chain = converter_chain(self.convert)
        except converters.ConversionError as exc:
            raise ValueError(str(exc)) from exc
        return self


class RuleSpec(StrictModel):
    """One rule of a mapping file: when it applies (or is skipped on purpose), the event it
    makes, its externalId, date, identity, fields and custom attributes."""

    name: str = Field(min_length=1, max_length=64)
    description: str | None = None
    when: str | None = Field(default=None, description="JMESPath condition; the rule applies when truthy")
    skip: str | None = Field(default=None, description="ignore matching messages on purpose; the reason")
    continue_: bool = Field(default=False, alias="continue", description="let later rules map it too")
    foreach: str | None = Field(default=None, description="JMESPath list; one event per item, as _item")
    event: ValueSpec | None = Field(default=None, description="event type; a bare string is a literal")
    identity: IdentitySpec | None = None
    external_id: ValueSpec | None = Field(default=None, alias="externalId")
    date: ValueSpec | None = None
    fields: dict[str, ValueSpec] = Field(default_factory=dict)
    attributes: dict[str, AttributeSpec] = Field(
        default_factory=dict, description="custom attributes (5, or 16 = 10 text, 3 quantity, 3 amount)"
    )

    _when: Any = PrivateAttr(default=None)
    _foreach: Any = PrivateAttr(default=None)

    @field_validator("event", mode="before")
    @classmethod
    def _literal_event(cls, value: Any) -> Any:
        return {"value": value} if isinstance(value, str) else value

    @model_validator(mode="after")
    def _check(self, info: ValidationInfo) -> RuleSpec:
        for name in ("when", "foreach"):
            expression = getattr(self, name)
            try:
                setattr(self, f"_{name}", compile_expression(expression) if expression else None)
            except JMESPathError as exc:
                raise ValueError(f"field '{name}': bad JMESPath expression: {exc}") from exc
        if self.skip is not None:
            return self
        for name in ("event", "external_id", "date"):
            if getattr(self, name) is None:
                raise ValueError(f"a mapping rule needs '{'externalId' if name == 'external_id' else name}'")
        unknown = sorted(set(self.fields) - set(EVENT_FIELDS))
        if unknown:
            raise ValueError(f"unknown event field(s) {unknown}; allowed: {list(EVENT_FIELDS)}")
        assert self.event is not None
        literal = self.event.value
        if isinstance(literal, str) and not self.event.convert:
            if len(literal) > EVENT_MAX:
                raise ValueError(f"event type {literal!r} is {len(literal)} characters; DM Hub allows {EVENT_MAX}")
            if self.attributes and not literal.startswith(CUSTOM_EVENT_PREFIX):
                raise ValueError(
                    f"custom attributes need a custom event type starting with {CUSTOM_EVENT_PREFIX!r}"
                )
        clash = sorted(set(self.attributes) & {*EVENT_FIELDS, "event", "externalId", "date", "customerId"})
        if clash:
            raise ValueError(f"custom attribute(s) {clash} would overwrite the event's own field(s); rename them")
        if _custom_event_spec(self.event):
            carried = [name for name in NOT_ON_CUSTOM_EVENTS if name in self.fields]
            if carried:
                raise ValueError(
                    f"maps {', '.join(carried)} onto a custom event; DM Hub's custom events take no "
                    "targetId, targetName or summary: carry the value as a custom attribute"
                )
        budget = attribute_budget(info)
        problems = budget.problems({name: spec.kind for name, spec in self.attributes.items()})
        if problems:
            raise ValueError(f"custom attributes: {'; '.join(problems)} (DMHUB_CUSTOM_ATTRIBUTES={budget.total})")
        return self

    def attribute_kinds(self) -> dict[str, str]:
        """The kinds of this rule's attributes that are not text."""
        return {name: spec.kind for name, spec in self.attributes.items() if spec.kind != "text"}


class Defaults(StrictModel):
    """``defaults:`` an identity and fields every rule of the file inherits unless it sets its own."""

    identity: IdentitySpec | None = None
    fields: dict[str, ValueSpec] = Field(default_factory=dict)

    @field_validator("fields")
    @classmethod
    def _known(cls, value: dict[str, ValueSpec]) -> dict[str, ValueSpec]:
        unknown = sorted(set(value) - set(EVENT_FIELDS))
        if unknown:
            raise ValueError(f"unknown event field(s) {unknown}; allowed: {list(EVENT_FIELDS)}")
        return value


class AccountBinding(StrictModel):
    """``accountBinding:`` a payload value that must equal a field of the account's secret.

    Accounts that share app credentials (one Youzan app for several shops, one WeChat token
    reused) can sign each other's requests; the binding ties each message to the account in
    the URL. It is enforced for an account whose secret has the field and skipped (with one
    warning) for one whose secret lacks it, so existing secrets keep working.
    """

    path: str = Field(description="JMESPath on each (decoded) message, e.g. kdt_id or ToUserName")
    secret: str = Field(min_length=1, description="the secret's field it must equal, e.g. kdtId")
    when: str | None = Field(
        default=None, description="JMESPath condition: only matching messages must carry the value (default all)"
    )

    _compiled: Any = PrivateAttr(default=None)
    _when: Any = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _compile(self) -> AccountBinding:
        try:
            self._compiled = compile_expression(self.path)
            self._when = compile_expression(self.when) if self.when else None
        except JMESPathError as exc:
            raise ValueError(f"bad JMESPath expression: {exc}") from exc
        return self


class MappingFile(StrictModel):
    """One source: its adapter, payload format, decode steps, defaults and rules."""

    source: str = Field(description="source name as used in the URL /webhooks/{source}/{account}")
    adapter: str = Field(default="generic", description="the sources module that verifies and parses")
    description: str | None = None
    format: Literal["xml", "json", "form"] = "json"
    messages: str | None = Field(default=None, description="JMESPath splitting one payload into messages")
    decode: list[DecodeStep] = Field(default_factory=list)
    defaults: Defaults = Field(default_factory=Defaults)
    rules: list[RuleSpec] = Field(min_length=1)
    verification: dict[str, Any] | None = Field(default=None, description="adapter-specific signature scheme")
    reply: dict[str, Any] | None = Field(default=None, description="adapter-specific reply dialect")
    options: dict[str, Any] = Field(default_factory=dict, description="adapter-specific options")
    account_binding: AccountBinding | list[AccountBinding] | None = Field(
        default=None, alias="accountBinding",
        description="payload value(s) that must equal a secret field; a list checks each",
    )

    def account_bindings(self) -> list[AccountBinding]:
        """The file's account bindings as a list (none, one, or several)."""
        binding = self.account_binding
        if binding is None:
            return []
        return binding if isinstance(binding, list) else [binding]

    _messages: Any = PrivateAttr(default=None)

    @field_validator("source")
    @classmethod
    def _source_name(cls, value: str) -> str:
        if not SOURCE_NAME_RE.match(value):
            raise ValueError("source names are lower case letters, digits and '-'")
        if value in RESERVED_SOURCE_NAMES:
            raise ValueError(
                f"{value!r} is reserved: the idempotency table and the secrets use it for the DM Hub token, "
                "identity cache or credentials"
            )
        return value

    @model_validator(mode="after")
    def _check(self) -> MappingFile:
        try:
            self._messages = compile_expression(self.messages) if self.messages else None
        except JMESPathError as exc:
            raise ValueError(f"messages: bad JMESPath expression: {exc}") from exc
        names = [rule.name for rule in self.rules]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"rule names must be unique; repeated: {duplicates}")
        for rule in self.rules:
            if rule.skip is None and rule.identity is None and self.defaults.identity is None:
                raise ValueError(f"rule {rule.name!r}: no identity (set one on the rule or in defaults)")
            carried = [
                name for name in NOT_ON_CUSTOM_EVENTS if name in self.defaults.fields and name not in rule.fields
            ]
            if rule.skip is None and carried and _custom_event_spec(rule.event):
                raise ValueError(
                    f"rule {rule.name!r}: defaults map {', '.join(carried)} onto its custom event; DM Hub's "
                    "custom events take no targetId, targetName or summary: carry the value as a custom attribute"
                )
        return self


# --------------------------------------------------------------------------------------------
# Loading


def _format_validation_error(exc: ValidationError, data: Any) -> list[str]:
    problems = []
    for error in exc.errors():
        location = list(error["loc"])
        where: list[str] = []
        # Replace "rules.3" with the rule's name so the message points at something findable.
        if len(location) >= 2 and location[0] == "rules" and isinstance(location[1], int):
            rules = data.get("rules") if isinstance(data, dict) else None
            name = None
            if isinstance(rules, list) and location[1] < len(rules) and isinstance(rules[location[1]], dict):
                name = rules[location[1]].get("name")
            where.append(f"rule {name!r}" if name else f"rule #{location[1] + 1}")
            location = location[2:]
        field = ".".join(error_location(location))
        if field:
            where.append(f"field {field!r}")
        message = error_message(error)
        problems.append(f"{', '.join(where)}: {message}" if where else message)
    return problems


def block_problems(exc: ValidationError, block: str) -> list[str]:
    """An adapter's config block (``verification``, ``reply``, ``options``) failed validation:
    one readable problem per error, naming the field as ``block.path``."""
    problems = []
    for error in exc.errors():
        parts = [block, *error_location(error["loc"])]
        problems.append(f"field {'.'.join(parts)!r}: {error_message(error)}")
    return problems


def check_mapping(text: str, file: str, *, budget: AttributeBudget = SEED_ATTRIBUTE_BUDGET) -> MappingFile:
    """Parse and check one mapping file's text against the deployment's custom attribute
    ``budget``: the file's pydantic model; raises :class:`MappingConfigError`.

    This checks the mapping language only; the adapter's own blocks (``verification``,
    ``reply``, ``options``) are checked by :func:`dmhub_adapter.sources.registry.parse_source_mapping`."""
    try:
        data = yaml.load(text, Loader=_SAFE_LOADER)  # noqa: S506 - a safe loader
    except yaml.YAMLError as exc:
        raise MappingConfigError(file, [f"invalid YAML: {exc}"]) from exc
    if not isinstance(data, dict):
        raise MappingConfigError(file, ["a mapping file is a YAML mapping with 'source' and 'rules'"])
    try:
        mapping = MappingFile.model_validate(data, context={ATTRIBUTE_BUDGET_CONTEXT: budget})
    except ValidationError as exc:
        raise MappingConfigError(file, _format_validation_error(exc, data)) from exc
    stem = Path(file).stem
    if stem != mapping.source and not file.startswith("<"):
        raise MappingConfigError(file, [f"field 'source': {mapping.source!r} must match the file name {stem!r}"])
    return mapping


def checked_mapping_data(
    text: str, file: str, *, budget: AttributeBudget = SEED_ATTRIBUTE_BUDGET
) -> dict[str, Any]:
    """The checked file as data, every key present (what a plan is made from); raises
    :class:`MappingConfigError`."""
    return check_mapping(text, file, budget=budget).model_dump(by_alias=True)


def parse_mapping(text: str, file: str, *, budget: AttributeBudget = SEED_ATTRIBUTE_BUDGET) -> MappingPlan:
    """Parse and check one mapping file's text against the custom attribute ``budget`` and
    return its plan; raises :class:`MappingConfigError`.

    Example::

        plan = parse_mapping(Path("acme.yaml").read_text(), "acme.yaml")
    """
    return plan_from_data(checked_mapping_data(text, file, budget=budget), budget)


@lru_cache(maxsize=64)
def _load_cached(path: str, mtime_ns: int, budget: AttributeBudget) -> MappingPlan:
    compiled = read_compiled_plan(Path(path), budget)
    if compiled is not None:
        return compiled
    return parse_mapping(Path(path).read_text(encoding="utf-8"), path, budget=budget)


def load_mapping(
    source: str, mappings_dir: str | None = None, *, budget: AttributeBudget = SEED_ATTRIBUTE_BUDGET
) -> MappingPlan | None:
    """The mapping for ``source`` (``mappings_dir`` first, then the packaged ones), or None."""
    path = mapping_path(source, mappings_dir)
    if path is None:
        return None
    return _load_cached(str(path), path.stat().st_mtime_ns, budget)


def available_sources(mappings_dir: str | None = None) -> list[str]:
    """The names of every source with a mapping file, overrides and packaged ones."""
    names: set[str] = set()
    for directory in search_dirs(mappings_dir):
        if directory.is_dir():
            names.update(p.stem for p in directory.glob("*.yaml") if SOURCE_NAME_RE.match(p.stem))
    return sorted(names)


def json_schema() -> dict[str, Any]:
    """JSON Schema of the mapping file format, for editors (yaml-language-server).

    pydantic describes the long forms only; the loader also takes the short ones its
    ``mode="before"`` validators expand, so the schema says so too: a value as a bare JMESPath
    string or a literal scalar, ``convert`` as one name or a list (the test validates every
    shipped mapping and every example in docs/ with a JSON Schema validator)."""
    schema = MappingFile.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "dmhub-adapter mapping file"
    definitions = schema.get("$defs", {})
    for definition in definitions.values():
        convert = (definition.get("properties") or {}).get("convert")
        if isinstance(convert, dict) and convert.get("type") == "array":
            definition["properties"]["convert"] = {
                "anyOf": [{"type": "string"}, {key: value for key, value in convert.items() if key != "default"}],
                "description": convert.get("description", "") + "; one name or a list",
            }
    for name in ("ValueSpec", "AttributeSpec"):
        if name not in definitions:
            continue
        # every reference stays on the name, now the choice of forms; the object is one of them
        definitions[f"{name}Object"] = definitions.pop(name)
        definitions[name] = {
            "description": "a value: a JMESPath expression (bare string), a literal (number, boolean, null, "
            "or {value: ...}) or a template ({template: ...})"
            + ("; the object form may add kind: text, quantity or amount" if name == "AttributeSpec" else ""),
            "anyOf": [
                {"type": "string", "description": "JMESPath expression (shorthand for {path: ...})"},
                {"type": ["number", "boolean", "null"], "description": "literal (shorthand for {value: ...})"},
                {"$ref": f"#/$defs/{name}Object"},
            ],
        }
    return schema


def iter_rules(mapping: MappingPlan) -> Iterable[RulePlan]:
    """The rules of ``mapping`` in file order (the order they are tried in)."""
    return iter(mapping.rules)
