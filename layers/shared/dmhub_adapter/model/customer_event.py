"""The DM Hub CustomerEvent contract.

Every rule below comes from the DM Hub CustomerEvent model (field, type, limit) and is
enforced here, before an event is enqueued, so that nothing DM Hub would reject reaches
the queue:

=================  ==========================================================
field              rule
=================  ==========================================================
customerId         Long (64-bit signed); resolved by the sender from identity
event              required, 1..32 characters; custom types start with ``c_``
targetId           at most 255 characters
targetName         at most 255 characters
tag                at most 255 characters (comma separated labels)
summary            at most 1024 characters
date               UTC ``YYYY-MM-DDTHH:MM:SSZ``; aware datetimes are converted,
                   naive ones and any other format rejected
score              integer
custom attributes  only on ``c_`` event types, at most 5
id, lastUpdated    read-only: parsed from responses, never sent
=================  ==========================================================
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    field_validator,
    model_serializer,
    model_validator,
)

EVENT_MAX = 32
TARGET_MAX = 255
TAG_MAX = 255
SUMMARY_MAX = 1024
CUSTOM_ATTRIBUTES_MAX = 5
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
    summary: str | None = Field(default=None, max_length=SUMMARY_MAX)
    externalId: str | None = Field(default=None, min_length=1, max_length=EXTERNAL_ID_MAX)

    @field_validator("date", mode="before")
    @classmethod
    def _date(cls, value: object) -> str | None:
        return None if value is None else parse_dmhub_date(value)


class CustomerEvent(_EventFields):
    """A CustomerEvent as sent to ``POST /v1/customerevents``.

    Custom attributes are extra keys; they are allowed only on custom (``c_``) event types,
    at most five. ``id`` and ``lastUpdated`` are read-only in DM Hub and refused here.
    """

    model_config = ConfigDict(extra="allow", validate_assignment=True)

    READ_ONLY: ClassVar[frozenset[str]] = frozenset({"id", "lastUpdated"})

    customerId: Long | None = None
    date: str  # type: ignore[assignment]  # required when sending

    @model_validator(mode="before")
    @classmethod
    def _refuse_read_only(cls, data: Any) -> Any:
        if isinstance(data, dict):
            present = sorted(cls.READ_ONLY.intersection(data))
            if present:
                raise ValueError(f"{', '.join(present)} read-only in DM Hub and never sent")
        return data

    @model_validator(mode="after")
    def _custom_attributes(self) -> CustomerEvent:
        extras = self.custom_attributes
        if extras and not self.event.startswith(CUSTOM_EVENT_PREFIX):
            raise ValueError(
                f"custom attributes {sorted(extras)} are only allowed on custom event types "
                f"(starting with {CUSTOM_EVENT_PREFIX!r}), not on {self.event!r}"
            )
        if len(extras) > CUSTOM_ATTRIBUTES_MAX:
            raise ValueError(
                f"a custom event carries at most {CUSTOM_ATTRIBUTES_MAX} custom attributes, "
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


class StoredCustomerEvent(_EventFields):
    """A CustomerEvent as DM Hub returns it: read-only fields present, nulls for unset ones,
    custom attributes echoed as extra keys."""

    model_config = ConfigDict(extra="allow")

    id: Long
    customerId: Long | None = None
    lastUpdated: str | None = None

    @field_validator("lastUpdated", mode="before")
    @classmethod
    def _last_updated(cls, value: object) -> str | None:
        return None if value is None else parse_dmhub_date(value)

    @property
    def custom_attributes(self) -> dict[str, Any]:
        """The stored event's `c_` attributes (pydantic's extra fields), as a new dict."""
        return dict(self.__pydantic_extra__ or {})


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
    event: CustomerEvent

    @model_validator(mode="after")
    def _resolvable(self) -> QueuedEvent:
        if self.identity is None and self.event.customerId is None:
            raise ValueError("an event needs an identity or a customerId")
        if not self.event.externalId:
            raise ValueError("an event needs an externalId (the source's natural key)")
        return self

    @model_serializer(mode="wrap")
    def _serialise(self, handler: Any) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        data["event"] = self.event.to_request()
        if self.identity is None:
            data.pop("identity", None)
        return data
