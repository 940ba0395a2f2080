"""The queued event without pydantic: the contract of
:class:`~dmhub_adapter.model.customer_event.QueuedEvent`, checked by plain functions.

pydantic's import and first model cost a cold start about 110 ms, more than the whole of what
either function may add to ``import boto3`` and its clients. So the sender parses the queue's
JSON here, into frozen plain objects, and the ingest checks the events its mappings make with
:func:`read_event` and :func:`read_identity` and writes them with
:meth:`WireQueuedEvent.to_message`, by the same rules:

=====================  =====================================================================
part                   rule (as pydantic's ``QueuedEvent`` validates the queue's JSON)
=====================  =====================================================================
envelope               only the declared keys; ``source``, ``account``, ``claim_key`` text;
                       ``version`` an integer (default 1); ``trace_id``, ``rule`` text or null
identity               null, or ``type`` (1..32, the identity-type shape), ``value`` (1..128),
                       ``name`` (null or ≤ 255), ``create`` (true or false, default true)
event                  the CustomerEvent table of :mod:`dmhub_adapter.model.customer_event`;
                       every other key is a custom attribute
attribute_kinds        text → ``text`` / ``quantity`` / ``amount`` (default none)
across fields          :func:`~dmhub_adapter.model.rules.check_custom_attributes` and
                       :func:`~dmhub_adapter.model.rules.check_deliverable`, the functions the
                       pydantic models call
=====================  =====================================================================

A lone surrogate (a JSON ``\\ud800`` escape) is refused in text with length limits and passed
in text without, as pydantic does. A test feeds both readers the same generated
messages and requires the same verdict and the same DM Hub body. The reader is exact for
JSON's own types; where a mapping's value is of another type (bytes, a datetime) the ingest
asks the pydantic model instead (:mod:`dmhub_adapter.mapping.engine`).

Example::

    message = read_queued_event(json.loads(body), budget)
    client.create_event_id(message.event.with_customer_id(42))
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from dmhub_adapter.model.rules import (
    ATTRIBUTE_KINDS,
    EVENT_MAX,
    EXTERNAL_ID_MAX,
    IDENTITY_TYPE_MAX,
    IDENTITY_VALUE_MAX,
    LONG_MAX,
    LONG_MIN,
    NOT_ON_CUSTOM_EVENTS,
    SEED_ATTRIBUTE_BUDGET,
    SUMMARY_MAX,
    TAG_MAX,
    TARGET_MAX,
    AttributeBudget,
    check_custom_attributes,
    check_deliverable,
    check_identity_type,
    parse_dmhub_date,
)
from dmhub_adapter.records import field, record


class SendableEvent(Protocol):
    """What a DM Hub request is built from: pydantic's ``CustomerEvent`` and :class:`WireEvent`."""

    @property
    def event(self) -> str:
        """The event type."""

    @property
    def customerId(self) -> int | None:
        """DM Hub's customer, when the event names one."""

    @property
    def externalId(self) -> str | None:
        """The source's natural key of the event."""

    @property
    def custom_attributes(self) -> dict[str, Any]:
        """The event's custom attributes, as a new dict."""

    def to_request(self) -> dict[str, Any]:
        """The JSON body for ``POST /v1/customerevents``, as a new dict."""


class IdentityRef(Protocol):
    """What the identity resolver needs of an identity: pydantic's ``Identity`` and :class:`WireIdentity`."""

    @property
    def type(self) -> str:
        """The identity type (``wechat``)."""

    @property
    def value(self) -> str:
        """The identity value (an openid)."""

    @property
    def name(self) -> str | None:
        """A display name for a customer created from it."""

    @property
    def create(self) -> bool:
        """Whether the customer may be created when DM Hub does not know the identity."""


#: the CustomerEvent's text fields, in the model's order: (shortest, longest or None)
_EVENT_TEXT: dict[str, tuple[int, int | None]] = {
    "event": (1, EVENT_MAX),
    "targetId": (0, TARGET_MAX),
    "targetName": (0, TARGET_MAX),
    "source": (0, None),
    "contentName": (0, None),
    "tag": (0, TAG_MAX),
    "campaign": (0, None),
    "campaignName": (0, None),
    "referrer": (0, None),
    "summary": (0, SUMMARY_MAX),
    "externalId": (1, EXTERNAL_ID_MAX),
}
#: every declared field of the CustomerEvent, in the order its JSON body lists them
DECLARED_FIELDS = _EVENT_FIELDS = (
    "event", "targetId", "targetName", "date", "source", "contentName", "score", "tag", "campaign",
    "campaignName", "referrer", "summary", "externalId", "customerId",
)
_ENVELOPE_KEYS = frozenset(
    {"version", "source", "account", "claim_key", "trace_id", "rule", "identity", "event", "attribute_kinds"}
)
_IDENTITY_KEYS = frozenset({"type", "value", "name", "create"})


