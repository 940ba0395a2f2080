"""The sender handler on SQS events, against the DM Hub emulator and moto_server over HTTP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from typing import Any

import boto3
import pytest

from dmhub_adapter.dmhub.client import DmhubClient
from dmhub_adapter.dmhub.token import SharedToken
from dmhub_adapter.store.tokens import TokenTable
from tests.conftest import emf
from tests.integration.sender.conftest import Context, SenderEnv, queued
from tests.sender_app import handler


def wait_until(predicate: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.005)


def test_happy_path_marks_claims_delivered_with_dmhub_ids(sender_env: SenderEnv) -> None:
    sender_env.enqueue([queued(1), queued(2, event="c_apply_card", touter="t00001")])
    response, _ = sender_env.run()
    assert response == {"batchItemFailures": []}
    events = {e["externalId"]: e for e in sender_env.dmhub.state.events()}
    assert set(events) == {"ext-1", "ext-2"}
    assert events["ext-2"]["touter"] == "t00001"
    for n in (1, 2):
        claim = sender_env.claim(n)
        assert claim["status"] == "DELIVERED"
        assert int(claim["dmhubId"]) == events[f"ext-{n}"]["id"]
    # identities were resolved to customers DM Hub now knows
    customers = {c["id"] for c in sender_env.dmhub.state.customers()}
    assert {e["customerId"] for e in events.values()} <= customers
    assert sender_env.receive() == []  # the batch was deleted
    assert sender_env.counters()["token_fetches"] == 1


def test_duplicate_messages_make_one_dmhub_event(sender_env: SenderEnv) -> None:
    sender_env.enqueue([queued(1), queued(1)])
    assert sender_env.run()[0] == {"batchItemFailures": []}
    sender_env.enqueue([queued(1)])  # a later redelivery
    assert sender_env.run()[0] == {"batchItemFailures": []}
    events = sender_env.dmhub.state.events()
    assert len(events) == 1 and events[0]["externalId"] == "ext-1"
    counters = sender_env.counters()
    assert counters["events_created"] == 1 and counters["events_updated"] == 2
    assert sender_env.claim(1)["dmhubId"] == str(events[0]["id"])


def test_token_revoked_mid_batch_causes_one_refresh_and_all_are_delivered(sender_env: SenderEnv) -> None:
    sender_env.enqueue([queued(n, customer_id=7) for n in range(10)])
    sender_env.dmhub.configure(latency=0.2)
    revoked = threading.Event()

    def revoke_when_posting() -> None:
        # the emulator checks the token after its latency, so every POST now in flight fails
        wait_until(lambda: sender_env.counters()["requests"].get("events.create", 0) >= 1)
        sender_env.dmhub.revoke_token()
        revoked.set()

    thread = threading.Thread(target=revoke_when_posting)
    thread.start()
    response, _ = sender_env.run()
    thread.join()
    assert revoked.is_set()
    assert response == {"batchItemFailures": []}
    counters = sender_env.counters()
    assert counters["token_errors"] >= 1
    assert counters["token_fetches"] == 2  # the first token, and exactly one refresh
    assert len(sender_env.dmhub.state.events()) == 10
    assert all(sender_env.claim(n)["status"] == "DELIVERED" for n in range(10))


def test_twenty_concurrent_refreshes_make_one_fetch(sender_env: SenderEnv) -> None:
    table = sender_env.stack.table
    dynamodb = boto3.session.Session().client("dynamodb")
    client = DmhubClient(sender_env.dmhub.base_url)
    sender_env.dmhub.configure(latency=0.05)

    def container() -> SharedToken:
        # one SharedToken per simulated container: coordination must come from DynamoDB
        return SharedToken(
            store=TokenTable(table, dynamodb, app_id=sender_env.dmhub.app_id),
            fetch=lambda: client.fetch_token(sender_env.dmhub.app_id, sender_env.dmhub.secret),
        )

    def race(action: Any) -> list[str]:
        barrier = threading.Barrier(20)
        results: list[str] = []
        lock = threading.Lock()

        def run(token: SharedToken) -> None:
            barrier.wait()
            value = action(token)
            with lock:
                results.append(value)

        threads = [threading.Thread(target=run, args=(container(),)) for _ in range(20)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return results

    first = race(lambda token: token.get())
    assert len(first) == 20 and len(set(first)) == 1
    assert sender_env.counters()["token_fetches"] == 1

    # DM Hub refuses the token; 20 containers renew it at once: one more fetch
    sender_env.dmhub.revoke_token()
    second = race(lambda token: token.renew(first[0]))
    assert len(set(second)) == 1 and second[0] != first[0]
    assert sender_env.counters()["token_fetches"] == 2
    assert second[0] == sender_env.dmhub.state.current_token(sender_env.dmhub.app_id)
    client.close()


def test_5xx_and_429_are_retried_then_delivered(sender_env: SenderEnv) -> None:
    sender_env.enqueue([queued(1, customer_id=7), queued(2, customer_id=7)])
    sender_env.dmhub.fail_next(2, 503, endpoint="events.create")
    sender_env.dmhub.fail_next(1, 429, endpoint="events.create", retry_after=0)
    response, _ = sender_env.run()
    assert response == {"batchItemFailures": []}
    counters = sender_env.counters()
    assert counters["responses"]["503"] == 2 and counters["responses"]["429"] == 1
    assert counters["requests"]["events.create"] == 5  # 2 deliveries + 3 answered faults
    assert len(sender_env.dmhub.state.events()) == 2
    assert sender_env.claim(1)["status"] == sender_env.claim(2)["status"] == "DELIVERED"


def test_timeout_is_retried_and_externalid_prevents_a_double(sender_env: SenderEnv, monkeypatch: Any) -> None:
    monkeypatch.setenv("DMHUB_READ_TIMEOUT", "0.3")
    sender_env.enqueue([queued(1, customer_id=7)])
    runtime = handler.runtime()
    sender_env.dmhub.configure(latency=0.6)  # every call now outlasts the read timeout

    def sleep(seconds: float) -> None:
        sender_env.dmhub.configure(latency=0)  # DM Hub recovers during the backoff
        time.sleep(seconds)

    runtime.sender.sleep = sleep
    response, _ = sender_env.run()
    assert response == {"batchItemFailures": []}
    # the timed-out POST was stored by DM Hub after all; the retry updated it, not doubled it
    wait_until(lambda: sender_env.counters()["events_updated"] >= 1 or sender_env.counters()["events_created"] >= 1)
    assert len(sender_env.dmhub.state.events()) == 1
    assert sender_env.claim(1)["status"] == "DELIVERED"


def test_when_time_runs_out_records_are_left_for_sqs(sender_env: SenderEnv) -> None:
    sender_env.enqueue([queued(1, customer_id=7), queued(2, customer_id=7)])
    sender_env.dmhub.configure(error_rate=1.0, fault_endpoints=["events.create"])
    response, event = sender_env.run(Context(millis=2200))
    ids = {r["messageId"] for r in event["Records"]}
    assert {f["itemIdentifier"] for f in response["batchItemFailures"]} == ids
    assert sender_env.dead_letters() == []
    assert sender_env.dmhub.state.events() == []
    assert sender_env.counters()["requests"]["events.create"] > 2  # retried before giving up
    # nothing was deleted: SQS redelivers both after the visibility timeout
    attributes = sender_env.sqs.get_queue_attributes(
        QueueUrl=sender_env.stack.event_queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    assert sum(int(value) for value in attributes.values()) == 2
    assert sender_env.claim(1)["status"] == "QUEUED"


@pytest.mark.parametrize(("cap", "warned"), [("2", True), ("200", False)])
def test_a_batch_larger_than_the_instances_share_of_the_cap_is_reported(
    sender_env: SenderEnv, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture, cap: str, warned: bool
) -> None:
    """At a cap of 2/s over 2 instances (0.95 starts/s each), 2.8 s carry 3 requests: a batch of
    6 cannot all start, and the operator is told so (log and metric) before its tail goes back."""
    monkeypatch.setenv("DMHUB_MAX_REQUESTS_PER_SECOND", cap)
    monkeypatch.setenv("SENDER_MAX_INSTANCES", "2")
    handler.reset_runtime()
    sender_env.enqueue([queued(n, customer_id=7) for n in range(1, 7)])
    capsys.readouterr()
    caplog.clear()
    response, _ = sender_env.run(Context(millis=3000))
    metrics = [line for line in emf(capsys.readouterr().out) if "BatchesOverCapShare" in line]
    warnings = [record.__dict__ for record in caplog.records if "share of the DM Hub cap" in record.getMessage()]
    if not warned:
        assert warnings == [] and metrics == []
        assert response == {"batchItemFailures": []}
        return
    assert len(warnings) == 1
    assert {key: warnings[0][key] for key in ("records", "requests_needed", "requests_possible")} == {
        "records": 6, "requests_needed": 6, "requests_possible": 3,
    }
    assert warnings[0]["levelname"] == "WARNING"
    assert [line["BatchesOverCapShare"] for line in metrics] == [[1.0]]  # EMF: one value, 1
    assert response["batchItemFailures"]  # the tail went back to SQS, as warned


def test_validation_error_goes_to_dlq_and_the_rest_is_delivered(sender_env: SenderEnv) -> None:
    sender_env.dmhub.configure(event_types=["c_order_paid"])
    sender_env.enqueue([queued(1), queued(2, event="c_not_registered"), queued(3)])
    response, _ = sender_env.run()
    assert response == {"batchItemFailures": []}
    (dead,) = sender_env.dead_letters()
    assert dead["event"]["externalId"] == "ext-2" and dead["claim_key"] == "acme#shop1#ext-2"
    failure = dead["failure"]
    assert failure["kind"] == "validation" and failure["fieldErrors"]
    assert any(e.get("fieldName") == "event" for e in failure["fieldErrors"])
    assert sender_env.claim(2)["status"] == "FAILED" and "validation" in sender_env.claim(2)["reason"]
    assert sender_env.claim(1)["status"] == sender_env.claim(3)["status"] == "DELIVERED"
    assert sender_env.receive() == []  # the refused message was deleted from the EventQueue too


def test_identity_is_created_once_under_concurrency(sender_env: SenderEnv) -> None:
    sender_env.dmhub.configure(latency=0.05)
    sender_env.enqueue([queued(n, identity="same-buyer") for n in range(10)])
    response, _ = sender_env.run()
    assert response == {"batchItemFailures": []}
    counters = sender_env.counters()
    assert counters["customers_created"] == 1
    assert counters["customers_updated"] == 0
    events = sender_env.dmhub.state.events()
    assert len(events) == 10 and len({e["customerId"] for e in events}) == 1


def test_unknown_identity_not_creatable_is_dead_lettered(sender_env: SenderEnv) -> None:
    sender_env.enqueue([queued(1, create=False)])
    assert sender_env.run()[0] == {"batchItemFailures": []}
    (dead,) = sender_env.dead_letters()
    assert dead["failure"]["kind"] == "unknown_identity"
    assert sender_env.counters()["customers_created"] == 0


def test_missing_dmhub_secret_leaves_the_batch_to_sqs(sender_env: SenderEnv, monkeypatch: Any) -> None:
    monkeypatch.setenv("SECRETS_PREFIX", "nothing-here")
    handler.reset_runtime()
    sender_env.enqueue([queued(1)])
    response, event = sender_env.run()
    assert response == {"batchItemFailures": [{"itemIdentifier": event["Records"][0]["messageId"]}]}


def test_sample_sqs_events_run_through_the_handler(sender_env: SenderEnv) -> None:
    from tests.conftest import EVENTS_DIR

    batch = json.loads((EVENTS_DIR / "sqs-batch.json").read_text())
    assert handler.lambda_handler(batch, Context()) == {"batchItemFailures": []}
    events = {e["source"]: e for e in sender_env.dmhub.state.events()}
    assert set(events) == {"wechat", "taobao"}
    assert events["taobao"]["order_amount"] == 199.0 and events["taobao"]["event"] == "c_order_paid"
    assert sender_env.claims.get(json.loads(batch["Records"][0]["body"])["claim_key"])["status"] == "DELIVERED"

    failures = json.loads((EVENTS_DIR / "sqs-permanent-failures.json").read_text())
    assert handler.lambda_handler(failures, Context()) == {"batchItemFailures": []}
    kinds = sorted(d["failure"]["kind"] for d in sender_env.dead_letters())
    assert kinds == ["malformed", "unknown_identity"]


def test_the_function_entry_point_loads_like_lambda_and_delivers(sender_env: SenderEnv) -> None:
    from dmhub_adapter_tools.local.handlers import load_handler
    from tests.conftest import ROOT

    lambda_handler = load_handler(ROOT / "functions", "sender")
    sender_env.enqueue([queued(1, customer_id=3)])
    messages = sender_env.receive()
    from dmhub_adapter.sender.events import sqs_event_from_messages

    assert lambda_handler(sqs_event_from_messages(messages), Context()) == {"batchItemFailures": []}
    assert sender_env.claim(1)["status"] == "DELIVERED"


def test_disabled_metrics_do_not_pile_up_across_invocations(
    sender_env: SenderEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.conftest import EVENTS_DIR

    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")  # as the local stack runs it
    batch = json.loads((EVENTS_DIR / "sqs-batch.json").read_text())
    for _ in range(2):
        assert handler.lambda_handler(batch, Context()) == {"batchItemFailures": []}
    _, metrics = handler.powertools()
    assert metrics.metric_set == {}


_FRESH_SENDER = """
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("app", sys.argv[1])
app = importlib.util.module_from_spec(spec)
spec.loader.exec_module(app)

