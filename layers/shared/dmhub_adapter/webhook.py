"""The HTTP request and response as every part of the ingest sees them.

Neutral ground: the API Gateway adapter (:mod:`dmhub_adapter.apigw`) builds these from a v2
event, source adapters read and answer them, and the pipeline passes them along. Nothing here
imports another module of the package, so every layer may depend on it without a cycle.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from dmhub_adapter.records import field, record


@record(frozen=True)
class WebhookRequest:
    """One HTTP request as the ingest sees it (built from an API Gateway v2 event)."""

    method: str
    source: str
    account: str
    body: bytes = b""
    query: Mapping[str, str] = field(default_factory=dict)  # first value per name, URL-decoded
    raw_query: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)  # lower-case names
    path: str = ""
    received_at: float = 0.0  # epoch seconds
    request_id: str | None = None

    def header(self, name: str, default: str | None = None) -> str | None:
        """The value of header ``name`` (any case), or ``default``."""
        return self.headers.get(name.lower(), default)

    @property
    def content_type(self) -> str:
        """The Content-Type header, lower-cased (empty when absent)."""
        return (self.header("content-type") or "").lower()

    @property
    def charset(self) -> str:
        """The body's declared charset (``utf-8`` when none is declared)."""
        for part in self.content_type.split(";")[1:]:
            key, _, value = part.strip().partition("=")
            if key == "charset" and value:
                return value.strip().strip('"')
        return "utf-8"


@record
class WebhookResponse:
    """What a source answers the platform: status, body text, content type and extra headers."""

    status: int
    body: str = ""
    content_type: str = "text/plain; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)


def json_response(status: int, body: Mapping[str, Any]) -> WebhookResponse:
    """A JSON answer with compact separators and non-ASCII kept as is.

    Example::

        json_response(401, {"error": "bad_signature", "message": "..."})
    """
    return WebhookResponse(
        status=status,
        body=json.dumps(body, ensure_ascii=False, separators=(",", ":")),
        content_type="application/json",
    )
