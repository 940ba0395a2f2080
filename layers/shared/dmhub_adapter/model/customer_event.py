"""The DM Hub CustomerEvent contract.

Every rule below comes from the DM Hub CustomerEvent model (field, type, limit) and is
enforced here, before an event is enqueued, so that nothing DM Hub would reject reaches
the queue:

=================  ==========================================================
field              rule
=================  ==========================================================
customerId         Long (64-bit signed); resolved by the sender from identity
event              required, 1..32 characters; custom types start with ``c_``
targetId           at most 255 characters; never on custom (``c_``) events
targetName         at most 255 characters; never on custom events
tag                at most 255 characters (comma separated labels)
summary            at most 1024 characters; never on custom events
referrer           built-in text field
date               UTC ``YYYY-MM-DDTHH:MM:SSZ``; aware datetimes are converted,
                   naive ones and any other format rejected
score              integer
custom attributes  only on ``c_`` event types, within the deployment's
                   :class:`AttributeBudget` (5, or 16 = 10 text, 3 quantity,
                   3 amount)
id, lastUpdated    read-only: parsed from responses, never sent
=================  ==========================================================

DM Hub removed ``targetId``/``targetName``/``summary`` from custom event types in 2018-08;
omitting them is valid on the old and the current DM Hub alike, so the model refuses them on
``c_`` events and mappings carry those values as custom attributes instead.

The attribute budget is a deployment setting (``DMHUB_CUSTOM_ATTRIBUTES``). Validation reads it
from pydantic's validation context (``context={"attribute_budget": budget}``); without one the
seed's budget of 5 applies.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    WrapValidator,
    field_validator,
    model_serializer,
    model_validator,
)

EVENT_MAX = 32
TARGET_MAX = 255
TAG_MAX = 255
SUMMARY_MAX = 1024
CUSTOM_ATTRIBUTES_MAX = 5
#: the current docs' budget: at most 16 custom attributes, of which 10 text, 3 quantity, 3 amount
CURRENT_ATTRIBUTE_KINDS = {"text": 10, "quantity": 3, "amount": 3}
#: built-in fields DM Hub removed from custom (``c_``) event types
NOT_ON_CUSTOM_EVENTS = ("targetId", "targetName", "summary")
ATTRIBUTE_BUDGET_CONTEXT = "attribute_budget"
CUSTOM_EVENT_PREFIX = "c_"
IDENTITY_TYPE_MAX = 32
IDENTITY_VALUE_MAX = 128
EXTERNAL_ID_MAX = 255
LONG_MIN = -(2**63)
LONG_MAX = 2**63 - 1

DATE_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
# [0-9], not \d: \d also matches other scripts' digits, which DM Hub would not read.
_DATE_RE = re.compile(r"^([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})Z$")
_ATTRIBUTE_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")

Long = Annotated[StrictInt, Field(ge=LONG_MIN, le=LONG_MAX)]

#: what a custom attribute holds, as defined in DM Hub's event-type settings
AttributeKind = Literal["text", "quantity", "amount"]
_AMOUNT_TEXT_RE = re.compile(r"^-?[0-9]{1,15}(\.[0-9]{1,4})?$")


@dataclass(frozen=True)
class AttributeBudget:
    """How many custom attributes one custom event may carry: ``total``, and per kind when
    the DM Hub in use counts them (the current docs: 10 text, 3 quantity, 3 amount).

    Example::

        budget = AttributeBudget.of(16)
        budget.problems({"order_id": "text", "amount": "amount"})   # [] (within budget)
    """

    total: int
    per_kind: tuple[tuple[str, int], ...] = ()

    @classmethod
    def of(cls, size: int) -> AttributeBudget:
        """The budget for ``DMHUB_CUSTOM_ATTRIBUTES``: 5 (the seed) or 16 (current docs)."""
        if size == CUSTOM_ATTRIBUTES_MAX:
            return cls(total=size)
        if size == sum(CURRENT_ATTRIBUTE_KINDS.values()):
            return cls(total=size, per_kind=tuple(CURRENT_ATTRIBUTE_KINDS.items()))
        raise ValueError(f"the custom attribute budget is 5 or 16, got {size}")

    def problems(self, kinds: Mapping[str, str]) -> list[str]:
        """Why attributes of these kinds (name → kind) do not fit; empty when they do."""
        found: list[str] = []
        if len(kinds) > self.total:
            found.append(
                f"at most {self.total} custom attributes per event, got {len(kinds)}: {sorted(kinds)}"
            )
        for kind, limit in self.per_kind:
            names = sorted(name for name, used in kinds.items() if used == kind)
            if len(names) > limit:
                found.append(f"at most {limit} {kind} attributes per event, got {len(names)}: {names}")
        return found


SEED_ATTRIBUTE_BUDGET = AttributeBudget.of(CUSTOM_ATTRIBUTES_MAX)


def attribute_budget(info: ValidationInfo | None) -> AttributeBudget:
    """The budget given in the validation context, else the seed's."""
    context = info.context if info is not None else None
    if isinstance(context, Mapping):
        budget = context.get(ATTRIBUTE_BUDGET_CONTEXT)
        if isinstance(budget, AttributeBudget):
            return budget
    return SEED_ATTRIBUTE_BUDGET


