"""replay / events / trace / accounts commands against moto_server and the DM Hub emulator."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest

from dmhub_adapter.queue import OutgoingMessage, send_messages
from dmhub_adapter_tools.cli import main
from tests.integration.sender.conftest import SenderEnv, queued


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, Any, str]:
    capsys.readouterr()  # drop what earlier steps printed (the sender's metrics)
    code = main(list(argv))
    out, err = capsys.readouterr()
    try:
        data = json.loads(out) if out.strip() else None
    except ValueError:
        data = out
    return code, data, err


def test_a_validation_failure_is_fixed_and_replayed_from_the_dlq(
    sender_env: SenderEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    sender_env.dmhub.configure(event_types=["c_order_paid"])
    sender_env.enqueue([queued(1, event="c_new_type")])
    sender_env.run()
    send_messages(
        sender_env.stack.dead_letter_queue_url, [OutgoingMessage(body={"raw": "garbage"})], client=sender_env.sqs
    )

    code, summary, err = cli(capsys, "replay", "dlq", "--dry-run", "--wait-seconds", "0")
    assert code == 1  # the malformed one cannot be replayed
    assert summary["dryRun"] and summary["seen"] == 2 and summary["replayed"] == 0
    (would,) = summary["wouldReplay"]
    assert would["claimKey"] == "acme#shop1#ext-1" and "validation" in would["failure"]
    assert "replay dlq" in err
    assert sender_env.receive() == []  # nothing moved

    sender_env.dmhub.configure(event_types=["c_order_paid", "c_new_type"])  # the fix
    code, summary, _ = cli(capsys, "replay", "dlq", "--wait-seconds", "0")
    assert code == 1 and summary["replayed"] == 1 and summary["kept"] == 1
    assert "not replayable" in summary["keptMessages"][0]["reason"]
    (moved,) = sender_env.receive()
    body = json.loads(moved["Body"])
    assert "failure" not in body and body["event"]["externalId"] == "ext-1"
    assert moved["MessageAttributes"]["source"]["StringValue"] == "acme"
    sender_env.sqs.change_message_visibility(
        QueueUrl=sender_env.stack.event_queue_url, ReceiptHandle=moved["ReceiptHandle"], VisibilityTimeout=0
    )
    assert sender_env.run()[0] == {"batchItemFailures": []}
    assert sender_env.claim(1)["status"] == "DELIVERED"
    # the malformed message is still on the DLQ and visible again
    assert [d.get("raw") for d in sender_env.dead_letters()] == ["garbage"]


def test_replay_dlq_honours_the_limit(sender_env: SenderEnv, capsys: pytest.CaptureFixture[str]) -> None:
    send_messages(
        sender_env.stack.dead_letter_queue_url,
        [OutgoingMessage(body=queued(n, customer_id=3)) for n in range(5)],
        client=sender_env.sqs,
    )
    code, summary, _ = cli(capsys, "replay", "dlq", "--limit", "3", "--wait-seconds", "0")
    assert code == 0 and summary["replayed"] == 3
    assert len(sender_env.receive()) == 3
    assert len(sender_env.dead_letters()) == 2


ACME = """
source: acme
adapter: generic
verification: {scheme: none}
messages: "events || [@]"
defaults:
  identity: {type: acme-user, value: user}
rules:
  - name: order
    when: "type == 'order'"
    event: c_acme_order
    externalId: {template: "order|{id}"}
    date: {path: at, convert: unix_seconds}