@record(frozen=True)
class WireIdentity:
    """A queued event's identity, checked (see the module's table)."""

    type: str
    value: str
    name: str | None = None
    create: bool = True


@record(frozen=True)
class WireEvent:
    """A queued CustomerEvent, checked: its declared fields that are set and its custom attributes."""

    #: declared fields that are set, in the model's order (``event``, ``date`` always)
    fields: dict[str, Any]
    #: custom attributes, including those set to null (they count toward the budget)
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def event(self) -> str:
        """The event type."""
        value: str = self.fields["event"]
        return value

    @property
    def customerId(self) -> int | None:
        """DM Hub's customer, when the event names one."""
        value: int | None = self.fields.get("customerId")
        return value

    @property
    def externalId(self) -> str | None:
        """The source's natural key of the event."""
        value: str | None = self.fields.get("externalId")
        return value

    @property
    def custom_attributes(self) -> dict[str, Any]:
        """The event's custom attributes, as a new dict."""
        return dict(self.extras)

    def to_request(self) -> dict[str, Any]:
        """The JSON body for DM Hub: set fields in the model's order, then the custom attributes
        that are not null (what pydantic's ``to_request`` gives for the same event)."""
        body = dict(self.fields)
        body.update((name, value) for name, value in self.extras.items() if value is not None)
        return body

    def with_external_id(self, external_id: str) -> WireEvent:
        """This event under another ``externalId`` (the namespaced one DM Hub sees)."""
        return WireEvent({**self.fields, "externalId": external_id}, self.extras)

    def with_customer_id(self, customer_id: int) -> WireEvent:
        """This event for DM Hub's customer ``customer_id`` (resolved from the identity)."""
        fields = {name: value for name, value in self.fields.items() if name != "customerId"}
        fields["customerId"] = customer_id
        return WireEvent(fields, self.extras)


@record(frozen=True)
class WireQueuedEvent:
    """One queued event as the sender reads it (the fields of ``QueuedEvent``)."""

    source: str
    account: str
    claim_key: str
    event: WireEvent
    identity: WireIdentity | None = None
    trace_id: str | None = None
    rule: str | None = None
    version: int = 1
    attribute_kinds: dict[str, str] = field(default_factory=dict)

    def to_message(self) -> dict[str, Any]:
        """The queue message's JSON object, as pydantic's ``QueuedEvent.model_dump(mode="json")``
        gives it: no identity key without one, no ``attribute_kinds`` when all are text."""
        message: dict[str, Any] = {
            "version": self.version,
            "source": self.source,
            "account": self.account,
            "claim_key": self.claim_key,
            "trace_id": self.trace_id,
            "rule": self.rule,
        }
        if self.identity is not None:
            identity = self.identity
            message["identity"] = {"type": identity.type, "value": identity.value, "name": identity.name,
                                   "create": identity.create}
        message["event"] = self.event.to_request()
        if self.attribute_kinds:
            message["attribute_kinds"] = dict(self.attribute_kinds)
        return message


def read_queued_event(data: Mapping[str, Any], budget: AttributeBudget = SEED_ATTRIBUTE_BUDGET) -> WireQueuedEvent:
    """The queued event in ``data`` (the message's JSON object) checked against the contract
    and the deployment's custom attribute ``budget``; raises ``ValueError`` with the reason."""
    _only(data, _ENVELOPE_KEYS, "")
    version = data.get("version", 1)
    if isinstance(version, bool) or not isinstance(version, int):
        raise ValueError(f"version: must be an integer, got {_kind(version)}")
    identity = None if data.get("identity") is None else read_identity(data["identity"])
    if "event" not in data:
        raise ValueError("event: required")
    event = read_event(data["event"], budget)
    kinds = read_attribute_kinds(data.get("attribute_kinds", {}))
    queued = WireQueuedEvent(
        source=_text("source", _required(data, "source")),
        account=_text("account", _required(data, "account")),
        claim_key=_text("claim_key", _required(data, "claim_key")),
        event=event,
        identity=identity,
        trace_id=_optional_text("trace_id", data.get("trace_id")),
        rule=_optional_text("rule", data.get("rule")),
        version=version,
        attribute_kinds=kinds,
    )
    check_deliverable(
        has_identity=identity is not None,
        customer_id=event.customerId,
        external_id=event.externalId,
        attributes=event.extras,
        attribute_kinds=kinds,
        budget=budget,
    )
    return queued


