"""The per-source mapping config engine.

The names below load their modules on first use, not when the package is imported: a cold
ingest imports :mod:`dmhub_adapter.mapping.files`, :mod:`~dmhub_adapter.mapping.plan` and
:mod:`~dmhub_adapter.mapping.engine` from this package and never pays for the pydantic schema
of :mod:`~dmhub_adapter.mapping.config` when the mapping's compiled plan is at hand.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dmhub_adapter.mapping.config import (
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
    from dmhub_adapter.mapping.files import MappingConfigError
    from dmhub_adapter.mapping.plan import MappingPlan

_HOMES = {
    "MappingFile": "config",
    "available_sources": "config",
    "json_schema": "config",
    "load_mapping": "config",
    "parse_mapping": "config",
    "MappedEvent": "engine",
    "MappingError": "engine",
    "MessageResult": "engine",
    "decode_message": "engine",
    "map_message": "engine",
    "map_payload": "engine",
    "split_messages": "engine",
    "MappingConfigError": "files",
    "MappingPlan": "plan",
}

__all__ = [
    "MappedEvent",
    "MappingConfigError",
    "MappingError",
    "MappingFile",
    "MappingPlan",
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


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    return getattr(import_module(f"{__name__}.{home}"), name)
