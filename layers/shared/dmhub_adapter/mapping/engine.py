"""Apply a mapping file to authentic messages: 0..n CustomerEvents per message.

Three outcomes per message, kept apart on purpose:

- ``mapped``   one or more rules produced events, all valid against the DM Hub model;
- ``skipped``  a ``skip`` rule matched: ignored on purpose (e.g. template-send receipts);
- ``unmapped`` no rule matched, a value could not be converted, or an event failed
  validation. Unmapped messages are authentic and are kept for replay, never dropped.

Events are checked against DM Hub's rules by :func:`dmhub_adapter.model.wire.read_event` and
:func:`~dmhub_adapter.model.wire.read_identity`, without pydantic, when the rule's values are
of JSON's own types (text, integers, …), which is what those functions are exact for. Anything
else, and every refusal, goes to the pydantic models, which then decide and word the reason:
the verdict is the model's in every case, and a cold ingest mapping an ordinary event never
imports pydantic. The pydantic :class:`~dmhub_adapter.model.customer_event.CustomerEvent` of a
mapped event is still there on demand (:attr:`MappedEvent.event`).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Literal

from jmespath.exceptions import JMESPathError

from dmhub_adapter.mapping import converters
from dmhub_adapter.mapping.functions import is_false, search
from dmhub_adapter.mapping.plan import MappingPlan, RulePlan, ValuePlan
from dmhub_adapter.model.rules import (
    ATTRIBUTE_BUDGET_CONTEXT,
    SUMMARY_MAX,
    TAG_MAX,
    TARGET_MAX,
    AttributeBudget,
    check_attribute_value,
)
from dmhub_adapter.model.wire import DECLARED_FIELDS as _DECLARED
from dmhub_adapter.model.wire import WireEvent, WireIdentity, read_event, read_identity
from dmhub_adapter.records import field, record

if TYPE_CHECKING:
    from pydantic import ValidationError

    from dmhub_adapter.mapping.config import ValueSpec
    from dmhub_adapter.model.customer_event import CustomerEvent, Identity

#: limits a ``truncate: true`` value is cut to, by field
_LIMITS = {"targetId": TARGET_MAX, "targetName": TARGET_MAX, "tag": TAG_MAX, "summary": SUMMARY_MAX}

#: what ``truncate: true`` cuts a custom attribute to: DM Hub publishes no attribute length, so
#: the limit of ``summary`` (where the WeChat message text used to go)
ATTRIBUTE_TRUNCATE_MAX = SUMMARY_MAX

Status = Literal["mapped", "skipped", "unmapped"]


class MappingError(ValueError):
    """A message could not be mapped; the message names the rule and the field."""


#: how deep a custom attribute's value may nest and still be written without pydantic
_PLAIN_DEPTH = 32


def json_plain(value: Any, depth: int = 0) -> bool:
    """Whether ``value`` is made of JSON's own types only (text keys, finite numbers), so that
    ``json.dumps`` writes it as pydantic's JSON mode would."""
    kind = type(value)
    if value is None or kind is str or kind is bool or kind is int:
        return True
    if kind is float:
        return math.isfinite(value)
    if depth >= _PLAIN_DEPTH:
        return False
    if kind is list:
        return all(json_plain(item, depth + 1) for item in value)
    if kind is dict:
        return all(type(key) is str and json_plain(item, depth + 1) for key, item in value.items())
    return False