def check_attribute_value(name: str, kind: str, value: Any) -> None:
    """Raise ``ValueError`` when ``value`` cannot be an attribute of ``kind``: a quantity is an
    integer, an amount a number or decimal text (``"19.90"``)."""
    if value is None:
        return
    if kind == "quantity" and (isinstance(value, bool) or not isinstance(value, int)):
        raise ValueError(f"custom attribute {name!r} is a quantity and must be an integer, got {value!r}")
    if kind == "amount":
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not number and not (isinstance(value, str) and _AMOUNT_TEXT_RE.match(value)):
            raise ValueError(f"custom attribute {name!r} is an amount and must be a number, got {value!r}")


def _identity_type_shape(value: str) -> str:
    if not re.fullmatch(r"[a-z0-9][a-z0-9_-]*", value):
        raise ValueError("identity type must be lower case letters, digits, '-' or '_'")
    return value


#: A DM Hub identity type (``wechat``, ``taobao-openuid``): what the event model and the
#: mapping files both accept, so a mapping never names a type the model would refuse.
IdentityType = Annotated[str, Field(min_length=1, max_length=IDENTITY_TYPE_MAX), AfterValidator(_identity_type_shape)]


def _civil(match: re.Match[str]) -> datetime:
    """A naive datetime from six captured groups; raises ValueError for impossible dates.
    (strptime does the same checks several times slower, on every event.)"""
    year, month, day, hour, minute, second = (int(part) for part in match.groups())
    return datetime(year, month, day, hour, minute, second)


def format_dmhub_date(value: datetime) -> str:
    """An aware datetime as DM Hub's UTC ``YYYY-MM-DDTHH:MM:SSZ`` (sub-seconds dropped)."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("date must carry a timezone (naive datetimes are ambiguous)")
    return value.astimezone(UTC).strftime(DATE_FORMAT)


def parse_dmhub_date(value: object) -> str:
    """Validate and normalise a ``date`` value; raises ``ValueError`` with the reason."""
    if isinstance(value, datetime):
        return format_dmhub_date(value)
    if not isinstance(value, str):
        raise ValueError(f"date must be a string like 2017-06-07T12:20:20Z, got {type(value).__name__}")
    match = _DATE_RE.match(value)
    if not match:
        raise ValueError(f"date must be UTC in the form YYYY-MM-DDTHH:MM:SSZ, got {value!r}")
    try:
        _civil(match)
    except ValueError as exc:
        raise ValueError(f"date {value!r} is not a real calendar time") from exc
    return value


class Identity(BaseModel):
    """A platform identity the sender resolves to a DM Hub ``customerId``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: IdentityType
    value: str = Field(min_length=1, max_length=IDENTITY_VALUE_MAX)
    name: str | None = Field(default=None, max_length=TARGET_MAX)
    #: whether the sender may create the customer when DM Hub does not know the identity
    create: bool = True


