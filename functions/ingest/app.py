"""IngestFunction: API Gateway HTTP API (payload v2) → verified, mapped, claimed, enqueued.

Routes: ``GET|POST /webhooks/{source}/{account}``. The handler only adapts the event; the work
is :class:`dmhub_adapter.ingest.pipeline.IngestPipeline`.

A plain handler rather than Powertools' ``APIGatewayHttpResolver``: with one route and two
methods the resolver adds nothing but import time (about 60 ms warm-cache on a developer
machine, more without bytecode), and WeChat's 5-second deadline includes the cold start.
The ``Tracer`` is only built when tracing is enabled, and it patches botocore alone: every
call this function makes to AWS goes through botocore, while ``patch_all`` imports every
library it can patch that is installed (httpx from the layer, sqlite3, requests where present)
only to patch it: 20 ms for botocore alone against 120-190 ms on a developer machine.
Without aws-xray-sdk installed the function runs untraced rather than failing every cold
start.

The library is imported at module load, in the INIT phase (which provisioned concurrency
runs ahead of traffic): every request needs the mapping engine. What only some requests
need stays lazy inside the pipeline (DynamoDB and SQS clients: a GET handshake uses neither).
"""

from __future__ import annotations

import os
import warnings
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging import correlation_paths

from dmhub_adapter.apigw import request_from_event, response_to_event
from dmhub_adapter.ingest.metrics import PowertoolsMetrics
from dmhub_adapter.ingest.pipeline import IngestPipeline

logger = Logger()
metrics = Metrics()
# Refusals answered before anything is counted (unknown routes) flush an empty set; that is normal.
warnings.filterwarnings("ignore", message="No application metrics to publish")

_pipeline: IngestPipeline | None = None

#: what the X-Ray SDK patches when tracing is on (DynamoDB, SQS, Secrets Manager calls)
TRACED_MODULES = ("botocore",)


def _tracing_enabled() -> bool:
    return os.environ.get("POWERTOOLS_TRACE_DISABLED", "").strip().lower() not in ("1", "true", "yes", "on", "y", "t")


def _pipeline_instance() -> IngestPipeline:
    global _pipeline
    if _pipeline is None:
        _pipeline = IngestPipeline.from_env(log=logger)
    return _pipeline


@metrics.log_metrics(capture_cold_start_metric=True)
def _handle_with_metrics(event: dict[str, Any], context: Any) -> dict[str, Any]:
    request = request_from_event(event)
    remaining = context.get_remaining_time_in_millis() if context is not None else None
    response = _pipeline_instance().handle(request, remaining_ms=remaining, metrics=PowertoolsMetrics(metrics))
    return response_to_event(response)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
def _handle(event: dict[str, Any], context: Any) -> dict[str, Any]:
    try:
        return _handle_with_metrics(event, context)
    finally:
        # Powertools clears its set only when it publishes; with metrics disabled (local runs)
        # values and dimensions would pile up across invocations.
        metrics.clear_metrics()


def _traced(handler: Any) -> Any:
    if not _tracing_enabled():
        return handler
    from aws_lambda_powertools import Tracer

    try:
        tracer = Tracer(patch_modules=TRACED_MODULES)
    except ModuleNotFoundError as exc:
        logger.warning("tracing is enabled but unavailable; running untraced", extra={"missing": exc.name})
        return handler
    return tracer.capture_lambda_handler(handler, capture_response=False)


lambda_handler = _traced(_handle)
