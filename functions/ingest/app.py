"""IngestFunction: API Gateway HTTP API (payload v2) → verified, mapped, claimed, enqueued."""

from __future__ import annotations

from typing import Any


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    from dmhub_adapter.apigw import json_response, response_to_event

    return response_to_event(json_response(503, {"error": "unavailable", "message": "ingest not configured"}))
