"""DM Hub's request rules as the emulator enforces them: pure functions, no state, no I/O.

The limits are written out here from the DM Hub CustomerEvent contract on purpose instead of
being imported from ``dmhub_adapter.model``: the emulator is the independent referee the
adapter's own validation is tested against, so a mistake in one must not hide in the other.

Two rule sets (``rules``): **current** (default; DM Hub's docs since 2018-08/11: custom event
types take no targetId/targetName/summary, ``referrer`` is built in, partitions are monthly
``YYYYMM`` from 2019 with the current time's partition by default) and **2018** (the seed of
2018-05: custom events take every field, partitions 2018/2017/2016 with 2018 by default).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

EVENT_MAX = 32
TARGET_MAX = 255
TAG_MAX = 255
SUMMARY_MAX = 1024
CUSTOM_ATTRIBUTES_MAX = 5
CUSTOM_PREFIX = "c_"
IDENTITY_TYPE_MAX = 32
IDENTITY_VALUE_MAX = 128
LONG_MIN, LONG_MAX = -(2**63), 2**63 - 1
INT_MIN, INT_MAX = -(2**31), 2**31 - 1
QUERY_MAX_DEFAULT = 20
QUERY_MAX_LIMIT = 1000

DEFAULT_PARTITION = "2018"
PARTITIONS = frozenset({"2018", "2017", "2016"})
RULES = ("current", "2018")
#: built-in fields the current docs removed from custom (c_) event types
NOT_ON_CUSTOM = ("targetId", "targetName", "summary")
_MONTH_RE = re.compile(r"^(20[1-9][0-9])(0[1-9]|1[0-2])$")

DATE_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
_DATE_RE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$")
_LONG_TEXT_RE = re.compile(r"^-?[0-9]{1,19}$")

READ_ONLY_FIELDS = ("id", "lastUpdated")
#: the built-in fields, in the order DM Hub returns them (``summary`` only when set)
STRING_FIELDS = (
    "event",
    "targetId",
    "targetName",
    "date",
    "source",
    "tag",
    "campaign",
    "campaignName",
    "contentName",
    "summary",
    "referrer",
    "externalId",
)
BUILT_IN_FIELDS = frozenset({*READ_ONLY_FIELDS, *STRING_FIELDS, "customerId", "score"})
_MAX_LENGTHS = {
    "event": EVENT_MAX,
    "targetId": TARGET_MAX,
    "targetName": TARGET_MAX,
    "tag": TAG_MAX,
    "summary": SUMMARY_MAX,
}
#: fields a query may sort on (``sidx``)
SORTABLE_FIELDS = frozenset(BUILT_IN_FIELDS)

#: registered event types: type -> allowed custom attribute names (None: any, up to five)
EventTypes = Mapping[str, frozenset[str] | None]


@dataclass(frozen=True)
class FieldError:
    field_name: str
    message: str

    def to_json(self) -> dict[str, str]:
        return {"fieldName": self.field_name, "message": self.message}


class ValidationFailed(Exception):
    """Answered as HTTP 200 with DM Hub's ``{"error": {"code": "400001", ...}}`` body."""

    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__("; ".join(f"{e.field_name}: {e.message}" for e in errors))
        self.errors = errors

    def body(self) -> dict[str, Any]:
        return validation_error_body(self.errors)


class PlainBadRequest(Exception):
    """Answered as HTTP 400 with a plain string body, the way DM Hub rejects unusable bodies."""


def validation_error_body(errors: list[FieldError]) -> dict[str, Any]:
    return {
        "error": {
            "code": "400001",
            "message": "field validation exception",
            "fieldErrors": [e.to_json() for e in errors],
        }
    }


def format_date(epoch: float) -> str:
    return datetime.fromtimestamp(int(epoch), UTC).strftime(DATE_FORMAT)


