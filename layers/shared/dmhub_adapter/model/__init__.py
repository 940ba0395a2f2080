"""The DM Hub CustomerEvent model and the queue envelope.

The names below load :mod:`dmhub_adapter.model.customer_event` (and pydantic) on first use,
not when the package is imported: the sender imports :mod:`dmhub_adapter.model.rules` and
:mod:`dmhub_adapter.model.wire` from this package and never pays for pydantic.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dmhub_adapter.model.customer_event import (
        CUSTOM_ATTRIBUTES_MAX,
        CUSTOM_EVENT_PREFIX,
        CustomerEvent,
        Identity,
        QueuedEvent,
        StoredCustomerEvent,
        format_dmhub_date,
        parse_dmhub_date,
    )

__all__ = [
    "CUSTOM_ATTRIBUTES_MAX",
    "CUSTOM_EVENT_PREFIX",
    "CustomerEvent",
    "Identity",
    "QueuedEvent",
    "StoredCustomerEvent",
    "format_dmhub_date",
    "parse_dmhub_date",
]


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from dmhub_adapter.model import customer_event

    return getattr(customer_event, name)