@record(frozen=True, eq=False)
class MappedEvent:
    """One event a rule produced, checked against DM Hub's rules, with the identity the sender
    resolves to a customer.

    ``checked`` and ``checked_identity`` are the event and identity as plain objects (what the
    ingest queues); :attr:`event` and :attr:`identity` are the same as pydantic models, made on
    first use."""

    rule: str
    checked: WireEvent
    checked_identity: WireIdentity | None
    #: kinds of the custom attributes that are not text (quantity, amount)
    attribute_kinds: dict[str, str] = field(default_factory=dict)
    #: whether every value is JSON's own, so the queue message is written without pydantic
    plain: bool = True
    #: the rule's values as produced, and the budget they were checked against (for :attr:`event`)
    body: dict[str, Any] = field(default_factory=dict)
    budget: AttributeBudget | None = None
    _model: Any = None
    _identity_model: Any = None

    @property
    def event(self) -> CustomerEvent:
        """The event as pydantic's :class:`~dmhub_adapter.model.customer_event.CustomerEvent`."""
        if self._model is None:
            from dmhub_adapter.model.customer_event import CustomerEvent

            model = CustomerEvent.model_validate(self.body, context={ATTRIBUTE_BUDGET_CONTEXT: self.budget})
            object.__setattr__(self, "_model", model)
        event: CustomerEvent = self._model
        return event

    @property
    def identity(self) -> Identity | None:
        """The identity as pydantic's :class:`~dmhub_adapter.model.customer_event.Identity`."""
        if self.checked_identity is None:
            return None
        if self._identity_model is None:
            from dmhub_adapter.model.customer_event import Identity

            wire = self.checked_identity
            model = Identity(type=wire.type, value=wire.value, name=wire.name, create=wire.create)
            object.__setattr__(self, "_identity_model", model)
        identity: Identity = self._identity_model
        return identity


@record
class MessageResult:
    """What became of one message: ``mapped`` (with events), ``skipped`` or ``unmapped``
    (with the reason and, where one matched, the rule)."""

    status: Status
    events: list[MappedEvent] = field(default_factory=list)
    reason: str | None = None
    rule: str | None = None


Getter = Callable[[dict[str, Any]], Any]


def _compile_value(spec: ValuePlan | ValueSpec, limit: int | None = None, *, field_of: tuple[str, str] | None = None
                   ) -> Getter:
    """A ValueSpec as one closure (built once per mapping; pydantic private attributes are
    slow to read on every message). With ``field_of=(rule, field)`` a conversion or JMESPath
    error becomes a :class:`MappingError` naming them, inside the same closure: the getters run
    for every field of every event."""
    chain = list(spec._chain)
    default = spec.default
    truncate_to = limit if spec.truncate else None
    raw: Getter
    compiled = spec._compiled
    if compiled is not None:  # set exactly when the value is a path
        raw = compiled.evaluate
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


@record(frozen=True)
class _CompiledIdentity:
    type: str
    type_from: Getter | None
    create: bool
    value: Getter
    name: Getter | None


@record(frozen=True)
class _CompiledRule:
    name: str
    skip: str | None
    continue_: bool
    when: Getter | None
    foreach: Getter | None
    event: Getter | None = None
    external_id: Getter | None = None
    date: Getter | None = None
    fields: tuple[tuple[str, Getter], ...] = ()
    identity: _CompiledIdentity | None = None
    attribute_kinds: tuple[tuple[str, str], ...] = ()
    budget: AttributeBudget | None = None