class Context:
    function_name = "SenderFunction"
    function_version = "$LATEST"
    invoked_function_arn = "arn:aws:lambda:eu-west-1:123456789012:function:SenderFunction"
    memory_limit_in_mb = 512
    aws_request_id = "fresh-interpreter"
    log_group_name = log_stream_name = "local"
    def get_remaining_time_in_millis(self):
        return 30_000

response = app.lambda_handler(json.loads(sys.stdin.read()), Context())
print(json.dumps({"response": response, "pydantic": sorted(m for m in sys.modules if m.startswith("pydantic"))}))
"""


@pytest.mark.parametrize(
    "mode", [{}, {"DMHUB_EVENT_ENDPOINT": "collector"}, {"DMHUB_API": "v2"}], ids=["customerevents", "collector", "v2"]
)
def test_a_cold_sender_delivers_its_first_batch_without_importing_pydantic(
    sender_env: SenderEnv, mode: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sender's whole first batch in a fresh interpreter — settings, secrets, token, identity
    resolution, DM Hub's answer, the claim — reads the queue's JSON without pydantic, whose
    import and first model would cost its cold start about 110 ms; in each of DM Hub's modes."""
    for name, value in mode.items():
        monkeypatch.setenv(name, value)
    sender_env.enqueue([queued(1), queued(2, customer_id=7, event="c_order_paid", touter="t1")])
    messages = sender_env.receive()
    assert len(messages) == 2
    from dmhub_adapter.sender.events import sqs_event_from_messages
    from tests.conftest import ROOT

    done = subprocess.run(
        [sys.executable, "-c", _FRESH_SENDER, str(ROOT / "functions" / "sender" / "app.py")],
        input=json.dumps(sqs_event_from_messages(messages)), capture_output=True, text=True, timeout=60,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "layers" / "shared"), *sys.path])},
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["response"] == {"batchItemFailures": []}
    assert result["pydantic"] == []
    events = {e["externalId"]: e for e in sender_env.dmhub.state.events()}
    assert set(events) == {"ext-1", "ext-2"}
    assert sender_env.claim(1)["status"] == sender_env.claim(2)["status"] == "DELIVERED"
