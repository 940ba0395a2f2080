"""Apply a mapping file to authentic messages: 0..n CustomerEvents per message.

Three outcomes per message, kept apart on purpose:

- ``mapped``   one or more rules produced events, all valid against the DM Hub model;
- ``skipped``  a ``skip`` rule matched: ignored on purpose (e.g. template-send receipts);
- ``unmapped`` no rule matched, a value could not be converted, or an event failed
  validation. Unmapped messages are authentic and are kept for replay, never dropped.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from jmespath.exceptions import JMESPathError
from pydantic import ValidationError

from dmhub_adapter.mapping import converters
from dmhub_adapter.mapping.config import MappingFile, RuleSpec, ValueSpec
from dmhub_adapter.mapping.functions import is_false, search
from dmhub_adapter.model.customer_event import (
    ATTRIBUTE_BUDGET_CONTEXT,
    SUMMARY_MAX,
    TAG_MAX,
    TARGET_MAX,
    CustomerEvent,
    Identity,
    check_attribute_value,
)
from dmhub_adapter.validation import error_lines

#: limits a ``truncate: true`` value is cut to, by field
_LIMITS = {"targetId": TARGET_MAX, "targetName": TARGET_MAX, "tag": TAG_MAX, "summary": SUMMARY_MAX}

#: what ``truncate: true`` cuts a custom attribute to: DM Hub publishes no attribute length, so
#: the limit of ``summary`` (where the WeChat message text used to go)
ATTRIBUTE_TRUNCATE_MAX = SUMMARY_MAX

Status = Literal["mapped", "skipped", "unmapped"]


class MappingError(ValueError):
    """A message could not be mapped; the message names the rule and the field."""


@dataclass(frozen=True)
class MappedEvent:
    """One event a rule produced, with the identity the sender resolves to a customer."""

    rule: str
    event: CustomerEvent
    identity: Identity | None
    #: kinds of the custom attributes that are not text (quantity, amount)
    attribute_kinds: dict[str, str] = field(default_factory=dict)


@dataclass
class MessageResult:
    """What became of one message: ``mapped`` (with events), ``skipped`` or ``unmapped``
    (with the reason and, where one matched, the rule)."""

    status: Status
    events: list[MappedEvent] = field(default_factory=list)
    reason: str | None = None
    rule: str | None = None


Getter = Callable[[dict[str, Any]], Any]


def _compile_value(spec: ValueSpec, limit: int | None = None, *, field_of: tuple[str, str] | None = None
                   ) -> Getter:
    """A ValueSpec as one closure (built once per mapping; pydantic private attributes are
    slow to read on every message). With ``field_of=(rule, field)`` a conversion or JMESPath
    error becomes a :class:`MappingError` naming them, inside the same closure: the getters run
    for every field of every event."""
    chain = list(spec._chain)
    default = spec.default
    truncate_to = limit if spec.truncate else None
    raw: Getter
    if spec.path is not None:
        raw = spec._compiled.evaluate
    elif spec.template is not None:
        template = spec.template
        parts = [(placeholder, compiled.evaluate) for placeholder, compiled in spec._template_parts]
        to_string = converters.to_string

        def raw(context: dict[str, Any]) -> Any:
            text = template
            for placeholder, evaluate_part in parts:
                part = evaluate_part(context)
                text = text.replace(placeholder, "" if part is None else to_string(part, None), 1)
            return text
    else:
        constant = spec.value
        if constant is None or isinstance(constant, (str, int, float)):
            def raw(context: dict[str, Any]) -> Any:
                return constant
        else:
            def raw(context: dict[str, Any]) -> Any:
                return copy.copy(constant)

    apply = converters.apply

    def value_of(context: dict[str, Any]) -> Any:
        value = raw(context)
        if (value is None or value == "") and default is not None:
            value = default
        if chain:
            value = apply(chain, value)
        if truncate_to is not None and isinstance(value, str) and len(value) > truncate_to:
            value = value[:truncate_to]
        return value

    if field_of is None:
        return value_of
    rule, name = field_of

    def guarded(context: dict[str, Any]) -> Any:
        # value_of's body again rather than a call to it: one Python call less per field
        try:
            value = raw(context)
            if (value is None or value == "") and default is not None:
                value = default
            if chain:
                value = apply(chain, value)
        except (converters.ConversionError, JMESPathError) as exc:
            raise MappingError(f"rule {rule!r}, field {name!r}: {exc}") from exc
        if truncate_to is not None and isinstance(value, str) and len(value) > truncate_to:
            value = value[:truncate_to]
        return value

    return guarded


def _text(value: Any, rule: str, name: str) -> str:
    try:
        return converters.to_string(value, None)
    except converters.ConversionError as exc:
        raise MappingError(f"rule {rule!r}, field {name!r}: {exc}") from exc


def _holds(evaluate: Getter, context: dict[str, Any]) -> bool:
    """A ``when`` condition; one that cannot be evaluated on this message's shape does not hold."""
    try:
        return not is_false(evaluate(context))
    except JMESPathError:
        return False