def _compile_rule(rule: RulePlan, mapping: MappingPlan) -> _CompiledRule:
    when = rule._when.evaluate if rule._when is not None else None
    foreach = rule._foreach.evaluate if rule._foreach is not None else None
    if rule.skip is not None:
        return _CompiledRule(rule.name, rule.skip, rule.continue_, when, foreach)
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
        identity = _CompiledIdentity(
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
    return _CompiledRule(
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
        budget=mapping._budget,
    )


_compiled: dict[int, tuple[MappingPlan, list[_CompiledRule]]] = {}


def _rules(mapping: MappingPlan) -> list[_CompiledRule]:
    cached = _compiled.get(id(mapping))
    if cached is None or cached[0] is not mapping:
        cached = (mapping, [_compile_rule(rule, mapping) for rule in mapping.rules])
        _compiled[id(mapping)] = cached
    return cached[1]


def decode_message(mapping: MappingPlan, message: dict[str, Any]) -> dict[str, Any]:
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


def split_messages(mapping: MappingPlan, payload: Any) -> list[dict[str, Any]]:
    """One payload → its messages, per the file's ``messages`` expression (default: itself)."""
    items = search(mapping._messages, payload) if mapping._messages is not None else payload
    if isinstance(items, dict):
        items = [items]
    if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
        raise MappingError("the payload does not contain a message object or a list of them")
    return items


#: the CustomerEvent's declared fields a rule can set, by the one type the plain check takes
_PLAIN_FIELD_TYPES = {"score": int}


def _plain_fields(body: dict[str, Any]) -> bool:
    """Whether the declared fields hold exactly the types :func:`read_event` is exact for
    (text, and an integer score); ``date`` goes through the same function either way."""
    for name, value in body.items():
        if name == "date" or name not in _DECLARED:
            continue
        if type(value) is not _PLAIN_FIELD_TYPES.get(name, str):
            return False
    return True


def _build_event(plan: _CompiledRule, context: dict[str, Any]) -> MappedEvent:
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
        identity = {
            "type": plan.identity.type if chosen in (None, "") else _text(chosen, rule, "identity.typeFrom"),
            "value": _text(value, rule, "identity.value"),
            "name": None if label in (None, "") else _text(label, rule, "identity.name"),
            "create": plan.identity.create,
        }
    assert plan.budget is not None  # set on every rule that maps
    return checked_event(rule, body, identity, plan.attribute_kinds, plan.budget)


def checked_event(rule: str, body: dict[str, Any], identity: dict[str, Any] | None,
                  attribute_kinds: Iterable[tuple[str, str]], budget: AttributeBudget) -> MappedEvent:
    """What rule ``rule`` made of a message (its event ``body``, its ``identity``'s type, value,
    name and create flag) checked against DM Hub's rules and the custom attribute ``budget``;
    raises :class:`MappingError` with the pydantic model's words when they are broken."""
    checked_identity = None if identity is None else _identity(rule, identity)
    checked, model = _event(rule, body, budget)
    kinds = {name: kind for name, kind in attribute_kinds if name in body}
    for name, kind in kinds.items():
        try:
            check_attribute_value(name, kind, body[name])
        except ValueError as exc:
            raise MappingError(f"rule {rule!r}: event invalid for DM Hub: {exc}") from exc
    return MappedEvent(
        rule=rule, checked=checked, checked_identity=checked_identity, attribute_kinds=kinds,
        plain=model is None and json_plain(checked.extras), body=body, budget=budget, _model=model,
    )


def _identity(rule: str, data: dict[str, Any]) -> WireIdentity:
    """The rule's identity checked; its texts and flag are of the types the plain check is
    exact for, so only a refusal asks pydantic, for its words."""
    try:
        return read_identity(data)
    except ValueError:
        pass
    from pydantic import ValidationError

    from dmhub_adapter.model.customer_event import Identity

    try:
        model = Identity(**data)
    except ValidationError as exc:
        raise MappingError(f"rule {rule!r}, identity: {_first_error(exc)}") from exc
    return WireIdentity(type=model.type, value=model.value, name=model.name, create=model.create)


def _event(rule: str, body: dict[str, Any], budget: AttributeBudget) -> tuple[WireEvent, CustomerEvent | None]:
    """The rule's event checked: plainly when its fields are of the types the plain check is
    exact for and it passes; otherwise pydantic's model decides (and is returned too)."""
    if _plain_fields(body):
        try:
            return read_event(body, budget), None
        except ValueError:
            pass
    from pydantic import ValidationError

    from dmhub_adapter.model.customer_event import CustomerEvent

    try:
        model = CustomerEvent.model_validate(body, context={ATTRIBUTE_BUDGET_CONTEXT: budget})
    except ValidationError as exc:
        raise MappingError(f"rule {rule!r}: event invalid for DM Hub: {_first_error(exc)}") from exc
    fields = {name: getattr(model, name) for name in _DECLARED if getattr(model, name) is not None}
    return WireEvent(fields, model.custom_attributes), model


def _first_error(exc: ValidationError) -> str:
    from dmhub_adapter.validation import error_lines

    return "; ".join(error_lines(exc.errors()))


def map_message(mapping: MappingPlan, message: dict[str, Any], meta: dict[str, Any] | None = None) -> MessageResult:
    """Map one decoded, authentic message. Never raises for bad data: returns ``unmapped``."""
    context = {**message, "_meta": meta or {}}
    events: list[MappedEvent] = []
    matched: list[str] = []
    try:
        for rule in _rules(mapping):
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


def map_payload(mapping: MappingPlan, messages: list[dict[str, Any]], meta: dict[str, Any] | None = None
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
