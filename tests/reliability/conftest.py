"""The whole flow for reliability tests: the real ingest and sender handlers (loaded by path),
moto_server over HTTP (fixture ``aws``) and the DM Hub emulator over HTTP on 127.0.0.1."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest

from dmhub_adapter import aws as aws_clients
from dmhub_adapter.secrets import clear_credentials_cache
from dmhub_adapter.sender.events import sqs_event_from_messages
from dmhub_adapter.store.claims import ClaimTable, claim_key
from dmhub_adapter_tools.emulator.server import EmulatorServer
from dmhub_adapter_tools.local.accounts import load_accounts
from dmhub_adapter_tools.local.apigw_event import make_event
from dmhub_adapter_tools.local.context import LambdaContext, new_context
from dmhub_adapter_tools.local.handlers import load_handler
from dmhub_adapter_tools.local.resources import StackResources, put_accounts
from dmhub_adapter_tools.local.samples import SampleRequest, build_sample
from tests.sender_app import handler as sender_module

FUNCTIONS = Path(__file__).resolve().parents[2] / "functions"
WECHAT_SECRET = {"token": "pamtest", "encodingAesKey": "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG",
                 "appId": "wxb11529c136998cb6"}
TAOBAO_SECRET = {"appKey": "12345678", "appSecret": "helloworld"}


class Crash(BaseException):
    """A process dying mid-invocation: nothing in the handlers may catch it."""


def lambda_context(remaining_ms: int = 10_000) -> LambdaContext:
    return new_context("reliability", timeout_seconds=remaining_ms / 1000)


def taobao_paid(tid: int) -> SampleRequest:
    return build_sample("taobao-paid", TAOBAO_SECRET, tid=tid)


def wechat_follow(openid: str) -> SampleRequest:
    return build_sample("wechat-follow", WECHAT_SECRET, openid=openid)


#: the three ways to DM Hub the flow runs in: (DMHUB_API, DMHUB_EVENT_ENDPOINT)
MODES = {
    "v1-customerevents": ("v1", "customerevents"),
    "v1-collector": ("v1", "collector"),
    "v2": ("v2", "customerevents"),
}
#: the emulator endpoint that receives the events in each mode
EVENT_ENDPOINTS = {"v1-customerevents": "events.create", "v1-collector": "collector.batch", "v2": "v2.events.create"}


@dataclass
class Flow:
    stack: StackResources
    dmhub: EmulatorServer
    ingest: Callable[[dict[str, Any], Any], Any]
    sender: Callable[[dict[str, Any], Any], Any]
    sqs: Any
    claims: ClaimTable
    mode: str = "v1-customerevents"
    responses: list[dict[str, Any]] = field(default_factory=list)

    @property
    def event_endpoint(self) -> str:
        """The emulator endpoint events go to in this mode (for faults and counters)."""
        return EVENT_ENDPOINTS[self.mode]

    @property
    def collector(self) -> bool:
        return self.mode == "v1-collector"

    # -- ingest ------------------------------------------------------------------------------

    def post(self, sample: SampleRequest) -> int:
        event = make_event(method=sample.method, source=sample.source, account=sample.account, body=sample.body,
                           raw_query=sample.raw_query, headers=sample.headers, request_id=uuid.uuid4().hex)
        result = self.ingest(event, lambda_context())
        return int(result["statusCode"])

    # -- sender ------------------------------------------------------------------------------

    def receive(self, url: str | None = None, limit: int = 10, wait: int = 0,
                visibility: int | None = None) -> list[dict[str, Any]]:
        extra = {} if visibility is None else {"VisibilityTimeout": visibility}
        got = self.sqs.receive_message(QueueUrl=url or self.stack.event_queue_url, MaxNumberOfMessages=limit,
                                       AttributeNames=["All"], MessageAttributeNames=["All"], WaitTimeSeconds=wait,
                                       **extra)
        return list(got.get("Messages", []))

    def run_sender(self, messages: list[dict[str, Any]]) -> dict[str, Any]:
        """One invocation as the event source mapping makes it: delete what succeeded."""
        response: dict[str, Any] = self.sender(sqs_event_from_messages(messages), lambda_context(30_000))
        failed = {f["itemIdentifier"] for f in response["batchItemFailures"]}
        for message in messages:
            if message["MessageId"] not in failed:
                self.sqs.delete_message(QueueUrl=self.stack.event_queue_url, ReceiptHandle=message["ReceiptHandle"])
        self.responses.append(response)
        return response

    def receive_up_to(self, count: int, visibility: int | None = None) -> list[dict[str, Any]]:
        """Up to ``count`` visible messages (several receives: SQS hands out 10 at most), as an
        event source mapping with a batch size above 10 and a batching window gathers them.
        A big batch takes longer than the test queue's 2 s visibility: give it its own."""
        messages: list[dict[str, Any]] = []
        while len(messages) < count:
            got = self.receive(limit=min(10, count - len(messages)), visibility=visibility)
            if not got:
                break
            messages.extend(got)
        return messages

    def drain(self, timeout: float = 20.0, settle: float = 0.0, batch: int = 10) -> None:
        """Run the sender until the EventQueue is empty (in flight included), ``batch`` records
        per invocation."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            messages = self.receive_up_to(batch, visibility=30 if batch > 10 else None)
            if messages:
                self.run_sender(messages)
                continue
            attributes = self.sqs.get_queue_attributes(
                QueueUrl=self.stack.event_queue_url,
                AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
            )["Attributes"]
            if all(int(v) == 0 for v in attributes.values()):
                return
            time.sleep(0.05)  # messages in flight become visible after their timeout
        raise AssertionError("the EventQueue did not drain")

    def dead_letters(self) -> list[dict[str, Any]]:
        bodies: list[dict[str, Any]] = []
        while messages := self.receive(self.stack.dead_letter_queue_url):
            for message in messages:
                bodies.append(json.loads(message["Body"]))
                self.sqs.delete_message(QueueUrl=self.stack.dead_letter_queue_url,
                                        ReceiptHandle=message["ReceiptHandle"])
        return bodies

    # -- DM Hub ------------------------------------------------------------------------------

    def events_by_external_id(self) -> dict[str, list[dict[str, Any]]]:
        """Stored events by the mapping's key (DM Hub holds it as ``{source}:{account}:{key}``)."""
        found: dict[str, list[dict[str, Any]]] = {}
        for event in self.dmhub.state.events():
            found.setdefault(event["externalId"].split(":", 2)[-1], []).append(event)
        return found

    def assert_exactly_once(self, *external_ids: str) -> None:
        stored = self.events_by_external_id()
        for external in external_ids:
            assert len(stored.get(external, [])) == 1, f"{external}: {len(stored.get(external, []))} events"
        assert self.dmhub.state.counters()["events_created"] == len(stored)

    def claim_status(self, source: str, external_id: str) -> str | None:
        item = self.claims.get(claim_key(source, "demo", external_id))
        return None if item is None else str(item["status"])


