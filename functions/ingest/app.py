"""IngestFunction: API Gateway HTTP API (payload v2) → verified, mapped, claimed, enqueued.

Routes: ``GET|POST /webhooks/{source}/{account}``. This module only adapts the event: the
settings are read and the pipeline is assembled at import (the INIT phase, which provisioned
concurrency runs ahead of traffic; a missing variable fails the cold start with its name), and
each invocation turns the event into a request and the pipeline's response into the answer.

A plain handler rather than Powertools' ``APIGatewayHttpResolver``: with one route and two
methods the resolver adds nothing but import time (about 60 ms), and WeChat's 5-second
deadline includes the cold start.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.logging import correlation_paths

from dmhub_adapter.apigw import request_from_event, response_to_event
from dmhub_adapter.ingest.bootstrap import build_pipeline
from dmhub_adapter.observability import Telemetry
from dmhub_adapter.settings import IngestSettings

settings = IngestSettings.from_env()
telemetry = Telemetry(settings.observability)
pipeline = build_pipeline(settings, log=telemetry.logger)


def handle(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """One API Gateway v2 event in, its HTTP answer out."""
    remaining = context.get_remaining_time_in_millis() if context is not None else None
    response = pipeline.handle(request_from_event(event), remaining_ms=remaining, metrics=telemetry.sink())
    return response_to_event(response)


lambda_handler = telemetry.wrap(handle, correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
