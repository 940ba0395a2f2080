"""Apply a mapping file to authentic messages: 0..n CustomerEvents per message.

Three outcomes per message, kept apart on purpose:

- ``mapped``   one or more rules produced events, all valid against the DM Hub model;
- ``skipped``  a ``skip`` rule matched: ignored on purpose (e.g. template-send receipts);
- ``unmapped`` no rule matched, a value could not be converted, or an event failed
  validation. Unmapped messages are authentic and are kept for replay, never dropped.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Literal

from jmespath.exceptions import JMESPathError
from pydantic import ValidationError

from dmhub_adapter.mapping import converters
from dmhub_adapter.mapping.config import MappingFile, RuleSpec, ValueSpec
from dmhub_adapter.mapping.functions import search
from dmhub_adapter.model.customer_event import (
    SUMMARY_MAX,
    TAG_MAX,
    TARGET_MAX,
    CustomerEvent,
    Identity,
)

#: limits a ``truncate: true`` value is cut to, by field
_LIMITS = {"targetId": TARGET_MAX, "targetName": TARGET_MAX, "tag": TAG_MAX, "summary": SUMMARY_MAX}

Status = Literal["mapped", "skipped", "unmapped"]


class MappingError(ValueError):
    """A message could not be mapped; the message names the rule and the field."""


@dataclass(frozen=True)
class MappedEvent:
    rule: str
    event: CustomerEvent
    identity: Identity | None


@dataclass
class MessageResult:
    status: Status
    events: list[MappedEvent] = field(default_factory=list)
    reason: str | None = None
    rule: str | None = None


def _evaluate(spec: ValueSpec, context: dict[str, Any], *, limit: int | None = None) -> Any:
    if spec.path is not None:
        value = search(spec._compiled, context)
    elif spec.template is not None:
        text = spec.template
        for placeholder, compiled in spec._template_parts:
            part = search(compiled, context)
            text = text.replace(placeholder, "" if part is None else converters.to_string(part, None), 1)
        value = text
    else:
        value = copy.copy(spec.value)
    if value is None or value == "":
        value = spec.default if spec.default is not None else value
    value = converters.apply(spec._chain, value)
    if spec.truncate and limit is not None and isinstance(value, str) and len(value) > limit:
        value = value[:limit]
    return value


def _value(spec: ValueSpec, context: dict[str, Any], rule: str, name: str, limit: int | None = None) -> Any:
    try:
        return _evaluate(spec, context, limit=limit)
    except converters.ConversionError as exc:
        raise MappingError(f"rule {rule!r}, field {name!r}: {exc}") from exc
    except JMESPathError as exc:  # e.g. lower() given a number by an odd payload
        raise MappingError(f"rule {rule!r}, field {name!r}: {exc}") from exc


def _text(value: Any, rule: str, name: str) -> str:
    try:
        return converters.to_string(value, None)
    except converters.ConversionError as exc:
        raise MappingError(f"rule {rule!r}, field {name!r}: {exc}") from exc


def _holds(compiled: Any, context: dict[str, Any]) -> bool:
    """A ``when`` condition; one that cannot be evaluated on this message's shape does not hold."""
    try:
        return bool(search(compiled, context))
    except JMESPathError:
        return False


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


def _build_event(rule: RuleSpec, mapping: MappingFile, context: dict[str, Any]) -> MappedEvent:
    assert rule.event is not None and rule.external_id is not None and rule.date is not None
    body: dict[str, Any] = {}
    for name, spec in {**mapping.defaults.fields, **rule.fields}.items():
        value = _value(spec, context, rule.name, name, _LIMITS.get(name))
        if value is not None and value != "":
            body[name] = value
    for name, spec in rule.attributes.items():
        value = _value(spec, context, rule.name, f"attributes.{name}")
        if value is not None and value != "":
            body[name] = value
    event_type = _value(rule.event, context, rule.name, "event")
    external_id = _value(rule.external_id, context, rule.name, "externalId")
    date = _value(rule.date, context, rule.name, "date")
    for name, value in (("event", event_type), ("externalId", external_id), ("date", date)):
        if value is None or value == "":
            raise MappingError(f"rule {rule.name!r}, field {name!r}: no value in this message")
    body["event"] = event_type
    body["externalId"] = _text(external_id, rule.name, "externalId")
    body["date"] = date

    identity_spec = rule.identity or mapping.defaults.identity
    identity = None
    if identity_spec is not None:
        value = _value(identity_spec.value, context, rule.name, "identity.value")
        if value is None or value == "":
            raise MappingError(f"rule {rule.name!r}, field 'identity.value': no value in this message")
        label: Any = _value(identity_spec.name, context, rule.name, "identity.name") if identity_spec.name else None
        try:
            identity = Identity(
                type=identity_spec.type,
                value=_text(value, rule.name, "identity.value"),
                name=None if label in (None, "") else _text(label, rule.name, "identity.name"),
                create=identity_spec.create,
            )
        except ValidationError as exc:
            raise MappingError(f"rule {rule.name!r}, identity: {_first_error(exc)}") from exc
    try:
        event = CustomerEvent.model_validate(body)
    except ValidationError as exc:
        raise MappingError(f"rule {rule.name!r}: event invalid for DM Hub: {_first_error(exc)}") from exc
    return MappedEvent(rule=rule.name, event=event, identity=identity)


def _first_error(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors():
        loc = ".".join(str(p) for p in error["loc"])
        msg = error["msg"].removeprefix("Value error, ")
        parts.append(f"{loc}: {msg}" if loc else msg)
    return "; ".join(parts)


def map_message(mapping: MappingFile, message: dict[str, Any], meta: dict[str, Any] | None = None) -> MessageResult:
    """Map one decoded, authentic message. Never raises for bad data: returns ``unmapped``."""
    context = {**message, "_meta": meta or {}}
    events: list[MappedEvent] = []
    matched: list[str] = []
    try:
        for rule in mapping.rules:
            if rule._when is not None and not _holds(rule._when, context):
                continue
            matched.append(rule.name)
            if rule.skip is not None:
                if events:
                    break
                return MessageResult(status="skipped", reason=rule.skip, rule=rule.name)
            if rule._foreach is not None:
                try:
                    items = search(rule._foreach, context)
                except JMESPathError as exc:
                    raise MappingError(f"rule {rule.name!r}, field 'foreach': {exc}") from exc
                if not isinstance(items, list):
                    raise MappingError(f"rule {rule.name!r}, field 'foreach': not a list in this message")
                for item in items:
                    events.append(_build_event(rule, mapping, {**context, "_item": item}))
            else:
                events.append(_build_event(rule, mapping, context))
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