def read_identity(value: object) -> WireIdentity:
    """An identity (``type``, ``value``, ``name``, ``create``) checked as pydantic's
    ``Identity`` checks it; raises ``ValueError`` naming the field."""
    if not isinstance(value, Mapping):
        raise ValueError(f"identity: must be an object, got {_kind(value)}")
    _only(value, _IDENTITY_KEYS, "identity.")
    kind = _text("identity.type", _required(value, "type", "identity."), 1, IDENTITY_TYPE_MAX)
    try:
        check_identity_type(kind)
    except ValueError as exc:
        raise ValueError(f"identity.type: {exc}") from None
    create = value.get("create", True)
    if not isinstance(create, bool):
        raise ValueError(f"identity.create: must be true or false, got {_kind(create)}")
    return WireIdentity(
        type=kind,
        value=_text("identity.value", _required(value, "value", "identity."), 1, IDENTITY_VALUE_MAX),
        name=_optional_text("identity.name", value.get("name"), 0, TARGET_MAX),
        create=create,
    )


def read_event(value: object, budget: AttributeBudget = SEED_ATTRIBUTE_BUDGET) -> WireEvent:
    """A CustomerEvent's JSON object checked as pydantic's ``CustomerEvent`` checks it against
    the custom attribute ``budget``; raises ``ValueError`` naming the field."""
    if not isinstance(value, Mapping):
        raise ValueError(f"event: must be an object, got {_kind(value)}")
    fields: dict[str, Any] = {}
    extras: dict[str, Any] = {}
    for name, item in value.items():
        if name not in _EVENT_FIELDS:
            extras[name] = item
    for name in _EVENT_FIELDS:
        if name == "date":
            if "date" not in value:
                raise ValueError("event.date: required")
            try:
                fields["date"] = parse_dmhub_date(value["date"])
            except ValueError as exc:
                raise ValueError(f"event.date: {exc}") from None
            continue
        item = value.get(name)
        if name == "event":
            fields["event"] = _text("event.event", _required(value, "event", "event."), *_EVENT_TEXT["event"])
        elif item is None:
            continue
        elif name == "score":
            if isinstance(item, bool) or not isinstance(item, int):
                raise ValueError(f"event.score: must be an integer, got {_kind(item)}")
            fields[name] = item
        elif name == "customerId":
            fields[name] = _long("event.customerId", item)
        else:
            fields[name] = _text(f"event.{name}", item, *_EVENT_TEXT[name])
    carried = [name for name in NOT_ON_CUSTOM_EVENTS if name in fields]
    try:
        check_custom_attributes(fields["event"], carried, extras, budget)
    except ValueError as exc:
        raise ValueError(f"event: {exc}") from None
    return WireEvent(fields, extras)


def read_attribute_kinds(value: object) -> dict[str, str]:
    """``attribute_kinds`` (attribute name → text, quantity or amount) checked as pydantic's
    ``QueuedEvent`` checks it; raises ``ValueError``."""
    if not isinstance(value, Mapping):
        raise ValueError(f"attribute_kinds: must be an object, got {_kind(value)}")
    kinds: dict[str, str] = {}
    for name, kind in value.items():
        _text("attribute_kinds key", name)
        if not isinstance(kind, str) or kind not in ATTRIBUTE_KINDS:
            raise ValueError(f"attribute_kinds.{name}: must be one of {', '.join(ATTRIBUTE_KINDS)}, got {kind!r}")
        kinds[name] = kind
    return kinds


def _long(where: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{where}: must be an integer, got {_kind(value)}")
    if not LONG_MIN <= value <= LONG_MAX:
        raise ValueError(f"{where}: must fit a 64-bit signed integer, got {value}")
    return value


def _text(where: str, value: object, shortest: int = 0, longest: int | None = None) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{where}: must be text, got {_kind(value)}")
    # pydantic checks a length on the text's UTF-8 form, so it refuses a lone surrogate (a JSON
    # "\\ud800" escape) exactly where a field has limits; unlimited text it passes as it is
    if (shortest or longest is not None) and not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError(f"{where}: is not valid Unicode text (a lone surrogate)") from None
    if len(value) < shortest:
        raise ValueError(f"{where}: at least {shortest} character(s)")
    if longest is not None and len(value) > longest:
        raise ValueError(f"{where}: at most {longest} characters, got {len(value)}")
    return value


def _optional_text(where: str, value: object, shortest: int = 0, longest: int | None = None) -> str | None:
    return None if value is None else _text(where, value, shortest, longest)


def _required(data: Mapping[str, Any], name: str, where: str = "") -> object:
    if name not in data:
        raise ValueError(f"{where}{name}: required")
    return data[name]


def _only(data: Mapping[str, Any], allowed: frozenset[str], where: str) -> None:
    unknown = sorted(str(name) for name in data if name not in allowed)
    if unknown:
        raise ValueError(f"{where}{unknown[0]}: not a field of a queued event")


def _kind(value: object) -> str:
    return "null" if value is None else type(value).__name__
