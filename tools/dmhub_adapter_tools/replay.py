"""Replaying UnmappedQueue records after the mapping config was fixed.

:func:`replay_unmapped_record` takes one record (the JSON body of an UnmappedQueue message,
see :mod:`.unmapped`) and runs it through today's mapping config exactly like a live delivery
from the mapping step on: ``source.parse_unverified`` on the stored clear-text payload (no
signature check: it was verified when received; no secret: it is already decrypted), then
``map_payload``, then claim → enqueue → mark. Events that were already enqueued the first time
(a payload with some mapped and some unmapped messages) are duplicates of their claims and
are not enqueued again, so replaying a record twice is harmless.

Use from the replay command::

    result = replay_unmapped_record(json.loads(message["Body"]), pipeline=pipeline)
    if result.resolved:
        delete the message           # every message of the payload is now accounted for
    else:
        keep it; show result.reasons # still unmapped (or refused by the adapter)

A pointer record (``payload_ref``, see :mod:`dmhub_adapter.ingest.unmapped`) is first read
back from its S3 bucket. Raises :class:`ReplayError` for a record that can never replay
(unknown version or source, payload the adapter cannot parse, stored object gone) and
:class:`~dmhub_adapter.ingest.errors.DependencyUnavailable`
when DynamoDB or SQS fail (try again later). A replay never writes to the UnmappedQueue.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from dmhub_adapter.errors import NotFound, WebhookError
from dmhub_adapter.ingest.bootstrap import build_pipeline
from dmhub_adapter.ingest.pipeline import IngestPipeline
from dmhub_adapter.ingest.unmapped import RecordError, request_from_record, resolve_record
from dmhub_adapter.observability import MetricsSink
from dmhub_adapter.settings import IngestSettings
from dmhub_adapter.sources.base import Account, IngestOutcome


class ReplayError(ValueError):
    """The record cannot be replayed with the current configuration (not a transient failure)."""


@dataclass
class ReplayResult:
    outcome: IngestOutcome
    #: why messages are still not mapped ("message #N: ..."); empty when all are accounted for
    reasons: list[str] = field(default_factory=list)

    @property
    def resolved(self) -> bool:
        """Nothing in the payload is left unmapped or refused: the record may be deleted."""
        return not self.reasons


def restore_request_values(record: Mapping[str, Any], inbound: Any) -> None:
    """Give back the ``_request`` values a record kept in its context where the rebuilt request
    lacks them: records kept before records held the request's headers (a Standard Webhooks
    ``webhook-id``) still replay to the externalId the live delivery had, never a second one.
    The values were read by the ingest from the authenticated request, like the rest of the record."""
    context = record.get("context")
    kept = context.get("request") if isinstance(context, Mapping) else None
    if not isinstance(kept, Mapping):
        return
    for message in inbound.messages:
        values = message.get("_request")
        if isinstance(values, dict):
            message["_request"] = {name: kept.get(name) if value is None else value for name, value in values.items()}


def replay_unmapped_record(
    record: Mapping[str, Any],
    *,
    pipeline: IngestPipeline | None = None,
    metrics: MetricsSink | None = None,
    s3: Any | None = None,
) -> ReplayResult:
    pipeline = pipeline or build_pipeline(IngestSettings.from_env())
    try:
        # A record stored by reference (over the queue's size) is read back from its bucket.
        full = resolve_record(record, s3=s3)
        request = request_from_record(full)
    except RecordError as exc:
        raise ReplayError(str(exc)) from exc
    try:
        source = pipeline.source(request.source)
    except NotFound as exc:
        raise ReplayError(f"source {request.source!r} has no mapping config any more") from exc
    account = Account(source.name, request.account, source.mapping, None)
    try:
        inbound = source.parse_unverified(request, account)
    except WebhookError as exc:
        raise ReplayError(f"the stored payload cannot be parsed: {exc.message}") from exc
    restore_request_values(full, inbound)
    delivery = pipeline.deliver(request, source, inbound, metrics=metrics, keep_unmapped=False)
    return ReplayResult(outcome=delivery.outcome, reasons=delivery.reasons)