class _EventFields(BaseModel):
    """Fields shared by what we send and what DM Hub returns."""

    # never validated itself: building its validator would only lengthen every cold start
    model_config = ConfigDict(defer_build=True)

    event: str = Field(min_length=1, max_length=EVENT_MAX)
    targetId: str | None = Field(default=None, max_length=TARGET_MAX)
    targetName: str | None = Field(default=None, max_length=TARGET_MAX)
    date: str | None = None
    source: str | None = None
    contentName: str | None = None
    score: StrictInt | None = None
    tag: str | None = Field(default=None, max_length=TAG_MAX)
    campaign: str | None = None
    campaignName: str | None = None
    referrer: str | None = None
    summary: str | None = Field(default=None, max_length=SUMMARY_MAX)
    externalId: str | None = Field(default=None, min_length=1, max_length=EXTERNAL_ID_MAX)

    @field_validator("date", mode="before")
    @classmethod
    def _date(cls, value: object) -> str | None:
        return None if value is None else parse_dmhub_date(value)


class CustomerEvent(_EventFields):
    """A CustomerEvent as sent to ``POST /v1/customerevents``.

    Custom attributes are extra keys; they are allowed only on custom (``c_``) event types,
    within the attribute budget of the validation context (default 5). Custom events never
    carry ``targetId``, ``targetName`` or ``summary``. ``id`` and ``lastUpdated`` are read-only
    in DM Hub and refused here.
    """

    model_config = ConfigDict(extra="allow", validate_assignment=True, defer_build=False)

    READ_ONLY: ClassVar[frozenset[str]] = frozenset({"id", "lastUpdated"})

    customerId: Long | None = None
    date: str  # type: ignore[assignment]  # required when sending

    # One after-validator for every rule across fields: each model validator is a Python call
    # with its own validation info on every event the ingest maps.
    @model_validator(mode="after")
    def _custom_attributes(self, info: ValidationInfo) -> CustomerEvent:
        extras = self.__pydantic_extra__ or {}
        if extras and not self.READ_ONLY.isdisjoint(extras):
            # not declared fields, so they arrive as extra keys
            present = sorted(self.READ_ONLY.intersection(extras))
            raise ValueError(f"{', '.join(present)} read-only in DM Hub and never sent")
        if extras and not self.event.startswith(CUSTOM_EVENT_PREFIX):
            raise ValueError(
                f"custom attributes {sorted(extras)} are only allowed on custom event types "
                f"(starting with {CUSTOM_EVENT_PREFIX!r}), not on {self.event!r}"
            )
        if self.event.startswith(CUSTOM_EVENT_PREFIX):
            carried = [name for name in NOT_ON_CUSTOM_EVENTS if getattr(self, name) is not None]
            if carried:
                raise ValueError(
                    f"custom event types take no {', '.join(carried)} (DM Hub removed them from custom "
                    "events); carry the value as a custom attribute"
                )
        budget = attribute_budget(info)
        if len(extras) > budget.total:
            raise ValueError(
                f"a custom event carries at most {budget.total} custom attributes, "
                f"got {len(extras)}: {sorted(extras)}"
            )
        for name, value in extras.items():
            if not _ATTRIBUTE_NAME_RE.match(name):
                raise ValueError(f"custom attribute name {name!r} is not a valid identifier")
            if value is not None and not isinstance(value, (str, int, float, bool)):
                raise ValueError(f"custom attribute {name!r} must be a scalar, got {type(value).__name__}")
        return self

    @property
    def custom_attributes(self) -> dict[str, Any]:
        """The event's `c_` attributes (pydantic's extra fields), as a new dict."""
        return dict(self.__pydantic_extra__ or {})

    @property
    def is_custom(self) -> bool:
        """Whether the event type is a custom (`c_`) type, which follows the custom-event rules."""
        return self.event.startswith(CUSTOM_EVENT_PREFIX)

    def to_request(self) -> dict[str, Any]:
        """The JSON body for DM Hub: unset fields omitted, read-only fields never present."""
        body = self.model_dump(exclude_none=True)
        for name in self.READ_ONLY:
            body.pop(name, None)
        return body


