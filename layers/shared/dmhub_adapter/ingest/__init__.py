"""The ingest side: a webhook request becomes claimed, enqueued DM Hub events.

- :mod:`.pipeline` — :class:`~.pipeline.IngestPipeline`, generic over source adapters;
- :mod:`.handoff`  — the claim → enqueue → mark protocol and its failure handling;
- :mod:`dmhub_adapter.secrets` — account secrets (an account exists when its secret does);
- :mod:`.unmapped` — the UnmappedQueue record format;
- :mod:`.replay`   — :func:`~.replay.replay_unmapped_record` for ``replay unmapped``;
- :mod:`.metrics`  — metric names and sinks.

Submodules are imported where used, so the function's cold start pays only for its path.
"""
