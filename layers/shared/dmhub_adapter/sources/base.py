"""What every source adapter implements, and the request/response shapes it works on.

A source adapter owns one platform dialect: how a request is verified, how its body becomes
messages, and how the platform wants to be answered. The ingest pipeline is generic over it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from dmhub_adapter.errors import WebhookError
from dmhub_adapter.mapping.plan import MappingPlan
from dmhub_adapter.records import field, record
from dmhub_adapter.store.signature_binding import Binder
from dmhub_adapter.webhook import WebhookRequest, WebhookResponse


@record(frozen=True)
class Account:
    """One configured account of a source: its mapping and its secret (None in dry runs).

    ``signature_binding`` is where a source that must bind a signature to the first body it
    came with (WeChat) records it: the ingest passes the table; without one (dry runs,
    replays) such a source keeps bindings in memory."""

    source: str
    name: str
    mapping: MappingPlan
    secret: Mapping[str, Any] | None = None
    signature_binding: Binder | None = None


@record(frozen=True)
class MessageRejection:
    """A message inside an authentic payload that cannot be accepted (e.g. missing topic)."""

    index: int
    reason: str


@record
class Inbound:
    """An authentic payload, parsed into messages ready for the mapping engine."""

    messages: list[dict[str, Any]]
    #: messages refused individually inside an otherwise authentic payload
    rejected: list[MessageRejection] = field(default_factory=list)
    #: the authentic payload in clear text (decrypted where it was encrypted), kept for replay
    payload: bytes = b""
    #: what a replay needs to parse ``payload`` again (e.g. content type)
    payload_type: str = "application/octet-stream"
    context: dict[str, Any] = field(default_factory=dict)


@record(frozen=True)
class RequestNames:
    """The headers (lower case) and query parameters besides the body that a source's mapping
    can read (routing, ``requestValues``) or its verification names, so an unmapped record keeps
    them and a replay sees the request as the live delivery did. Never secrets or signatures:
    :mod:`dmhub_adapter.ingest.unmapped` drops those names whatever a source lists."""

    headers: frozenset[str] = frozenset()
    query: frozenset[str] = frozenset()


@record(frozen=True)
class SignedParts:
    """A request as the platform would send it, signed by a tool (``dmhub-adapter send``)."""

    body: bytes
    headers: dict[str, str]
    raw_query: str


@record
class IngestOutcome:
    """What the pipeline did with an inbound payload; sources shape their reply from it."""

    enqueued: int = 0
    duplicates: int = 0
    skipped: int = 0
    unmapped: int = 0
    rejected: list[MessageRejection] = field(default_factory=list)


class Source(Protocol):
    """A platform dialect. Implementations live in ``dmhub_adapter.sources.<adapter>``."""

    name: str
    mapping: MappingPlan

    def handshake(self, request: WebhookRequest, account: Account) -> WebhookResponse:
        """Answer a GET (URL verification); raise :class:`WebhookError` when it is not valid."""
        ...

    def receive(self, request: WebhookRequest, account: Account) -> Inbound:
        """Verify (signature, timestamp, decryption) and parse a POST; raise :class:`WebhookError`."""
        ...

    def parse_unverified(self, request: WebhookRequest, account: Account) -> Inbound:
        """Parse without checking signatures (dry runs, replays); decrypts when a secret is given."""
        ...

    def request_names(self) -> RequestNames:
        """The headers and query parameters an unmapped record keeps for a faithful replay."""
        ...

    def reply(self, request: WebhookRequest, outcome: IngestOutcome) -> WebhookResponse:
        """The platform's success dialect (e.g. WeChat ``success``)."""
        ...

    def error_reply(self, request: WebhookRequest | None, error: WebhookError) -> WebhookResponse:
        """The platform's dialect for a refused request (a JSON error unless it wants otherwise)."""
        ...
