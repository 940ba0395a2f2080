"""The DM Hub CustomerEvent model and the queue envelope."""

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
