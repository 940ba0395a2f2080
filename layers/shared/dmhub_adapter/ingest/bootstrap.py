"""The IngestFunction's composition root: the pipeline assembled from its settings.

Everything the ingest talks to is built here and handed to the constructors; nothing is
configured after construction. AWS clients are created on first use (a GET handshake needs
neither DynamoDB nor SQS), from the one shared boto3 session of :mod:`dmhub_adapter.aws`.

Example::

    pipeline = build_pipeline(IngestSettings.from_env(), log=telemetry.logger)
"""

from __future__ import annotations

from typing import Any

from dmhub_adapter import aws
from dmhub_adapter.ingest.handoff import Handoff
from dmhub_adapter.ingest.pipeline import IngestPipeline
from dmhub_adapter.ingest.unmapped import UnmappedQueue
from dmhub_adapter.secrets import SecretStore
from dmhub_adapter.settings import IngestSettings
from dmhub_adapter.store.signature_binding import SignatureBinding


def build_pipeline(settings: IngestSettings, *, log: Any | None = None) -> IngestPipeline:
    """The ingest pipeline with its secret cache, claim hand-off and unmapped queue."""

    def handoff() -> Handoff:
        from dmhub_adapter.store.claims import ClaimTable

        claims = ClaimTable(
            settings.idempotency_table,
            aws.dynamodb(),
            lease_seconds=settings.claim_lease_seconds,
            ttl_seconds=settings.dedup_ttl_days * 86400,
        )
        return Handoff(
            claims, settings.event_queue_url, sqs_client=aws.sqs(), pending_wait=settings.claim_wait_seconds, log=log
        )

    def unmapped() -> UnmappedQueue:
        return UnmappedQueue(settings.unmapped_queue_url, aws.sqs(), bucket=settings.unmapped_bucket, s3=aws.s3)

    def signature_binding() -> SignatureBinding:
        return SignatureBinding(aws.dynamodb(), settings.idempotency_table)

    return IngestPipeline(
        settings,
        secrets=SecretStore(settings.secrets_prefix, log=log),
        handoff=handoff,
        unmapped=unmapped,
        signature_binding=signature_binding,
        log=log,
    )
