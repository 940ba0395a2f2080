"""Where mapping files are, and the plans the build writes beside the packaged ones.

A source's mapping is ``{source}.yaml`` in ``MAPPINGS_DIR`` (when set) or else in the package
(``dmhub_adapter/mappings``). Checking a file takes pydantic and PyYAML, about 130 ms of a cold
start before the first request; the packaged files do not change after the build, so the
build checks each one and writes its plan's data beside it as ``{source}.plan.json``:

.. code-block:: text

    {"format": 1, "sha256": "<SHA-256 of the YAML file's bytes>",
     "budgets": [5, 16],              # the attribute budgets the file was checked against
     "mapping": {...}}                # the checked file, MappingFile.model_dump(by_alias=True)

At run time :func:`read_compiled_plan` uses it only for a packaged file, only while the YAML
file's bytes still hash to ``sha256`` and only for a budget in ``budgets``; anything else (an
edited file, an override directory, no plan) is checked from the YAML with pydantic, so a plan
is a cache that can be stale or missing but never wrong. ``python -m
dmhub_adapter.mapping.compile [DIR]`` writes the plans (:mod:`dmhub_adapter.mapping.compile`).
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dmhub_adapter.mapping.plan import MappingPlan
    from dmhub_adapter.model.rules import AttributeBudget

SOURCE_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
PLAN_SUFFIX = ".plan.json"
PLAN_FORMAT = 1
#: the budgets of ``DMHUB_CUSTOM_ATTRIBUTES`` a plan is checked against (the seed's, the current docs')
PLAN_BUDGETS = (5, 16)


class MappingConfigError(ValueError):
    """A mapping file is invalid; ``str()`` names the file, the rule and the field."""

    def __init__(self, file: str, problems: list[str]) -> None:
        self.file = file
        self.problems = problems
        super().__init__(f"{file}: " + "; ".join(problems) if len(problems) == 1 else
                         f"{file}:\n  - " + "\n  - ".join(problems))


def packaged_dir() -> Path:
    """The folder of the mappings shipped in the package (``dmhub_adapter/mappings``).

    Found from this module's file: the package is always a folder (the layer, a checkout), and
    ``importlib.resources`` would cost a cold start ~18 ms of imports (zipfile, tempfile)."""
    return Path(__file__).parent.parent / "mappings"


def search_dirs(override: str | None) -> list[Path]:
    """Where mapping files are looked for, first match wins: ``override``, then the package."""
    dirs = [Path(override)] if override else []
    return [*dirs, packaged_dir()]


def mapping_path(source: str, mappings_dir: str | None = None) -> Path | None:
    """The file that defines ``source``: ``mappings_dir`` first, then the packaged folder;
    None for an invalid name or when neither has it."""
    if not SOURCE_NAME_RE.match(source):
        return None
    for directory in search_dirs(mappings_dir):
        candidate = directory / f"{source}.yaml"
        if candidate.is_file():
            return candidate
    return None


def plan_path(path: Path) -> Path:
    """Where the build writes the plan of the mapping file at ``path``."""
    return path.with_name(path.stem + PLAN_SUFFIX)


def read_compiled_plan(path: Path, budget: AttributeBudget) -> MappingPlan | None:
    """The plan the build wrote for the packaged mapping file ``path``, when it is there, still
    matches the file's bytes and was checked against ``budget``; otherwise None (then the file
    is checked from its YAML)."""
    if path.parent.resolve() != packaged_dir().resolve():
        return None
    try:
        stored = json.loads(plan_path(path).read_bytes())
        current = hashlib.sha256(path.read_bytes()).hexdigest()
    except (OSError, ValueError):
        return None
    if (not isinstance(stored, dict) or stored.get("format") != PLAN_FORMAT or stored.get("sha256") != current
            or budget.total not in stored.get("budgets", ()) or not isinstance(stored.get("mapping"), dict)):
        return None
    from dmhub_adapter.mapping.plan import plan_from_data

    return plan_from_data(stored["mapping"], budget)
