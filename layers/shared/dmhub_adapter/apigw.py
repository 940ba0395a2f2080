"""API Gateway HTTP API (payload format 2.0) events ⇄ :class:`WebhookRequest`/responses."""

from __future__ import annotations

import base64
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl

from dmhub_adapter.webhook import WebhookRequest, WebhookResponse


def is_apigw_v2_event(data: Any) -> bool:
    """Whether ``data`` is an API Gateway HTTP API (payload format 2.0) event."""
    return isinstance(data, dict) and data.get("version") == "2.0" and "requestContext" in data


def request_from_event(event: Mapping[str, Any]) -> WebhookRequest:
    """Build the request from a v2 event: raw body bytes (base64-decoded when flagged), the
    raw query string (so signatures see exactly what was sent), lower-cased headers."""
    context = event.get("requestContext") or {}
    http = context.get("http") or {}
    params = event.get("pathParameters") or {}
    raw_body = event.get("body") or ""
    if event.get("isBase64Encoded"):
        try:
            body = base64.b64decode(raw_body, validate=True)
        except ValueError:
            body = b""
    else:
        body = raw_body.encode("utf-8")
    raw_query = event.get("rawQueryString") or ""
    query: dict[str, str] = {}
    for name, value in parse_qsl(raw_query, keep_blank_values=True):
        query.setdefault(name, value)
    if not raw_query and event.get("queryStringParameters"):
        query = {k: str(v).split(",")[0] for k, v in event["queryStringParameters"].items()}
    headers = {str(k).lower(): str(v) for k, v in (event.get("headers") or {}).items()}
    epoch_ms = context.get("timeEpoch")
    return WebhookRequest(
        method=str(http.get("method") or "POST").upper(),
        source=str(params.get("source") or _source_from_route(context)),
        account=str(params.get("account") or ""),
        body=body,
        query=query,
        raw_query=raw_query,
        headers=headers,
        path=str(event.get("rawPath") or http.get("path") or ""),
        received_at=(epoch_ms / 1000.0) if isinstance(epoch_ms, (int, float)) else time.time(),
        request_id=context.get("requestId"),
    )


def _source_from_route(context: dict[str, Any]) -> str:
    """The source named literally by the route (``POST /webhooks/wechat/{account}``): sources
    with their own throttle have routes without a ``{source}`` parameter."""
    parts = str(context.get("routeKey") or "").split(" ", 1)[-1].split("/")
    if len(parts) == 4 and parts[1] == "webhooks" and not parts[2].startswith("{"):
        return parts[2]
    return ""


def response_to_event(response: WebhookResponse) -> dict[str, Any]:
    """The v2 proxy answer for ``response`` (status, content type and extra headers, body as text)."""
    return {
        "statusCode": response.status,
        "headers": {"Content-Type": response.content_type, **response.headers},
        "body": response.body,
        "isBase64Encoded": False,
    }