@dataclass(frozen=True)
class _IdentityPlan:
    type: str
    type_from: Getter | None
    create: bool
    value: Getter
    name: Getter | None


@dataclass(frozen=True)
class _RulePlan:
    name: str
    skip: str | None
    continue_: bool
    when: Getter | None
    foreach: Getter | None
    event: Getter | None = None
    external_id: Getter | None = None
    date: Getter | None = None
    fields: tuple[tuple[str, Getter], ...] = ()
    identity: _IdentityPlan | None = None
    attribute_kinds: tuple[tuple[str, str], ...] = ()
    context: dict[str, Any] = field(default_factory=dict)


def _plan_rule(rule: RuleSpec, mapping: MappingFile) -> _RulePlan:
    when = rule._when.evaluate if rule._when is not None else None
    foreach = rule._foreach.evaluate if rule._foreach is not None else None
    if rule.skip is not None:
        return _RulePlan(rule.name, rule.skip, rule.continue_, when, foreach)
    assert rule.event is not None and rule.external_id is not None and rule.date is not None
    fields = [
        (name, _compile_value(spec, _LIMITS.get(name), field_of=(rule.name, name)))
        for name, spec in {**mapping.defaults.fields, **rule.fields}.items()
    ] + [
        (name, _compile_value(spec, ATTRIBUTE_TRUNCATE_MAX, field_of=(rule.name, f"attributes.{name}")))
        for name, spec in rule.attributes.items()
    ]
    identity_spec = rule.identity or mapping.defaults.identity
    identity = None
    if identity_spec is not None:
        identity = _IdentityPlan(
            type=identity_spec.type,
            type_from=(_compile_value(identity_spec.type_from, field_of=(rule.name, "identity.typeFrom"))
                       if identity_spec.type_from else None),
            create=identity_spec.create,
            value=_compile_value(identity_spec.value, field_of=(rule.name, "identity.value")),
            name=(
                _compile_value(identity_spec.name, field_of=(rule.name, "identity.name"))
                if identity_spec.name
                else None
            ),
        )
    return _RulePlan(
        name=rule.name,
        skip=None,
        continue_=rule.continue_,
        when=when,
        foreach=foreach,
        event=_compile_value(rule.event, field_of=(rule.name, "event")),
        external_id=_compile_value(rule.external_id, field_of=(rule.name, "externalId")),
        date=_compile_value(rule.date, field_of=(rule.name, "date")),
        fields=tuple(fields),
        identity=identity,
        attribute_kinds=tuple(rule.attribute_kinds().items()),
        context={ATTRIBUTE_BUDGET_CONTEXT: mapping._budget},
    )


_plans: dict[int, tuple[MappingFile, list[_RulePlan]]] = {}


def _plan(mapping: MappingFile) -> list[_RulePlan]:
    cached = _plans.get(id(mapping))
    if cached is None or cached[0] is not mapping:
        cached = (mapping, [_plan_rule(rule, mapping) for rule in mapping.rules])
        _plans[id(mapping)] = cached
    return cached[1]


def decode_message(mapping: MappingFile, message: dict[str, Any]) -> dict[str, Any]:
    """Run the file's ``decode`` steps on one message (returns a new dict)."""
    if not mapping.decode:
        return message
    decoded = dict(message)
    for step in mapping.decode:
        if step.field not in decoded or decoded[step.field] is None:
            if step.required:
                raise MappingError(f"decode: field {step.field!r} is missing")
            continue
        try:
            decoded[step.field] = converters.apply(step._chain, decoded[step.field])
        except converters.ConversionError as exc:
            raise MappingError(f"decode: field {step.field!r}: {exc}") from exc
    return decoded


