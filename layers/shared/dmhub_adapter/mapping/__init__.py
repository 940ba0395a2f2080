"""The per-source mapping config engine."""

from dmhub_adapter.mapping.config import (
    MappingConfigError,
    MappingFile,
    available_sources,
    json_schema,
    load_mapping,
    parse_mapping,
)
from dmhub_adapter.mapping.engine import (
    MappedEvent,
    MappingError,
    MessageResult,
    decode_message,
    map_message,
    map_payload,
    split_messages,
)

__all__ = [
    "MappedEvent",
    "MappingConfigError",
    "MappingError",
    "MappingFile",
    "MessageResult",
    "available_sources",
    "decode_message",
    "json_schema",
    "load_mapping",
    "map_message",
    "map_payload",
    "parse_mapping",
    "split_messages",
]
