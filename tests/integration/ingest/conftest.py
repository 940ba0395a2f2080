"""Fixtures for the ingest function: the real handler module, a test source, accounts, queues."""

from __future__ import annotations

import functools
import importlib.util
import json
import sys
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import pytest

from dmhub_adapter_tools.local.apigw_event import make_event
from dmhub_adapter_tools.local.context import LambdaContext, new_context
from dmhub_adapter_tools.local.resources import StackResources, put_secret

APP_PATH = Path(__file__).resolve().parents[3] / "functions" / "ingest" / "app.py"

ACME_MAPPING = """
source: acme
adapter: generic
verification: {scheme: none}
messages: "events || [@]"
defaults:
  identity: {type: acme-user, value: user}
rules:
  - name: ping
    when: "type == 'ping'"
    skip: pings carry no customer action
  - name: order
    when: "type == 'order'"
    event: c_acme_order
    externalId: {template: "order|{id}"}
    date: {path: at, convert: unix_seconds}
    attributes: {order_id: id}
"""


def lambda_context(remaining_ms: int = 10_000) -> LambdaContext:
    """A context as Lambda gives the ingest function, ``remaining_ms`` before its timeout."""
    return new_context("IngestFunction", timeout_seconds=remaining_ms / 1000, memory_limit_in_mb=1024)


def load_app() -> ModuleType:
    """A fresh copy of functions/ingest/app.py (functions/ is not a package)."""
    name = f"ingest_app_{uuid.uuid4().hex}"
    spec = importlib.util.spec_from_file_location(name, APP_PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: str

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Ingest:
    """The ingest function against the moto stack, with helpers to read what it left behind."""

    app: ModuleType
    stack: StackResources
    session: Any

    def invoke(
        self,
        body: bytes | str | Mapping[str, Any] = b"",
        *,
        source: str = "acme",
        account: str = "shop1",
        method: str = "POST",
        raw_query: str = "",
        headers: Mapping[str, str] | None = None,
        remaining_ms: int = 10_000,
    ) -> Response:
        if isinstance(body, Mapping):
            body = json.dumps(body)
        if isinstance(body, str):
            body = body.encode("utf-8")
        event = make_event(
            method=method,
            source=source,
            account=account,
            body=body,
            raw_query=raw_query,
            headers=headers or {"content-type": "application/json"},
            request_id=uuid.uuid4().hex,
        )
        result = self.app.lambda_handler(event, lambda_context(remaining_ms))
        return Response(result["statusCode"], result["headers"], result["body"])

    def put_account(self, source: str, account: str, secret: Mapping[str, Any] | str) -> None:
        name = f"{self.stack.secrets_prefix}/{source}/{account}"
        if isinstance(secret, str):
            client = self.session.client("secretsmanager")
            client.create_secret(Name=name, SecretString=secret)
        else:
            put_secret(self.session, name, secret)

    def drain(self, queue_url: str) -> list[dict[str, Any]]:
        """Every message on a queue (received and deleted), with parsed bodies."""
        sqs = self.session.client("sqs")
        out: list[dict[str, Any]] = []
        while True:
            batch = sqs.receive_message(
                QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0, MessageAttributeNames=["All"]
            ).get("Messages", [])
            if not batch:
                return out
            for message in batch:
                out.append({
                    "body": json.loads(message["Body"]),
                    "attributes": {k: v["StringValue"] for k, v in message.get("MessageAttributes", {}).items()},
                })
                sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])

    def events(self) -> list[dict[str, Any]]:
        return self.drain(self.stack.event_queue_url)

    def unmapped(self) -> list[dict[str, Any]]:
        return self.drain(self.stack.unmapped_queue_url)

    def claim(self, external_id: str, source: str = "acme", account: str = "shop1") -> dict[str, Any] | None:
        from dmhub_adapter.store.claims import ClaimTable, claim_key

        store = ClaimTable(self.stack.table, client=self.session.client("dynamodb"))
        return store.get(claim_key(source, account, external_id))


@functools.cache
def _session() -> Any:
    # One session for the test's own reads: a new session reloads every service model.
    return boto3.session.Session()


@pytest.fixture
def mappings_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "mappings"
    directory.mkdir()
    (directory / "acme.yaml").write_text(ACME_MAPPING, encoding="utf-8")
    monkeypatch.setenv("MAPPINGS_DIR", str(directory))
    return directory


@pytest.fixture
def ingest(aws: StackResources, mappings_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Ingest]:
    monkeypatch.setenv("CLAIM_WAIT_MS", "300")
    harness = Ingest(app=load_app(), stack=aws, session=_session())
    harness.put_account("acme", "shop1", {})
    yield harness


def order(order_id: str = "A1", user: str = "u-1", at: int = 1732780800, **extra: Any) -> dict[str, Any]:
    return {"type": "order", "id": order_id, "user": user, "at": at, **extra}


@pytest.fixture
def fake_adapter(monkeypatch: pytest.MonkeyPatch) -> Callable[[str], None]:
    """Register ``dmhub_adapter.sources.fakeauth``: an adapter whose verification outcome the
    request chooses (header ``x-fail: <status>``), to drive every refusal through the handler."""
    from dmhub_adapter import errors
    from dmhub_adapter.sources import generic

    by_status = {
        400: errors.BadRequest, 401: errors.Unauthorized, 403: errors.Forbidden,
        405: errors.MethodNotAllowed, 413: errors.PayloadTooLarge,
    }

    class FakeAuthSource(generic.GenericSource):
        def handshake(self, request: Any, account: Any) -> Any:
            from dmhub_adapter.webhook import WebhookResponse

            if request.query.get("token") != account.secret.get("token"):
                raise errors.Unauthorized("bad handshake token")
            return WebhookResponse(200, request.query.get("echo", ""))

        def receive(self, request: Any, account: Any) -> Any:
            fail = request.header("x-fail")
            if fail == "crash":
                raise RuntimeError("adapter bug with internals")
            if fail:
                raise by_status[int(fail)](f"refused with {fail}")
            return super().receive(request, account)

    module = ModuleType("dmhub_adapter.sources.fakeauth")
    module.build = FakeAuthSource  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "dmhub_adapter.sources.fakeauth", module)

    def install(directory: str) -> None:
        Path(directory, "fake.yaml").write_text(
            ACME_MAPPING.replace("source: acme", "source: fake").replace("adapter: generic", "adapter: fakeauth"),
            encoding="utf-8",
        )

    return install