def taobao_external_id(tid: int) -> str:
    return f"taobao_trade_TradeBuyerPay|{tid}|{tid}"


@pytest.fixture(params=sorted(MODES))
def flow(aws: StackResources, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> Iterator[Flow]:
    """The whole flow in one of the three modes, against the emulator with its current rules."""
    session = boto3.session.Session()
    api, endpoint = MODES[request.param]
    monkeypatch.setenv("DMHUB_API", api)
    monkeypatch.setenv("DMHUB_EVENT_ENDPOINT", endpoint)
    with EmulatorServer(port=0) as dmhub:
        put_accounts(session, aws.secrets_prefix, {"appId": dmhub.app_id, "secret": dmhub.secret},
                     load_accounts(None).accounts)
        monkeypatch.setenv("DMHUB_BASE_URL", dmhub.base_url)
        monkeypatch.setenv("SENDER_SAFETY_MARGIN_MS", "200")
        monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
        monkeypatch.setenv("CLAIM_WAIT_MS", "200")
        clear_credentials_cache()
        sender_module.reset_runtime()
        aws_clients.reset_clients()
        ingest = load_handler(FUNCTIONS, "ingest")
        sender = sender_module.lambda_handler  # loads functions/sender/app.py afresh after each reset
        yield Flow(aws, dmhub, ingest, sender, session.client("sqs"), ClaimTable(aws.table, session.client("dynamodb")),
                   mode=request.param)
        sender_module.reset_runtime()
        clear_credentials_cache()
