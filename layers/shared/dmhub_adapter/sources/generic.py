"""The generic adapter: a source defined by its mapping config alone (JSON payloads).

First version: JSON bodies, split into messages by the config's ``messages`` expression,
success answered with JSON. Verification schemes as config come with the config-sources work.
"""

from __future__ import annotations

import json
from typing import Any

from dmhub_adapter.apigw import json_response
from dmhub_adapter.errors import BadRequest, MethodNotAllowed, WebhookError
from dmhub_adapter.mapping.config import MappingFile
from dmhub_adapter.mapping.engine import MappingError, split_messages
from dmhub_adapter.sources.base import Account, Inbound, Outcome, WebhookRequest, WebhookResponse


class GenericSource:
    def __init__(self, mapping: MappingFile) -> None:
        self.name = mapping.source
        self.mapping = mapping

    def handshake(self, request: WebhookRequest, account: Account) -> WebhookResponse:
        raise MethodNotAllowed(f"source {self.name!r} has no GET handshake")

    def receive(self, request: WebhookRequest, account: Account) -> Inbound:
        return self.parse_unverified(request, account)

    def parse_unverified(self, request: WebhookRequest, account: Account) -> Inbound:
        try:
            payload = json.loads(request.body.decode(request.charset))
        except (UnicodeDecodeError, LookupError, ValueError) as exc:
            raise BadRequest(f"body is not valid JSON: {exc}") from exc
        try:
            messages = split_messages(self.mapping, payload)
        except MappingError as exc:
            raise BadRequest(str(exc)) from exc
        return Inbound(messages=messages, payload=request.body, payload_type="application/json")

    def reply(self, request: WebhookRequest, outcome: Outcome) -> WebhookResponse:
        body: dict[str, Any] = {"success": True}
        return json_response(200, body)

    def error_reply(self, request: WebhookRequest | None, error: WebhookError) -> WebhookResponse:
        return json_response(error.status, error.to_body())


def build(mapping: MappingFile) -> GenericSource:
    return GenericSource(mapping)
