"""``dmhub-adapter console --stack NAME`` against moto_server over HTTP: the stack is created
through CloudFormation from a small template declaring the resources template.yaml outputs,
so the console finds them by DescribeStacks; metrics and alarms are CloudWatch's."""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import boto3
import httpx
import pytest
import uvicorn

from dmhub_adapter import aws as aws_clients
from dmhub_adapter_tools.cli import main
from dmhub_adapter_tools.console.app import ConsoleConfig, create_app
from dmhub_adapter_tools.console.backend import Backend
from dmhub_adapter_tools.console.target import Target, deployed_target
from tests.conftest import free_port

REGION = "eu-west-1"
TEMPLATE = {
    "AWSTemplateFormatVersion": "2010-09-09",
    "Parameters": {
        "DmHubBaseUrl": {"Type": "String", "Default": "https://api.convertlab.com"},
        "SecretsPrefix": {"Type": "String", "Default": "dmhub-adapter"},
    },
    "Resources": {
        "IdempotencyTable": {
            "Type": "AWS::DynamoDB::Table",
            "Properties": {
                "BillingMode": "PAY_PER_REQUEST",
                "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
                "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
            },
        },
        "DeadLetterQueue": {"Type": "AWS::SQS::Queue"},
        "EventQueue": {"Type": "AWS::SQS::Queue"},
        "UnmappedQueue": {"Type": "AWS::SQS::Queue"},
    },
    "Outputs": {
        "IdempotencyTableName": {"Value": {"Ref": "IdempotencyTable"}},
        "EventQueueUrl": {"Value": {"Ref": "EventQueue"}},
        "DeadLetterQueueUrl": {"Value": {"Ref": "DeadLetterQueue"}},
        "UnmappedQueueUrl": {"Value": {"Ref": "UnmappedQueue"}},
        "SecretsPrefix": {"Value": {"Ref": "SecretsPrefix"}},
    },
}


def client(service: str, endpoint: str) -> Any:
    return boto3.session.Session(region_name=REGION).client(service, endpoint_url=endpoint)


