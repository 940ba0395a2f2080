"""The CustomerEvent contract's rules as plain functions, without pydantic.

Two readers enforce the same contract: the pydantic models of
:mod:`dmhub_adapter.model.customer_event` (the ingest, the CLI, DM Hub's answers read by the
tools) and :mod:`dmhub_adapter.model.wire` (the sender, whose cold start would otherwise pay
about 110 ms for pydantic's import and first model). Every rule that is more than a field's
type and length lives here once, and both readers call it; the field limits are the constants
below, which both declare.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal

from dmhub_adapter.records import record

EVENT_MAX = 32
TARGET_MAX = 255
TAG_MAX = 255
SUMMARY_MAX = 1024
CUSTOM_ATTRIBUTES_MAX = 5
#: the current docs' budget: at most 16 custom attributes, of which 10 text, 3 quantity, 3 amount
CURRENT_ATTRIBUTE_KINDS = {"text": 10, "quantity": 3, "amount": 3}
#: built-in fields DM Hub removed from custom (``c_``) event types
NOT_ON_CUSTOM_EVENTS = ("targetId", "targetName", "summary")
#: fields DM Hub sets itself: parsed from its answers, never sent
READ_ONLY_FIELDS = frozenset({"id", "lastUpdated"})
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
_AMOUNT_TEXT_RE = re.compile(r"^-?[0-9]{1,15}(\.[0-9]{1,4})?$")
_IDENTITY_TYPE_RE = re.compile(r"[a-z0-9][a-z0-9_-]*")
_EVENT_ID_RE = re.compile(r"-?[0-9]{1,19}")

#: what a custom attribute holds, as defined in DM Hub's event-type settings
AttributeKind = Literal["text", "quantity", "amount"]
ATTRIBUTE_KINDS: tuple[str, ...] = ("text", "quantity", "amount")


@record(frozen=True)
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


def check_attribute_value(name: str, kind: str, value: Any) -> None:
    """Raise ``ValueError`` when ``value`` cannot be an attribute of ``kind``: a quantity is an
    integer, an amount a finite number or decimal text (``"19.90"``)."""
    if value is None:
        return
    if kind == "quantity" and (isinstance(value, bool) or not isinstance(value, int)):
        raise ValueError(f"custom attribute {name!r} is a quantity and must be an integer, got {value!r}")
    if kind == "amount":
        number = (isinstance(value, int) and not isinstance(value, bool)) or (
            isinstance(value, float) and math.isfinite(value))
        if not number and not (isinstance(value, str) and _AMOUNT_TEXT_RE.match(value)):
            raise ValueError(f"custom attribute {name!r} is an amount and must be a number, got {value!r}")


def check_identity_type(value: str) -> str:
    """``value`` when it is a DM Hub identity type's shape (lower case letters, digits, ``-``
    and ``_``, not starting with a separator); raises ``ValueError`` otherwise."""
    if not _IDENTITY_TYPE_RE.fullmatch(value):
        raise ValueError("identity type must be lower case letters, digits, '-' or '_'")
    return value


def civil(match: re.Match[str]) -> datetime:
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
        civil(match)
    except ValueError as exc:
        raise ValueError(f"date {value!r} is not a real calendar time") from exc
    return value


def check_custom_attributes(
    event_type: str, carried_builtins: list[str], extras: Mapping[str, Any], budget: AttributeBudget
) -> None:
    """The rules across a CustomerEvent's fields; raises ``ValueError`` with the first broken.

    ``carried_builtins`` are the :data:`NOT_ON_CUSTOM_EVENTS` fields the event sets, ``extras``
    its custom attributes (every key that is not a declared field)."""
    if extras and not READ_ONLY_FIELDS.isdisjoint(extras):
        present = sorted(READ_ONLY_FIELDS.intersection(extras))
        raise ValueError(f"{', '.join(present)} read-only in DM Hub and never sent")
    custom = event_type.startswith(CUSTOM_EVENT_PREFIX)
    if extras and not custom:
        raise ValueError(
            f"custom attributes {sorted(extras)} are only allowed on custom event types "
            f"(starting with {CUSTOM_EVENT_PREFIX!r}), not on {event_type!r}"
        )
    if custom and carried_builtins:
        raise ValueError(
            f"custom event types take no {', '.join(carried_builtins)} (DM Hub removed them from custom "
            "events); carry the value as a custom attribute"
        )
    if len(extras) > budget.total:
        raise ValueError(
            f"a custom event carries at most {budget.total} custom attributes, got {len(extras)}: {sorted(extras)}"
        )
    for name, value in extras.items():
        if not _ATTRIBUTE_NAME_RE.match(name):
            raise ValueError(f"custom attribute name {name!r} is not a valid identifier")
        if value is not None and not isinstance(value, (str, int, float, bool)):
            raise ValueError(f"custom attribute {name!r} must be a scalar, got {type(value).__name__}")


def check_deliverable(
    *,
    has_identity: bool,
    customer_id: int | None,
    external_id: str | None,
    attributes: Mapping[str, Any],
    attribute_kinds: Mapping[str, str],
    budget: AttributeBudget,
) -> None:
    """The rules of a queued event beyond its CustomerEvent; raises ``ValueError``: someone to
    send it for, a natural key, and custom attributes whose kinds are known, fit their values
    and fit the budget."""
    if not has_identity and customer_id is None:
        raise ValueError("an event needs an identity or a customerId")
    if not external_id:
        raise ValueError("an event needs an externalId (the source's natural key)")
    unknown = sorted(set(attribute_kinds) - set(attributes))
    if unknown:
        raise ValueError(f"attribute_kinds names attributes the event does not carry: {unknown}")
    kinds = {name: attribute_kinds.get(name, "text") for name in attributes}
    for name, kind in kinds.items():
        check_attribute_value(name, kind, attributes[name])
    problems = budget.problems(kinds)
    if problems:
        raise ValueError("; ".join(problems))


def event_id(value: object) -> int | str:
    """DM Hub's id of a stored event, read leniently: an integer, or numeric text as an integer,
    or other non-blank text as it is; raises ``ValueError`` for anything else."""
    if isinstance(value, bool) or value is None:
        raise ValueError("the answer carries no event id")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip():
        text = value.strip()
        return int(text) if _EVENT_ID_RE.fullmatch(text) else text
    raise ValueError(f"the answer's event id is not a number or text: {value!r}")
