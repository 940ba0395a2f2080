"""A short load run through the local stack (``dmhub-adapter dev`` as a subprocess, loopback
only): 300 mixed webhooks, 30 % redeliveries, 5 % DM Hub 5xx; DM Hub must end up holding
exactly the unique events."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "load_run.py"


def load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("load_run", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


def test_300_mixed_webhooks_with_redeliveries_and_faults_land_exactly_once() -> None:
    load_run = load_script()
    with load_run.local_stack(None) as stack:
        result = load_run.run_load(stack, 300, concurrency=8, redeliveries=0.3, faults=0.05, seed=7,
                                   drain_timeout=45)
    assert result.statuses == {200: 300}
    assert 180 <= result.unique < 300  # the plan really redelivers
    assert result.missing == [] and result.unexpected == []
    assert result.counters["events"] == result.unique
    assert result.counters["faults"].get("5xx", 0) > 0  # faults were injected and survived
    assert result.dead_letters == 0