class StoredCustomerEvent(BaseModel):
    """A CustomerEvent as DM Hub returns it, read leniently: only ``id`` (a number or numeric
    text) is needed; every echoed field is optional and kept as DM Hub sent it (``customerId``
    comes as text from some APIs), custom attributes as extra keys. A created event is never
    counted as failed because of its echo."""

    # built on first use: only the sender reads DM Hub's answers, the ingest never does
    model_config = ConfigDict(extra="allow", defer_build=True)

    id: int | str
    customerId: Any = None
    event: Any = None
    targetId: Any = None
    targetName: Any = None
    date: Any = None
    source: Any = None
    contentName: Any = None
    score: Any = None
    tag: Any = None
    campaign: Any = None
    campaignName: Any = None
    referrer: Any = None
    summary: Any = None
    externalId: Any = None
    lastUpdated: Any = None

    @field_validator("id", mode="before")
    @classmethod
    def _id(cls, value: object) -> int | str:
        if isinstance(value, bool) or value is None:
            raise ValueError("the answer carries no event id")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str) and value.strip():
            text = value.strip()
            return int(text) if re.fullmatch(r"-?[0-9]{1,19}", text) else text
        raise ValueError(f"the answer's event id is not a number or text: {value!r}")

    @property
    def custom_attributes(self) -> dict[str, Any]:
        """The echoed keys that are not built-in fields (the custom attributes), as a new dict."""
        return dict(self.__pydantic_extra__ or {})


def _validated_event(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    """A :class:`CustomerEvent` instance is taken as it is: it was validated when it was built
    and on every assignment since, and its after-validator would otherwise run a second time on
    every event the ingest queues. Anything else (the queue's JSON) is validated in full."""
    if type(value) is CustomerEvent:
        return value
    return handler(value)


class QueuedEvent(BaseModel):
    """What travels on the EventQueue: one validated event, its identity and provenance."""

    model_config = ConfigDict(extra="forbid")

    version: int = 1
    source: str
    account: str
    claim_key: str
    trace_id: str | None = None
    rule: str | None = None
    identity: Identity | None = None
    event: Annotated[CustomerEvent, WrapValidator(_validated_event)]
    #: kinds of the event's custom attributes that are not text (DM Hub's quantity/amount)
    attribute_kinds: dict[str, AttributeKind] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _resolvable(self, info: ValidationInfo) -> QueuedEvent:
        if self.identity is None and self.event.customerId is None:
            raise ValueError("an event needs an identity or a customerId")
        if not self.event.externalId:
            raise ValueError("an event needs an externalId (the source's natural key)")
        attributes = self.event.custom_attributes
        unknown = sorted(set(self.attribute_kinds) - set(attributes))
        if unknown:
            raise ValueError(f"attribute_kinds names attributes the event does not carry: {unknown}")
        kinds = {name: self.attribute_kinds.get(name, "text") for name in attributes}
        for name, kind in kinds.items():
            check_attribute_value(name, kind, attributes[name])
        problems = attribute_budget(info).problems(kinds)
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @model_serializer(mode="wrap")
    def _serialise(self, handler: Any) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        data["event"] = self.event.to_request()
        if self.identity is None:
            data.pop("identity", None)
        if not self.attribute_kinds:
            data.pop("attribute_kinds", None)
        return data
