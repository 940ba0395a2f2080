"""Create the stack's AWS resources (as template.yaml declares them) on an endpoint such as
moto_server. Shared by ``dmhub-adapter dev`` and the integration/e2e test fixtures."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from dmhub_adapter.store.lease import KEY, TTL_ATTRIBUTE


@dataclass(frozen=True)
class StackResources:
    table: str
    event_queue_url: str
    dead_letter_queue_url: str
    unmapped_queue_url: str
    secrets_prefix: str
    #: UnmappedPayloadBucket: unmapped records over the queue's size limit are stored here
    unmapped_bucket: str = ""

    def environment(self) -> dict[str, str]:
        """The functions' environment variables for these resources (brief §3)."""
        return {
            "IDEMPOTENCY_TABLE": self.table,
            "EVENT_QUEUE_URL": self.event_queue_url,
            "DEAD_LETTER_QUEUE_URL": self.dead_letter_queue_url,
            "UNMAPPED_QUEUE_URL": self.unmapped_queue_url,
            "SECRETS_PREFIX": self.secrets_prefix,
            **({"UNMAPPED_BUCKET": self.unmapped_bucket} if self.unmapped_bucket else {}),
        }


def create_stack(
    session: Any,
    *,
    name: str = "dmhub-adapter",
    secrets_prefix: str = "dmhub-adapter",
    max_receive_count: int = 5,
    visibility_timeout: int = 30,
) -> StackResources:
    """Create table (TTL on), DeadLetterQueue, EventQueue (redrive), UnmappedQueue and the
    UnmappedPayloadBucket."""
    dynamodb = session.client("dynamodb")
    sqs = session.client("sqs")
    table = f"{name}-idempotency"
    existing = dynamodb.list_tables().get("TableNames", [])
    if table not in existing:
        dynamodb.create_table(
            TableName=table,
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": KEY, "AttributeType": "S"}],
            KeySchema=[{"AttributeName": KEY, "KeyType": "HASH"}],
        )
        dynamodb.update_time_to_live(
            TableName=table,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": TTL_ATTRIBUTE},
        )
    dlq_url = sqs.create_queue(QueueName=f"{name}-dlq", Attributes={"MessageRetentionPeriod": "1209600"})[
        "QueueUrl"
    ]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    event_url = sqs.create_queue(
        QueueName=f"{name}-events",
        Attributes={
            "VisibilityTimeout": str(visibility_timeout),
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(max_receive_count)}),
        },
    )["QueueUrl"]
    unmapped_url = sqs.create_queue(
        QueueName=f"{name}-unmapped",
        Attributes={"MessageRetentionPeriod": "1209600", "MaximumMessageSize": "1048576"},
    )["QueueUrl"]
    bucket = f"{name}-unmapped-payloads"
    s3 = session.client("s3")
    if bucket not in {b["Name"] for b in s3.list_buckets().get("Buckets", [])}:
        region = s3.meta.region_name
        # us-east-1 is the one region that refuses an explicit location constraint
        location = {} if region in (None, "us-east-1") else {
            "CreateBucketConfiguration": {"LocationConstraint": region}}
        s3.create_bucket(Bucket=bucket, **location)
    return StackResources(
        table=table,
        event_queue_url=event_url,
        dead_letter_queue_url=dlq_url,
        unmapped_queue_url=unmapped_url,
        secrets_prefix=secrets_prefix,
        unmapped_bucket=bucket,
    )


def put_secret(session: Any, name: str, value: Mapping[str, Any]) -> None:
    """Create or update a JSON secret."""
    client = session.client("secretsmanager")
    text = json.dumps(dict(value))
    try:
        client.create_secret(Name=name, SecretString=text)
    except client.exceptions.ResourceExistsException:
        client.put_secret_value(SecretId=name, SecretString=text)


def put_accounts(
    session: Any,
    secrets_prefix: str,
    dmhub: Mapping[str, Any] | None,
    accounts: Iterable[Mapping[str, Any]],
) -> None:
    """Write the accounts file's secrets under the brief's names."""
    if dmhub:
        put_secret(session, f"{secrets_prefix}/dmhub", dmhub)
    for entry in accounts:
        put_secret(session, f"{secrets_prefix}/{entry['source']}/{entry['account']}", entry["secret"])
