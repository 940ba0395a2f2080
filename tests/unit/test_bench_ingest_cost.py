"""P1's floor must build the very event the library queues, or its ratio compares different work.

The floor hard-codes what the mapping decides; when the pipeline's event changes (a namespaced
externalId, attribute kinds) the floor has to follow, and the bench refuses to run until it
does. This keeps that refusal from surfacing only when someone runs ``make bench``.
"""

from __future__ import annotations

import pytest
from bench.ingest_cost import cases, check_equivalent


@pytest.mark.parametrize("case", cases(), ids=lambda case: case.name)
def test_the_floor_builds_the_event_the_pipeline_queues(case) -> None:  # type: ignore[no-untyped-def]
    check_equivalent(case)
    queued = case.library()[0]
    # the library side goes through the pipeline's own construction
    assert queued.event.externalId.startswith(f"{queued.source}:{queued.account}:")