"""


def test_replay_unmapped_remaps_with_the_current_config(
    sender_env: SenderEnv, capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "acme.yaml").write_text(ACME)
    monkeypatch.setenv("MAPPINGS_DIR", str(tmp_path))
    payloads = [
        {"type": "order", "id": "A1", "user": "u-1", "at": 1732780800},
        {"type": "refund", "id": "R1", "user": "u-1"},
    ]
    records = [
        {
            "version": 1,
            "source": "acme",
            "account": "shop1",
            "payload": json.dumps(p),
            "payload_encoding": "utf-8",
            "payload_type": "application/json",
            "headers": {"content-type": "application/json"},
            "reasons": ["message #1: no rule matched this message"],
            "received_at": 1732780800.0,
            "request_id": f"r{n}",
        }
        for n, p in enumerate(payloads)
    ]
    send_messages(
        sender_env.stack.unmapped_queue_url, [OutgoingMessage(body=r) for r in records], client=sender_env.sqs
    )

    code, summary, _ = cli(capsys, "replay", "unmapped", "--wait-seconds", "0")
    assert code == 1 and summary["replayed"] == 1 and summary["kept"] == 1
    assert "still unmapped" in summary["keptMessages"][0]["reason"]
    (event,) = sender_env.receive()
    assert json.loads(event["Body"])["event"]["externalId"] == "acme:shop1:order|A1"
    left = sender_env.receive(sender_env.stack.unmapped_queue_url)
    assert [json.loads(m["Body"])["request_id"] for m in left] == ["r1"]


def test_events_get_and_query_use_the_shared_token(sender_env: SenderEnv, capsys: pytest.CaptureFixture[str]) -> None:
    sender_env.enqueue([queued(1, customer_id=5), queued(2, customer_id=5, event="c_other")])
    sender_env.run()
    ids = {e["externalId"]: e["id"] for e in sender_env.dmhub.state.events()}

    code, event, _ = cli(capsys, "events", "get", str(ids["ext-1"]))
    assert code == 0 and event["externalId"] == "ext-1" and event["customerId"] == 5

    code, events, _ = cli(capsys, "events", "query", "--customer-id", "5", "--event", "c_order_paid,c_other",
                          "--max", "10", "--sidx", "lastUpdated", "--sord", "desc")
    assert code == 0 and {e["externalId"] for e in events} == {"ext-1", "ext-2"}
    assert sender_env.counters()["token_fetches"] == 1  # no token of its own: the senders stay valid

    code, _, err = cli(capsys, "events", "get", "999999")
    assert code == 1 and "http 500" in err
    code, _, err = cli(capsys, "events", "query", "--max", "1001")
    assert code == 1 and "--max" in err


def test_events_with_credentials_from_the_environment(
    sender_env: SenderEnv, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("IDEMPOTENCY_TABLE")
    monkeypatch.setenv("SECRETS_PREFIX", "absent")
    monkeypatch.setenv("DMHUB_APP_ID", sender_env.dmhub.app_id)
    monkeypatch.setenv("DMHUB_SECRET", sender_env.dmhub.secret)
    code, events, _ = cli(capsys, "events", "query")
    assert code == 0 and events == []
    monkeypatch.setenv("DMHUB_SECRET", "wrong")
    code, _, err = cli(capsys, "events", "query")
    assert code == 1 and "credentials" in err and "wrong" not in err


def test_trace_shows_claim_and_dmhub_event(sender_env: SenderEnv, capsys: pytest.CaptureFixture[str]) -> None:
    sender_env.enqueue([queued(1, customer_id=5)])
    code, report, _ = cli(capsys, "trace", "acme", "shop1", "ext-1", "--no-dmhub")
    assert code == 0 and report["claim"]["status"] == "QUEUED"
    assert report["claim"]["queuedAt"].endswith("Z") and "dmhubEvent" not in report

    sender_env.run()
    code, report, _ = cli(capsys, "trace", "acme", "shop1", "ext-1")
    assert report["claim"]["status"] == "DELIVERED"
    assert report["dmhubEvent"]["externalId"] == "ext-1"
    assert report["dmhubEvent"]["id"] == int(report["claim"]["dmhubId"])

    code, report, _ = cli(capsys, "trace", "acme", "shop1", "nope")
    assert code == 1 and report["claim"] is None


def test_accounts_put_writes_and_updates_secrets(
    sender_env: SenderEnv, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    secrets = boto3.session.Session().client("secretsmanager")
    good = tmp_path / "wechat.json"
    good.write_text(json.dumps({"token": "t", "encodingAesKey": "a" * 43, "appId": "wx1"}))
    code, out, _ = cli(capsys, "accounts", "put", "wechat", "main", "--from-json", str(good))
    assert code == 0 and out["secret"] == "dmhub-adapter/wechat/main"
    assert out["keys"] == ["appId", "encodingAesKey", "token"] and out["endpoint"].endswith("(eu-west-1)")
    good.write_text(json.dumps({"token": "t2"}))
    assert cli(capsys, "accounts", "put", "wechat", "main", "--from-json", str(good))[0] == 0
    value = json.loads(secrets.get_secret_value(SecretId="dmhub-adapter/wechat/main")["SecretString"])
    assert value == {"token": "t2"}

    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"token": "t", "encodingAesKey": "short"}))
    code, _, err = cli(capsys, "accounts", "put", "wechat", "main", "--from-json", str(bad))
    assert code == 1 and "43" in err

    dmhub = tmp_path / "dmhub.json"
    dmhub.write_text(json.dumps({"appId": "new-app", "secret": "s3cret"}))
    code, out, _ = cli(capsys, "accounts", "put", "dmhub", "--from-json", str(dmhub))
    assert code == 0 and out["secret"] == "dmhub-adapter/dmhub" and "s3cret" not in json.dumps(out)
    code, _, err = cli(capsys, "accounts", "put", "dmhub", "extra", "--from-json", str(dmhub))
    assert code == 1
    code, _, err = cli(capsys, "accounts", "put", "taobao", "--from-json", str(dmhub))
    assert code == 1 and "ACCOUNT" in err