@pytest.fixture
def deployed(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A stack named dmhub-<random> with 7 deliveries, 2 failures, 3 unmapped in the last hour,
    its dead-letters alarm in ALARM and two dead letters."""
    name = "dmhub-" + secrets.token_hex(4)
    cloudformation = client("cloudformation", moto_endpoint)
    cloudformation.create_stack(StackName=name, TemplateBody=json.dumps(TEMPLATE),
                                Parameters=[{"ParameterKey": "DmHubBaseUrl", "ParameterValue": "http://127.0.0.1:9"}])
    cloudwatch = client("cloudwatch", moto_endpoint)
    dimensions = [{"Name": "service", "Value": name}]
    cloudwatch.put_metric_data(Namespace="DmhubAdapter", MetricData=[
        {"MetricName": metric, "Dimensions": dimensions, "Value": value, "Unit": "Count"}
        for metric, value in (("Delivered", 7), ("Failed", 2), ("Unmapped", 3), ("Received", 12))])
    # another stack's figures must not be counted
    cloudwatch.put_metric_data(Namespace="DmhubAdapter", MetricData=[
        {"MetricName": "Delivered", "Dimensions": [{"Name": "service", "Value": "other"}], "Value": 100}])
    cloudwatch.put_metric_alarm(AlarmName=f"{name}-dead-letters", Namespace="AWS/SQS",
                                MetricName="ApproximateNumberOfMessagesVisible", Statistic="Maximum",
                                Period=60, EvaluationPeriods=1, Threshold=0, ComparisonOperator="GreaterThanThreshold")
    cloudwatch.set_alarm_state(AlarmName=f"{name}-dead-letters", StateValue="ALARM", StateReason="2 dead letters")
    outputs = {o["OutputKey"]: o["OutputValue"]
               for o in cloudformation.describe_stacks(StackName=name)["Stacks"][0]["Outputs"]}
    sqs = client("sqs", moto_endpoint)
    for index in range(2):
        sqs.send_message(QueueUrl=outputs["DeadLetterQueueUrl"], MessageBody=json.dumps({
            "version": 1, "source": "wechat", "account": "demo", "claim_key": f"wechat#demo#k{index}",
            "identity": {"type": "wechat", "value": f"o{index}"},
            "event": {"event": "c_wechat_follow", "date": "2024-01-01T00:00:00Z", "externalId": f"k{index}"},
            "failure": {"reason": "DM Hub refused the event type", "kind": "permanent"}}))
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    aws_clients.reset_clients()
    yield name
    aws_clients.reset_clients()


def target_of(name: str, endpoint: str, monkeypatch: pytest.MonkeyPatch, *, allow_actions: bool) -> Target:
    target = deployed_target(name, region=REGION, profile=None, allow_actions=allow_actions, endpoint_url=endpoint)
    for key, value in target.environment.items():
        monkeypatch.setenv(key, value)
    aws_clients.reset_clients()
    return target


def test_resources_come_from_the_stack_outputs(deployed: str, moto_endpoint: str,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    target = target_of(deployed, moto_endpoint, monkeypatch, allow_actions=False)
    assert target.deployed and not target.allow_actions
    assert target.environment["IDEMPOTENCY_TABLE"].startswith(deployed)
    assert target.environment["DEAD_LETTER_QUEUE_URL"].startswith("http")
    assert target.environment["DMHUB_BASE_URL"] == "http://127.0.0.1:9"  # the stack's parameter
    assert target.environment["SECRETS_PREFIX"] == "dmhub-adapter"


def test_overview_reads_cloudwatch_and_the_queues(deployed: str, moto_endpoint: str,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    overview = Backend(target_of(deployed, moto_endpoint, monkeypatch, allow_actions=False)).overview()
    counts = overview["counts"]
    assert (counts["delivered"], counts["dead_lettered"], counts["unmapped"], counts["received"]) == (7, 2, 3, 12)
    assert overview["alarms"] == [{"name": f"{deployed}-dead-letters", "state": "ALARM", "reason": "2 dead letters"}]
    dlq = next(q for q in overview["queues"] if q["name"] == "dlq")
    assert dlq["visible"] == 2
    assert overview["token"].startswith("unknown")  # no DM Hub secret in this stack: said, not raised


@contextmanager
def signed_in(target: Target) -> Iterator[tuple[httpx.Client, ConsoleConfig]]:
    """The console app served by uvicorn on a free loopback port, and a client holding its cookie."""
    port = free_port()
    config = ConsoleConfig.new(port)
    server = uvicorn.Server(uvicorn.Config(create_app(Backend(target), config), host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            assert time.monotonic() < deadline, "the console did not start"
            time.sleep(0.02)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as web:
            assert web.get(f"/?token={config.access_token}").status_code == 303
            yield web, config
    finally:
        server.should_exit = True
        thread.join(10)


def test_read_only_without_allow_actions(deployed: str, moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    target = target_of(deployed, moto_endpoint, monkeypatch, allow_actions=False)
    with signed_in(target) as (web, config):
        check_read_only(web, config, target, moto_endpoint, deployed)


def check_read_only(test_client: httpx.Client, config: ConsoleConfig, target: Target, moto_endpoint: str,
                    deployed: str) -> None:
    page = test_client.get("/dlq")
    assert page.status_code == 200 and "Read-only" in page.text
    assert page.text.count('class="message"') == 2
    overview = test_client.get("/")
    assert "ALARM" in overview.text and f"stack {deployed}" in overview.text
    refused = test_client.post("/queues/dlq/act", data={"csrf": config.csrf_token, "action": "replay", "all": "1",
                                                        "id": ["x"]})
    assert refused.status_code == 403 and "--allow-actions" in refused.text
    depth = client("sqs", moto_endpoint).get_queue_attributes(
        QueueUrl=target.environment["DEAD_LETTER_QUEUE_URL"], AttributeNames=["ApproximateNumberOfMessages"])
    assert depth["Attributes"]["ApproximateNumberOfMessages"] == "2"


def test_replay_all_with_allow_actions(deployed: str, moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    target = target_of(deployed, moto_endpoint, monkeypatch, allow_actions=True)
    with signed_in(target) as (web, config):
        done = web.post("/queues/dlq/act", data={"csrf": config.csrf_token, "action": "replay-all"})
    assert done.status_code == 200 and "2 message(s) done" in done.text
    sqs = client("sqs", moto_endpoint)
    time.sleep(0.1)
    moved = sqs.receive_message(QueueUrl=target.environment["EVENT_QUEUE_URL"], MaxNumberOfMessages=10)["Messages"]
    assert len(moved) == 2
    assert all("failure" not in json.loads(m["Body"]) for m in moved)  # the failure block is stripped


def test_an_unknown_stack_is_a_clear_error(moto_endpoint: str, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["console", "--stack", "no-such-stack", "--region", REGION, "--endpoint-url", moto_endpoint,
                 "--port", "0"])
    assert code == 1
    assert "cannot describe stack 'no-such-stack'" in capsys.readouterr().err
