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

The rules across fields are :mod:`dmhub_adapter.model.rules`' functions, which
:mod:`dmhub_adapter.model.wire` (the sender's pydantic-free reader of queued events) calls too.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, ClassVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    WrapValidator,
    field_validator,
    model_serializer,
    model_validator,
)

from dmhub_adapter.model.rules import (
    ATTRIBUTE_BUDGET_CONTEXT,
    CURRENT_ATTRIBUTE_KINDS,
    CUSTOM_ATTRIBUTES_MAX,
    CUSTOM_EVENT_PREFIX,
    DATE_FORMAT,
    EVENT_MAX,
    EXTERNAL_ID_MAX,
    IDENTITY_TYPE_MAX,
    IDENTITY_VALUE_MAX,
    LONG_MAX,
    LONG_MIN,
    NOT_ON_CUSTOM_EVENTS,
    READ_ONLY_FIELDS,
    SEED_ATTRIBUTE_BUDGET,
    SUMMARY_MAX,
    TAG_MAX,
    TARGET_MAX,
    AttributeBudget,
    AttributeKind,
    check_attribute_value,
    check_custom_attributes,
    check_deliverable,
    check_identity_type,
    event_id,
    format_dmhub_date,
    parse_dmhub_date,
)

# the rules module's names stay importable from here, where the model always offered them
__all__ = [
    "ATTRIBUTE_BUDGET_CONTEXT",
    "CURRENT_ATTRIBUTE_KINDS",
    "CUSTOM_ATTRIBUTES_MAX",
    "CUSTOM_EVENT_PREFIX",
    "DATE_FORMAT",
    "EVENT_MAX",
    "EXTERNAL_ID_MAX",
    "IDENTITY_TYPE_MAX",
    "IDENTITY_VALUE_MAX",
    "LONG_MAX",
    "LONG_MIN",
    "NOT_ON_CUSTOM_EVENTS",
    "SEED_ATTRIBUTE_BUDGET",
    "SUMMARY_MAX",
    "TAG_MAX",
    "TARGET_MAX",
    "AttributeBudget",
    "AttributeKind",
    "CustomerEvent",
    "Identity",
    "IdentityType",
    "Long",
    "QueuedEvent",
    "StoredCustomerEvent",
    "attribute_budget",
    "check_attribute_value",
    "format_dmhub_date",
    "parse_dmhub_date",
]

Long = Annotated[StrictInt, Field(ge=LONG_MIN, le=LONG_MAX)]


def attribute_budget(info: ValidationInfo | None) -> AttributeBudget:
    """The budget given in the validation context, else the seed's."""
    context = info.context if info is not None else None
    if isinstance(context, Mapping):
        budget = context.get(ATTRIBUTE_BUDGET_CONTEXT)
        if isinstance(budget, AttributeBudget):
            return budget
    return SEED_ATTRIBUTE_BUDGET


#: A DM Hub identity type (``wechat``, ``taobao-openuid``): what the event model and the
#: mapping files both accept, so a mapping never names a type the model would refuse.
IdentityType = Annotated[str, Field(min_length=1, max_length=IDENTITY_TYPE_MAX), AfterValidator(check_identity_type)]


class Identity(BaseModel):
    """A platform identity the sender resolves to a DM Hub ``customerId``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: IdentityType
    value: str = Field(min_length=1, max_length=IDENTITY_VALUE_MAX)
    name: str | None = Field(default=None, max_length=TARGET_MAX)
    #: whether the sender may create the customer when DM Hub does not know the identity
    create: StrictBool = True


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

    READ_ONLY: ClassVar[frozenset[str]] = READ_ONLY_FIELDS

    customerId: Long | None = None
    date: str  # type: ignore[assignment]  # required when sending

    # One after-validator for every rule across fields: each model validator is a Python call
    # with its own validation info on every event the ingest maps.
    @model_validator(mode="after")
    def _custom_attributes(self, info: ValidationInfo) -> CustomerEvent:
        carried = [name for name in NOT_ON_CUSTOM_EVENTS if getattr(self, name) is not None]
        check_custom_attributes(self.event, carried, self.__pydantic_extra__ or {}, attribute_budget(info))
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
        return event_id(value)

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

    version: StrictInt = 1
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
        check_deliverable(
            has_identity=self.identity is not None,
            customer_id=self.event.customerId,
            external_id=self.event.externalId,
            attributes=self.event.custom_attributes,
            attribute_kinds=self.attribute_kinds,
            budget=attribute_budget(info),
        )
        return self

    def to_message(self) -> dict[str, Any]:
        """The queue message's JSON object (what the ingest sends to the EventQueue)."""
        return self.model_dump(mode="json")

    @model_serializer(mode="wrap")
    def _serialise(self, handler: Any) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        data["event"] = self.event.to_request()
        if self.identity is None:
            data.pop("identity", None)
        if not self.attribute_kinds:
            data.pop("attribute_kinds", None)
        return data
