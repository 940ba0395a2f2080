"""Find the adapter for a source: the mapping file names it (``adapter:``), config decides.

An adapter module ``dmhub_adapter.sources.<adapter>`` exposes:

- ``build(mapping: MappingPlan) -> Source``
- optionally ``check_config(mapping: MappingPlan) -> list[str]`` (problems with the adapter's
  own config blocks such as ``verification``), used by ``check-config`` and at load time;
- optionally ``check_secret(mapping, secret) -> list[str]`` and ``secret_fields(mapping) ->
  list[str]``: what an account's secret needs and may hold, checked by ``dev`` at start-up and
  by ``accounts put`` (:func:`check_account_secret`);
- optionally ``sign_request(mapping, secret, body, headers, query, now) -> SignedParts``: the
  request as the platform would sign it (``dmhub-adapter send``; :func:`sign_for`).

The mapping loader (:mod:`dmhub_adapter.mapping.config`) knows nothing of adapters; this
module runs both checks, so a file is accepted only when its rules and its adapter blocks are
valid, and the mapping package never imports the sources. A packaged file the build compiled
loads from its plan (:mod:`dmhub_adapter.mapping.files`), without pydantic; every other file is
checked here.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from types import ModuleType
from typing import Any

from dmhub_adapter.mapping.files import MappingConfigError, mapping_path, read_compiled_plan
from dmhub_adapter.mapping.plan import MappingPlan
from dmhub_adapter.model.rules import SEED_ATTRIBUTE_BUDGET, AttributeBudget
from dmhub_adapter.sources.base import SignedParts, Source

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


def check_adapter_config(mapping: MappingPlan) -> list[str]:
    """Problems with the adapter's own blocks of ``mapping`` (empty when valid)."""
    try:
        module = _adapter_module(mapping.adapter)
    except LookupError as exc:
        return [f"field 'adapter': {exc}"]
    check = getattr(module, "check_config", None)
    return list(check(mapping)) if check else []


def check_account_secret(mapping: MappingPlan, secret: Any) -> list[str]:
    """Problems with an account secret for ``mapping``'s source (empty when a request would find
    it usable): what the adapter needs, key material that does not decode, and fields the
    adapter does not know (a typo such as ``appkey`` for ``appKey``), with the likely name."""
    import difflib

    if not isinstance(secret, Mapping):
        return ["the secret must be a mapping of field names to values"]
    module = _adapter_module(mapping.adapter)
    check = getattr(module, "check_secret", None)
    problems = list(check(mapping, secret)) if check else []
    fields = getattr(module, "secret_fields", None)
    if fields is not None:
        known = set(fields(mapping))
        bindings = mapping.account_binding
        for binding in bindings if isinstance(bindings, list) else [bindings] if bindings is not None else []:
            known.add(binding.secret)
        for name in sorted(set(secret) - known):
            close = difflib.get_close_matches(str(name), sorted(known), n=1, cutoff=0.6)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            problems.append(f"unknown field {name!r}{hint}; {mapping.source} secrets hold "
                            f"{', '.join(sorted(known)) or 'no fields'}")
    return problems


def sign_for(mapping: MappingPlan, secret: Mapping[str, Any], body: bytes, headers: Mapping[str, str],
             query: Mapping[str, str], now: float) -> SignedParts:
    """Sign ``body`` for ``mapping``'s source the way its adapter or verification block says;
    raises ``ValueError`` when the adapter cannot sign (or says what is missing)."""
    sign = getattr(_adapter_module(mapping.adapter), "sign_request", None)
    if sign is None:
        raise ValueError(f"adapter {mapping.adapter!r} has no signer")
    signed: SignedParts = sign(mapping, secret, body, headers, query, now)
    return signed


def parse_source_mapping(
    text: str, file: str, *, budget: AttributeBudget = SEED_ATTRIBUTE_BUDGET
) -> MappingPlan:
    """Parse one mapping file (against the custom attribute ``budget``) and check its adapter
    blocks; raises :class:`MappingConfigError`."""
    from dmhub_adapter.mapping.config import parse_mapping

    mapping = parse_mapping(text, file, budget=budget)
    problems = check_adapter_config(mapping)
    if problems:
        raise MappingConfigError(file, problems)
    return mapping


@lru_cache(maxsize=64)
def _load_cached(path: str, mtime_ns: int, budget: AttributeBudget) -> MappingPlan:
    compiled = read_compiled_plan(Path(path), budget)  # checked, adapter blocks too, by the build
    if compiled is not None:
        return compiled
    return parse_source_mapping(Path(path).read_text(encoding="utf-8"), path, budget=budget)


def load_source_mapping(
    name: str, mappings_dir: str | None = None, *, budget: AttributeBudget = SEED_ATTRIBUTE_BUDGET
) -> MappingPlan | None:
    """The checked mapping of source ``name`` (``mappings_dir`` first, then the packaged ones),
    or None when no file defines it; a file reloads when it changes."""
    path = mapping_path(name, mappings_dir)
    if path is None:
        return None
    return _load_cached(str(path), path.stat().st_mtime_ns, budget)


def check_directory(
    directory: str | Path, *, budget: AttributeBudget = SEED_ATTRIBUTE_BUDGET
) -> dict[str, list[str]]:
    """Validate every ``*.yaml`` in a directory against the custom attribute ``budget``;
    returns problems per file (empty when valid)."""
    results: dict[str, list[str]] = {}
    for path in sorted(Path(directory).glob("*.yaml")):
        try:
            parse_source_mapping(path.read_text(encoding="utf-8"), str(path), budget=budget)
            results[str(path)] = []
        except MappingConfigError as exc:
            results[str(path)] = exc.problems
    return results


def source_for(
    name: str, mappings_dir: str | None = None, *, budget: AttributeBudget = SEED_ATTRIBUTE_BUDGET
) -> Source | None:
    """The adapter instance for a source name, or None when no mapping file defines it.

    Example::

        source = source_for("wechat", settings.mappings_dir)
    """
    mapping = load_source_mapping(name, mappings_dir, budget=budget)
    if mapping is None:
        return None
    key = (name, id(mapping))
    source = _built.get(key)
    if source is None:
        source = _adapter_module(mapping.adapter).build(mapping)
        _built[key] = source
    return source