def parse_date(value: str) -> datetime | None:
    """A DM Hub UTC date, or None when the text is not one."""
    if not _DATE_RE.match(value):
        return None
    try:
        return datetime.strptime(value, DATE_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        return None


def partition_of(date: str, rules: str = "current") -> str:
    """The history partition an event lives in, by its ``date``: current rules ``YYYYMM`` from
    2019, then ``2018``, ``2017``, ``2016`` (every earlier year); the seed's rules put 2019 and
    later in ``2018`` too."""
    year = int(date[:4])
    if year >= 2019 and rules == "current":
        return date[:4] + date[5:7]
    if year >= 2018:
        return DEFAULT_PARTITION
    return "2017" if year == 2017 else "2016"


def normalize_partition(value: str | None, rules: str = "current", now: float | None = None) -> str:
    """The partition a request names; without one, the current time's (current rules) or
    ``2018`` (the seed)."""
    if value is None or value == "":
        if rules != "current":
            return DEFAULT_PARTITION
        return partition_of(format_date(now if now is not None else datetime.now(UTC).timestamp()), rules)
    if value in PARTITIONS:
        return value
    if rules == "current" and (match := _MONTH_RE.match(value)) and int(match.group(1)) >= 2019:
        return value
    expected = "YYYYMM from 201901, 2018, 2017 or 2016" if rules == "current" else "2018, 2017 or 2016"
    raise ValidationFailed([FieldError("partition", f"unknown partition {value!r}: use {expected}")])


def _long(value: Any) -> int | None:
    """Jackson's Long coercion: JSON integers and integer strings; None when not a Long."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        number = value
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    elif isinstance(value, str) and _LONG_TEXT_RE.match(value.strip()):
        number = int(value.strip())
    else:
        return None
    return number if LONG_MIN <= number <= LONG_MAX else None


def _text(value: Any) -> str | None:
    """Jackson's String coercion of scalars; None for objects and arrays."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return None


def validate_event(
    body: Mapping[str, Any],
    event_types: EventTypes | None = None,
    *,
    rules: str = "current",
    custom_attributes: int = CUSTOM_ATTRIBUTES_MAX,
    customer_required: bool = True,
) -> dict[str, Any]:
    """Check a ``POST /v1/customerevents`` body; return its writable fields normalised
    (``customerId``/``score`` as numbers, custom attributes kept). Raises ValidationFailed
    with every field error at once. ``customer_required`` is False for identity-keyed calls
    (collector, v2), whose customer the caller resolved."""
    errors: list[FieldError] = []
    clean: dict[str, Any] = {}
    for name in READ_ONLY_FIELDS:
        if name in body:
            errors.append(FieldError(name, "read-only field, must not be set"))

    raw_customer = body.get("customerId")
    if raw_customer is None:
        if customer_required:
            errors.append(FieldError("customerId", "may not be null"))
    else:
        customer_id = _long(raw_customer)
        if customer_id is None:
            errors.append(FieldError("customerId", f"must be a Long, got {raw_customer!r}"))
        else:
            clean["customerId"] = customer_id

    for name in STRING_FIELDS:
        if name not in body:
            continue
        raw = body[name]
        if raw is None:
            clean[name] = None
            continue
        text = _text(raw)
        if text is None:
            errors.append(FieldError(name, "must be a string"))
            continue
        limit = _MAX_LENGTHS.get(name)
        if limit is not None and len(text) > limit:
            errors.append(FieldError(name, f"size must be between 0 and {limit}"))
            continue
        clean[name] = text

    event = clean.get("event")
    if event is None or event == "":
        if not any(e.field_name == "event" for e in errors):
            errors.append(FieldError("event", "may not be empty"))
        event = None

    date = clean.get("date")
    if date is None:
        if not any(e.field_name == "date" for e in errors):
            errors.append(FieldError("date", "may not be null"))
    elif parse_date(date) is None:
        errors.append(FieldError("date", "must be a UTC time formatted yyyy-MM-dd'T'HH:mm:ss'Z'"))

    if "score" in body and body["score"] is not None:
        score = _long(body["score"])
        if score is None or not INT_MIN <= score <= INT_MAX:
            errors.append(FieldError("score", f"must be an Integer, got {body['score']!r}"))
        else:
            clean["score"] = score

    custom = {k: v for k, v in body.items() if k not in BUILT_IN_FIELDS}
    if event is not None:
        errors.extend(_check_custom(event, custom, event_types, custom_attributes))
        if rules == "current" and event.startswith(CUSTOM_PREFIX):
            errors.extend(
                FieldError(name, f"unknown field: custom event type {event!r} takes no {name}")
                for name in NOT_ON_CUSTOM
                if body.get(name) is not None
            )
    for name, value in custom.items():
        if value is not None and not isinstance(value, (str, int, float, bool)):
            errors.append(FieldError(name, "custom attribute must be a scalar value"))
    clean.update(custom)

    if errors:
        raise ValidationFailed(errors)
    return clean


def _check_custom(
    event: str, custom: Mapping[str, Any], event_types: EventTypes | None, limit: int = CUSTOM_ATTRIBUTES_MAX
) -> list[FieldError]:
    if not event.startswith(CUSTOM_PREFIX):
        return [
            FieldError(name, f"unknown field: built-in event type {event!r} takes no custom attributes")
            for name in custom
        ]
    errors: list[FieldError] = []
    if len(custom) > limit:
        errors.append(
            FieldError(
                "customAttributes",
                f"a custom event takes at most {limit} custom attributes, got {len(custom)}",
            )
        )
    if event_types is not None:
        if event not in event_types:
            errors.append(FieldError("event", f"event type {event!r} is not defined"))
        else:
            allowed = event_types[event]
            if allowed is not None:
                errors.extend(
                    FieldError(name, f"custom attribute not defined for event type {event!r}")
                    for name in custom
                    if name not in allowed
                )
    return errors


def render_event(record: Mapping[str, Any]) -> dict[str, Any]:
    """A stored event in DM Hub's response shape: every built-in field, nulls for unset ones,
    ``score`` 0 by default, ``summary`` only when set, then the custom attributes."""
    out: dict[str, Any] = {
        "id": record["id"],
        "customerId": record.get("customerId"),
        "event": record.get("event"),
        "targetId": record.get("targetId"),
        "targetName": record.get("targetName"),
        "date": record.get("date"),
        "source": record.get("source"),
        "score": record.get("score") if record.get("score") is not None else 0,
        "tag": record.get("tag"),
        "campaign": record.get("campaign"),
        "campaignName": record.get("campaignName"),
        "contentName": record.get("contentName"),
    }
    if record.get("summary") is not None:
        out["summary"] = record["summary"]
    if record.get("referrer") is not None:
        out["referrer"] = record["referrer"]
    out["externalId"] = record.get("externalId")
    out["lastUpdated"] = record.get("lastUpdated")
    out.update({k: v for k, v in record.items() if k not in BUILT_IN_FIELDS})
    return out


@dataclass(frozen=True)
class EventQuery:
    """The parameters of ``GET /v1/customerevents``."""

    partition: str = DEFAULT_PARTITION
    customer_id: int | None = None
    events: frozenset[str] | None = None
    updated_from: str | None = None
    updated_to: str | None = None
    id_from: int | None = None
    id_to: int | None = None
    max: int = QUERY_MAX_DEFAULT
    rules: str = "current"
    rows: int | None = None
    page: int = 1
    sidx: str = "id"
    descending: bool = False

    def page_slice(self) -> slice:
        size = self.rows if self.rows is not None else self.max
        start = (self.page - 1) * size
        return slice(start, start + min(size, self.max))


def parse_event_query(params: Mapping[str, str], rules: str = "current", now: float | None = None) -> EventQuery:
    errors: list[FieldError] = []

    def long_param(name: str) -> int | None:
        raw = params.get(name)
        if raw is None or raw == "":
            return None
        number = _long(raw)
        if number is None:
            errors.append(FieldError(name, f"must be a Long, got {raw!r}"))
        return number

    def positive(name: str) -> int | None:
        raw = params.get(name)
        if raw is None or raw == "":
            return None
        if not (raw.isascii() and raw.isdigit()) or int(raw) < 1:
            errors.append(FieldError(name, f"must be a positive integer, got {raw!r}"))
            return None
        return int(raw)

    def date_param(name: str) -> str | None:
        raw = params.get(name)
        if raw is None or raw == "":
            return None
        if parse_date(raw) is None:
            errors.append(FieldError(name, "must be a UTC time formatted yyyy-MM-dd'T'HH:mm:ss'Z'"))
            return None
        return raw

    partition = DEFAULT_PARTITION
    try:
        partition = normalize_partition(params.get("partition"), rules, now)
    except ValidationFailed as exc:
        errors.extend(exc.errors)
    raw_events = params.get("event")
    events = frozenset(e.strip() for e in raw_events.split(",") if e.strip()) if raw_events else None
    sidx = params.get("sidx") or "id"
    if sidx not in SORTABLE_FIELDS:
        errors.append(FieldError("sidx", f"cannot sort on {sidx!r}"))
    sord = (params.get("sord") or "asc").lower()
    if sord not in ("asc", "desc"):
        errors.append(FieldError("sord", "must be asc or desc"))
    query = EventQuery(
        partition=partition,
        customer_id=long_param("customerId"),
        events=events or None,
        updated_from=date_param("lastUpdatedFrom"),
        updated_to=date_param("lastUpdatedTo"),
        id_from=long_param("idFrom"),
        id_to=long_param("idTo"),
        # over the limit is clamped, not refused: a caller asking for more simply gets the cap
        max=min(positive("max") or QUERY_MAX_DEFAULT, QUERY_MAX_LIMIT),
        rows=positive("rows"),
        page=positive("page") or 1,
        sidx=sidx,
        descending=sord == "desc",
        rules=rules,
    )
    if errors:
        raise ValidationFailed(errors)
    return query


def matches(record: Mapping[str, Any], query: EventQuery) -> bool:
    if partition_of(record["date"], query.rules) != query.partition:
        return False
    if query.customer_id is not None and record.get("customerId") != query.customer_id:
        return False
    if query.events is not None and record.get("event") not in query.events:
        return False
    # fixed-width UTC strings order like the times they name
    updated = record["lastUpdated"]
    if query.updated_from is not None and updated < query.updated_from:
        return False
    if query.updated_to is not None and updated > query.updated_to:
        return False
    if query.id_from is not None and record["id"] < query.id_from:
        return False
    return not (query.id_to is not None and record["id"] > query.id_to)


def sort_key(field: str) -> Any:
    def key(record: Mapping[str, Any]) -> tuple[int, Any, int]:
        value = record.get(field)
        if field == "score" and value is None:
            value = 0
        # nulls last; mixed types compare by their text so sorting never fails
        if value is None:
            return (1, "", record["id"])
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return (0, (0, value, ""), record["id"])
        return (0, (1, 0, str(value)), record["id"])

    return key


@dataclass(frozen=True)
class IdentityInput:
    type: str
    value: str
    name: str | None


def validate_identities(raw: Any) -> list[IdentityInput]:
    """``customerIdentities`` of ``POST /v1/customerandidentities``."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise PlainBadRequest("customerIdentities must be an array")
    errors: list[FieldError] = []
    result: list[IdentityInput] = []
    for index, item in enumerate(raw):
        prefix = f"customerIdentities[{index}]"
        if not isinstance(item, dict):
            errors.append(FieldError(prefix, "must be an object"))
            continue
        kind = item.get("identityType")
        value = item.get("identityValue")
        name = item.get("identityName")
        ok = True
        if not isinstance(kind, str) or not kind:
            errors.append(FieldError(f"{prefix}.identityType", "may not be empty"))
            ok = False
        elif len(kind) > IDENTITY_TYPE_MAX:
            errors.append(FieldError(f"{prefix}.identityType", f"size must be between 1 and {IDENTITY_TYPE_MAX}"))
            ok = False
        if not isinstance(value, str) or not value:
            errors.append(FieldError(f"{prefix}.identityValue", "may not be empty"))
            ok = False
        elif len(value) > IDENTITY_VALUE_MAX:
            errors.append(FieldError(f"{prefix}.identityValue", f"size must be between 1 and {IDENTITY_VALUE_MAX}"))
            ok = False
        if name is not None and not isinstance(name, str):
            errors.append(FieldError(f"{prefix}.identityName", "must be a string"))
            ok = False
        if ok:
            assert isinstance(kind, str) and isinstance(value, str)
            result.append(IdentityInput(kind, value, name))
    if errors:
        raise ValidationFailed(errors)
    return result
