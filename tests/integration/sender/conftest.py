"""The sender against the DM Hub emulator (HTTP on 127.0.0.1) and moto_server (HTTP)."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import boto3
import pytest

from dmhub_adapter.model.customer_event import QueuedEvent
from dmhub_adapter.queue import OutgoingMessage, send_messages
from dmhub_adapter.secrets import clear_credentials_cache
from dmhub_adapter.sender.events import sqs_event_from_messages
from dmhub_adapter.store.claims import ClaimTable, claim_key
from dmhub_adapter_tools.emulator.server import EmulatorServer
from dmhub_adapter_tools.local.context import LambdaContext, new_context
from dmhub_adapter_tools.local.resources import StackResources, put_secret
from tests.sender_app import handler


def Context(millis: int = 30_000) -> LambdaContext:
    """A context as Lambda gives the sender function, ``millis`` before its timeout."""
    return new_context("SenderFunction", timeout_seconds=millis / 1000)


def queued(
    n: int,
    *,
    event: str = "c_order_paid",
    identity: str | None = None,
    customer_id: int | None = None,
    create: bool = True,
    **extra: Any,
) -> dict[str, Any]:
    """A QueuedEvent body like the ingest produces (source acme, account shop1)."""
    ident = None if customer_id else {"type": "acme-uid", "value": identity or f"u{n}", "create": create}
    return QueuedEvent.model_validate(
        {
            "source": "acme",
            "account": "shop1",
            "claim_key": claim_key("acme", "shop1", f"ext-{n}"),
            "trace_id": f"trace-{n}",
            "rule": "order",
            "identity": ident,
            "event": {
                "event": event,
                "date": "2024-05-01T10:00:00Z",
                "externalId": f"ext-{n}",
                **({"customerId": customer_id} if customer_id else {}),
                **extra,
            },
        }
    ).model_dump(mode="json")


@dataclass
class SenderEnv:
    stack: StackResources
    dmhub: EmulatorServer
    sqs: Any
    claims: ClaimTable

    def enqueue(self, bodies: Sequence[dict[str, Any]]) -> None:
        """Claim and enqueue like the ingest does."""
        for body in bodies:
            claim = self.claims.claim(body["claim_key"])
            if claim.acquired:
                assert claim.lease is not None
                self.claims.mark_queued(body["claim_key"], claim.lease, "queued-by-test")
        send_messages(self.stack.event_queue_url, [OutgoingMessage(body=b) for b in bodies], client=self.sqs)

    def receive(self, url: str | None = None, limit: int = 10) -> list[dict[str, Any]]:
        response = self.sqs.receive_message(
            QueueUrl=url or self.stack.event_queue_url,
            MaxNumberOfMessages=limit,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
            WaitTimeSeconds=0,
        )
        return list(response.get("Messages", []))

    def run(self, context: Context | None = None, limit: int = 10) -> tuple[dict[str, Any], dict[str, Any]]:
        """Receive one batch, invoke the handler, delete what succeeded (as the event source
        mapping does); returns (handler response, the event)."""
        messages = self.receive(limit=limit)
        assert messages, "nothing to receive"
        event = sqs_event_from_messages(messages)
        response = handler.lambda_handler(event, context or Context())
        failed = {f["itemIdentifier"] for f in response["batchItemFailures"]}
        for message in messages:
            if message["MessageId"] not in failed:
                self.sqs.delete_message(QueueUrl=self.stack.event_queue_url, ReceiptHandle=message["ReceiptHandle"])
        return response, event

    def dead_letters(self) -> list[dict[str, Any]]:
        return [json.loads(m["Body"]) for m in self.receive(self.stack.dead_letter_queue_url)]

    def claim(self, n: int) -> dict[str, Any]:
        item = self.claims.get(claim_key("acme", "shop1", f"ext-{n}"))
        assert item is not None
        return item

    def counters(self) -> dict[str, Any]:
        return self.dmhub.state.counters()


@pytest.fixture
def dmhub() -> Iterator[EmulatorServer]:
    with EmulatorServer(port=0) as emulator:
        yield emulator


@pytest.fixture
def sender_env(aws: StackResources, dmhub: EmulatorServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[SenderEnv]:
    session = boto3.session.Session()
    put_secret(session, f"{aws.secrets_prefix}/dmhub", {"appId": dmhub.app_id, "secret": dmhub.secret})
    monkeypatch.setenv("DMHUB_BASE_URL", dmhub.base_url)
    monkeypatch.setenv("SENDER_SAFETY_MARGIN_MS", "200")
    clear_credentials_cache()
    handler.reset_runtime()
    yield SenderEnv(aws, dmhub, session.client("sqs"), ClaimTable(aws.table, session.client("dynamodb")))
    handler.reset_runtime()
    clear_credentials_cache()
