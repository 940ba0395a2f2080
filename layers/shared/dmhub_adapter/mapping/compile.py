"""Write the plans of mapping files: ``python -m dmhub_adapter.mapping.compile [DIR]``.

For every ``{source}.yaml`` in ``DIR`` (the packaged mappings by default) the file is checked
as at run time — its rules by :mod:`dmhub_adapter.mapping.config` and its adapter's blocks by
:mod:`dmhub_adapter.sources.registry` — against each attribute budget, and its plan's data is
written beside it as ``{source}.plan.json`` (the format is in :mod:`dmhub_adapter.mapping.files`).
The layer's build runs it on the layer it ships; ``make`` runs it on the checkout. It exits
with 1 and names the file when one is invalid; a valid file whose data JSON cannot carry (a
YAML date) is named and left to be checked from its YAML.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

from dmhub_adapter.mapping.config import checked_mapping_data
from dmhub_adapter.mapping.files import (
    PLAN_BUDGETS,
    PLAN_FORMAT,
    PLAN_SUFFIX,
    MappingConfigError,
    packaged_dir,
    plan_path,
)
from dmhub_adapter.mapping.plan import plan_from_data
from dmhub_adapter.model.rules import AttributeBudget
from dmhub_adapter.sources.registry import check_adapter_config


class NotCompilable(MappingConfigError):
    """A valid mapping file whose data JSON cannot carry (a YAML date or other non-JSON literal):
    it gets no plan and keeps being checked from its YAML at run time."""


def compile_plan(path: Path) -> dict[str, Any]:
    """The plan file's content for the mapping file at ``path``: checked (rules and adapter
    blocks) against every budget of :data:`PLAN_BUDGETS`; raises :class:`MappingConfigError`
    when it is invalid under all of them, and :class:`NotCompilable` when its data would not
    survive JSON."""
    raw = path.read_bytes()
    text = raw.decode("utf-8")
    budgets: list[int] = []
    data: dict[str, Any] | None = None
    problems: list[str] = []
    for size in PLAN_BUDGETS:
        budget = AttributeBudget.of(size)
        try:
            checked = checked_mapping_data(text, str(path), budget=budget)
        except MappingConfigError as exc:
            problems = exc.problems
            continue
        problems = check_adapter_config(plan_from_data(checked, budget))
        if problems:
            continue
        if data is not None and checked != data:
            raise MappingConfigError(str(path), ["the checked data differs between attribute budgets"])
        data = checked
        budgets.append(size)
    if data is None:
        raise MappingConfigError(str(path), problems)
    try:
        survives = json.loads(json.dumps(data, ensure_ascii=False, allow_nan=False)) == data
    except (TypeError, ValueError):
        survives = False
    if not survives:
        raise NotCompilable(str(path), ["holds a value JSON cannot carry (e.g. a YAML date); kept as YAML"])
    return {"format": PLAN_FORMAT, "sha256": hashlib.sha256(raw).hexdigest(), "budgets": budgets, "mapping": data}


def write_plans(directory: Path) -> tuple[list[str], list[str]]:
    """Write ``{source}.plan.json`` beside every valid ``*.yaml`` in ``directory`` and remove
    the plans of files that are gone or no longer compile; returns the problems of the invalid
    files and the notes of the valid ones left without a plan (:class:`NotCompilable`)."""
    invalid: list[str] = []
    kept_as_yaml: list[str] = []
    for stale in directory.glob(f"*{PLAN_SUFFIX}"):
        if not (directory / (stale.name.removesuffix(PLAN_SUFFIX) + ".yaml")).is_file():
            stale.unlink()
    for path in sorted(directory.glob("*.yaml")):
        try:
            content = compile_plan(path)
        except MappingConfigError as exc:
            plan_path(path).unlink(missing_ok=True)
            (kept_as_yaml if isinstance(exc, NotCompilable) else invalid).append(str(exc))
            continue
        text = json.dumps(content, ensure_ascii=False, sort_keys=True, separators=(",", ":")) + "\n"
        target = plan_path(path)
        if not target.is_file() or target.read_text(encoding="utf-8") != text:
            target.write_text(text, encoding="utf-8")
    return invalid, kept_as_yaml


if __name__ == "__main__":  # python -m dmhub_adapter.mapping.compile [DIR]
    invalid, kept_as_yaml = write_plans(Path(sys.argv[1]) if len(sys.argv) > 1 else packaged_dir())
    for note in kept_as_yaml:
        print(f"no plan: {note}", file=sys.stderr)
    for problem in invalid:
        print(f"invalid: {problem}", file=sys.stderr)
    sys.exit(1 if invalid else 0)
