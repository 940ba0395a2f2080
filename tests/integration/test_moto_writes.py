"""moto's DynamoDB writes are made atomic, as DynamoDB's are: the leases depend on it."""

from __future__ import annotations

import threading
import time
from typing import Any

import boto3

from dmhub_adapter_tools.local.moto import DYNAMODB_WRITES, MotoServer, serialize_dynamodb_writes


def test_every_conditional_write_of_the_backend_is_serialized() -> None:
    from moto.dynamodb.models import DynamoDBBackend

    serialize_dynamodb_writes()
    for name in DYNAMODB_WRITES:
        assert hasattr(getattr(DynamoDBBackend, name), "__wrapped__"), name


def test_two_writes_never_overlap(monkeypatch: Any) -> None:
    from moto.dynamodb.models import DynamoDBBackend

    serialize_dynamodb_writes()
    inside = 0
    most = 0
    guard = threading.Lock()

    def slow(self: Any, *args: Any, **kwargs: Any) -> None:
        nonlocal inside, most
        with guard:
            inside += 1
            most = max(most, inside)
        time.sleep(0.05)
        with guard:
            inside -= 1

    # the serialized wrapper calls the original it captured; swap that original for a slow one
    wrapper = DynamoDBBackend.put_item
    monkeypatch.setattr(DynamoDBBackend, "put_item", lambda self, *a, **k: wrapper(self, *a, original=slow, **k))
    threads = [threading.Thread(target=DynamoDBBackend.put_item, args=(object(),)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert most == 1


def test_one_conditional_put_wins_among_twenty_on_the_child_server() -> None:
    server = MotoServer().start()
    try:
        client = boto3.client("dynamodb", endpoint_url=server.url, region_name="us-east-1",
                              aws_access_key_id="test", aws_secret_access_key="test")
        client.create_table(TableName="t", KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                            BillingMode="PAY_PER_REQUEST")
        winners: list[int] = []

        def put(n: int) -> None:
            try:
                client.put_item(TableName="t", Item={"pk": {"S": "lease"}, "n": {"N": str(n)}},
                                ConditionExpression="attribute_not_exists(pk)")
                winners.append(n)
            except client.exceptions.ConditionalCheckFailedException:
                pass

        threads = [threading.Thread(target=put, args=(n,)) for n in range(20)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(winners) == 1
        stored = client.get_item(TableName="t", Key={"pk": {"S": "lease"}})["Item"]["n"]["N"]
        assert stored == str(winners[0])
    finally:
        server.stop()