def split_messages(mapping: MappingFile, payload: Any) -> list[dict[str, Any]]:
    """One payload → its messages, per the file's ``messages`` expression (default: itself)."""
    items = search(mapping._messages, payload) if mapping._messages is not None else payload
    if isinstance(items, dict):
        items = [items]
    if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
        raise MappingError("the payload does not contain a message object or a list of them")
    return items


def _build_event(plan: _RulePlan, context: dict[str, Any]) -> MappedEvent:
    assert plan.event is not None and plan.external_id is not None and plan.date is not None
    rule = plan.name
    body: dict[str, Any] = {}
    for name, getter in plan.fields:
        value = getter(context)
        if value is not None and value != "":
            body[name] = value
    event_type = plan.event(context)
    external_id = plan.external_id(context)
    date = plan.date(context)
    for name, value in (("event", event_type), ("externalId", external_id), ("date", date)):
        if value is None or value == "":
            raise MappingError(f"rule {rule!r}, field {name!r}: no value in this message")
    body["event"] = event_type
    body["externalId"] = _text(external_id, rule, "externalId")
    body["date"] = date

    identity = None
    if plan.identity is not None:
        value = plan.identity.value(context)
        if value is None or value == "":
            raise MappingError(f"rule {rule!r}, field 'identity.value': no value in this message")
        label = plan.identity.name(context) if plan.identity.name is not None else None
        chosen = plan.identity.type_from(context) if plan.identity.type_from is not None else None
        try:
            identity = Identity(
                type=plan.identity.type if chosen in (None, "") else _text(chosen, rule, "identity.typeFrom"),
                value=_text(value, rule, "identity.value"),
                name=None if label in (None, "") else _text(label, rule, "identity.name"),
                create=plan.identity.create,
            )
        except ValidationError as exc:
            raise MappingError(f"rule {rule!r}, identity: {_first_error(exc)}") from exc
    try:
        event = CustomerEvent.model_validate(body, context=plan.context)
    except ValidationError as exc:
        raise MappingError(f"rule {rule!r}: event invalid for DM Hub: {_first_error(exc)}") from exc
    kinds = {name: kind for name, kind in plan.attribute_kinds if name in body}
    for name, kind in kinds.items():
        try:
            check_attribute_value(name, kind, body[name])
        except ValueError as exc:
            raise MappingError(f"rule {rule!r}: event invalid for DM Hub: {exc}") from exc
    return MappedEvent(rule=rule, event=event, identity=identity, attribute_kinds=kinds)


def _first_error(exc: ValidationError) -> str:
    return "; ".join(error_lines(exc.errors()))


def map_message(mapping: MappingFile, message: dict[str, Any], meta: dict[str, Any] | None = None) -> MessageResult:
    """Map one decoded, authentic message. Never raises for bad data: returns ``unmapped``."""
    context = {**message, "_meta": meta or {}}
    events: list[MappedEvent] = []
    matched: list[str] = []
    try:
        for rule in _plan(mapping):
            if rule.when is not None and not _holds(rule.when, context):
                continue
            matched.append(rule.name)
            if rule.skip is not None:
                if events:
                    break
                return MessageResult(status="skipped", reason=rule.skip, rule=rule.name)
            if rule.foreach is not None:
                try:
                    items = rule.foreach(context)
                except JMESPathError as exc:
                    raise MappingError(f"rule {rule.name!r}, field 'foreach': {exc}") from exc
                if not isinstance(items, list):
                    raise MappingError(f"rule {rule.name!r}, field 'foreach': not a list in this message")
                for item in items:
                    events.append(_build_event(rule, {**context, "_item": item}))
            else:
                events.append(_build_event(rule, context))
            if not rule.continue_:
                break
    except MappingError as exc:
        return MessageResult(status="unmapped", reason=str(exc), rule=matched[-1] if matched else None)
    if not matched:
        return MessageResult(status="unmapped", reason="no rule matched this message")
    if not events:
        return MessageResult(status="skipped", reason="matched rules produced no events", rule=matched[-1])
    return MessageResult(status="mapped", events=events, rule=matched[0])


def map_payload(mapping: MappingFile, messages: list[dict[str, Any]], meta: dict[str, Any] | None = None
                ) -> list[MessageResult]:
    """Decode and map each message of a payload; a decode failure makes that message unmapped."""
    results = []
    for message in messages:
        try:
            decoded = decode_message(mapping, message)
        except MappingError as exc:
            results.append(MessageResult(status="unmapped", reason=str(exc)))
            continue
        results.append(map_message(mapping, decoded, meta))
    return results
