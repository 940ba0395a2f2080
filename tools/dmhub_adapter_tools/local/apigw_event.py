"""API Gateway HTTP API (payload v2) events as API Gateway would send them, for the local
gateway, the samples, the scripts that write ``events/`` and the tests."""

from __future__ import annotations

import base64
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl


def make_event(
    *,
    method: str,
    source: str,
    account: str,
    body: bytes = b"",
    raw_query: str = "",
    headers: Mapping[str, str] | None = None,
    request_id: str = "local",
    now_ms: int | None = None,
    stage: str = "$default",
) -> dict[str, Any]:
    """A v2 event as API Gateway would send it (used by the local gateway, tests, samples)."""
    path = f"/webhooks/{source}/{account}"
    text_like = True
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        text_like = False
        text = base64.b64encode(body).decode("ascii")
    query_params: dict[str, str] = {}
    for name, value in parse_qsl(raw_query, keep_blank_values=True):
        query_params[name] = f"{query_params[name]},{value}" if name in query_params else value
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": f"{method.upper()} /webhooks/{{source}}/{{account}}",
        "rawPath": path,
        "rawQueryString": raw_query,
        "headers": {k.lower(): v for k, v in (headers or {}).items()},
        "requestContext": {
            "accountId": "000000000000",
            "apiId": "local",
            "domainName": "localhost",
            "domainPrefix": "localhost",
            "http": {
                "method": method.upper(),
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": (headers or {}).get("user-agent", "local"),
            },
            "requestId": request_id,
            "routeKey": f"{method.upper()} /webhooks/{{source}}/{{account}}",
            "stage": stage,
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now_ms / 1000)),
            "timeEpoch": now_ms,
        },
        "pathParameters": {"source": source, "account": account},
        "body": text,
        "isBase64Encoded": not text_like,
    }
    if query_params:
        event["queryStringParameters"] = query_params
    return event
