"""Find the adapter for a source: the mapping file names it (``adapter:``), config decides.

An adapter module ``dmhub_adapter.sources.<adapter>`` exposes:

- ``build(mapping: MappingFile) -> Source``
- optionally ``check_config(mapping: MappingFile) -> list[str]`` (problems with the adapter's
  own config blocks such as ``verification``), used by ``check-config`` and at load time.
"""

from __future__ import annotations

import importlib
import re
from types import ModuleType

from dmhub_adapter.mapping.config import MappingFile, load_mapping
from dmhub_adapter.sources.base import Source

_ADAPTER_RE = re.compile(r"^[a-z][a-z0-9_]*$")
_built: dict[tuple[str, int], Source] = {}


def _adapter_module(name: str) -> ModuleType:
    if not _ADAPTER_RE.match(name):
        raise LookupError(f"adapter {name!r} is not a valid module name")
    try:
        return importlib.import_module(f"dmhub_adapter.sources.{name}")
    except ModuleNotFoundError as exc:
        if exc.name == f"dmhub_adapter.sources.{name}":
            raise LookupError(f"unknown adapter {name!r}") from exc
        raise


def check_adapter_config(mapping: MappingFile) -> list[str]:
    try:
        module = _adapter_module(mapping.adapter)
    except LookupError as exc:
        return [f"field 'adapter': {exc}"]
    check = getattr(module, "check_config", None)
    return list(check(mapping)) if check else []


def source_for(name: str, mappings_dir: str | None = None) -> Source | None:
    """The adapter instance for a source name, or None when no mapping file defines it."""
    mapping = load_mapping(name, mappings_dir)
    if mapping is None:
        return None
    key = (name, id(mapping))
    source = _built.get(key)
    if source is None:
        source = _adapter_module(mapping.adapter).build(mapping)
        _built[key] = source
    return source
