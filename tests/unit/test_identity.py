"""IdentityResolver: caches, lookup, create-once, permanent failure (moto in-process + MockTransport)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import boto3
import httpx
import pytest
from moto import mock_aws

from dmhub_adapter.dmhub.client import DmhubClient, StaticToken
from dmhub_adapter.dmhub.errors import HttpError, IdentityNotFound
from dmhub_adapter.dmhub.identity import IdentityResolver, identity_key
from dmhub_adapter.model.customer_event import Identity
from dmhub_adapter.store.identities import IdentityTable
from dmhub_adapter_tools.local.resources import create_stack


class FakeDmhub:
    """Customer identities in memory, answering like DM Hub."""

    def __init__(self) -> None:
        self.identities: dict[tuple[str, str], int] = {}
        self.lookups = 0
        self.upserts = 0
        self.fail_upsert = False
        self.lock = threading.Lock()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        with self.lock:
            if request.url.path == "/v1/customeridentities":
                self.lookups += 1
                key = (request.url.params["identityType"], request.url.params["identityValue"])
                found = self.identities.get(key)
                body = [] if found is None else [{"customerId": found, "identityType": key[0], "identityValue": key[1]}]
                return httpx.Response(200, json=body)
            assert request.url.path == "/v1/customerandidentities"
            self.upserts += 1
            if self.fail_upsert:
                return httpx.Response(503, text="busy")
            data = json.loads(request.content)
            (ident,) = data["customerIdentities"]
            key = (ident["identityType"], ident["identityValue"])
            customer = self.identities.setdefault(key, 1000 + len(self.identities))
            return httpx.Response(201, json={"id": customer, **data["customer"]})


@pytest.fixture
def env() -> Iterator[tuple[Any, str, FakeDmhub, DmhubClient]]:
    fake = FakeDmhub()
    client = DmhubClient("https://dmhub.test", token_source=StaticToken("t"), transport=httpx.MockTransport(fake))
    with mock_aws():
        session = boto3.session.Session()
        stack = create_stack(session)
        yield session.client("dynamodb"), stack.table, fake, client


def resolver(env: tuple[Any, str, FakeDmhub, DmhubClient], **kwargs: Any) -> IdentityResolver:
    ddb, table, _, client = env
    store = IdentityTable(table, ddb, **{k: kwargs.pop(k) for k in ("clock",) if k in kwargs})
    return IdentityResolver(client, store=store, **kwargs)


WECHAT = Identity(type="wechat", value="o-abc", name="Ann")


def test_known_identity_is_looked_up_once_then_cached(env: tuple[Any, str, FakeDmhub, DmhubClient]) -> None:
    ddb, table, fake, _ = env
    fake.identities[("wechat", "o-abc")] = 77
    first = resolver(env)
    assert first.resolve(WECHAT) == 77
    assert first.resolve(WECHAT) == 77  # memory
    assert resolver(env).resolve(WECHAT) == 77  # another container: DynamoDB
    assert fake.lookups == 1 and fake.upserts == 0
    stored = ddb.get_item(TableName=table, Key={"pk": {"S": identity_key(WECHAT)}})["Item"]
    assert stored["customerId"]["N"] == "77" and "expiresAt" in stored


def test_unknown_creatable_identity_creates_the_customer(env: tuple[Any, str, FakeDmhub, DmhubClient]) -> None:
    _, _, fake, _ = env
    r = resolver(env)
    customer = r.resolve(WECHAT)
    assert fake.identities[("wechat", "o-abc")] == customer
    assert fake.upserts == 1 and r.created == 1
    assert resolver(env).resolve(WECHAT) == customer
    assert fake.upserts == 1


def test_unknown_identity_that_may_not_be_created_is_permanent(env: tuple[Any, str, FakeDmhub, DmhubClient]) -> None:
    _, _, fake, _ = env
    with pytest.raises(IdentityNotFound) as info:
        resolver(env).resolve(Identity(type="taobao-openuid", value="u1", create=False))
    assert not info.value.retryable
    assert "u1" not in str(info.value)  # no raw identity values in reasons
    assert fake.upserts == 0


def test_failed_creation_releases_the_lease(env: tuple[Any, str, FakeDmhub, DmhubClient]) -> None:
    ddb, table, fake, _ = env
    fake.fail_upsert = True
    r = resolver(env)
    with pytest.raises(HttpError):
        r.resolve(WECHAT)
    stored = ddb.get_item(TableName=table, Key={"pk": {"S": identity_key(WECHAT)}}).get("Item", {})
    assert "lease" not in stored
    fake.fail_upsert = False
    assert r.resolve(WECHAT) == fake.identities[("wechat", "o-abc")]


def test_waiter_takes_the_winners_customer(env: tuple[Any, str, FakeDmhub, DmhubClient]) -> None:
    ddb, table, fake, _ = env
    import time

    # another instance holds the creation lease
    ddb.put_item(
        TableName=table,
        Item={
            "pk": {"S": identity_key(WECHAT)},
            "lease": {"S": "other"},
            "leaseUntil": {"N": str(int((time.time() + 30) * 1000))},
            "expiresAt": {"N": str(int(time.time() + 3600))},
        },
    )
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        ddb.update_item(
            TableName=table,
            Key={"pk": {"S": identity_key(WECHAT)}},
            UpdateExpression="SET customerId = :c REMOVE lease, leaseUntil",
            ExpressionAttributeValues={":c": {"N": "555"}},
        )

    assert resolver(env, sleep=sleep).resolve(WECHAT) == 555
    assert fake.upserts == 0 and len(sleeps) == 1


def test_memory_cache_is_bounded(env: tuple[Any, str, FakeDmhub, DmhubClient]) -> None:
    _, _, fake, _ = env
    r = resolver(env, memory_entries=2)
    for n in range(3):
        fake.identities[("wechat", f"o{n}")] = n + 1
        r.resolve(Identity(type="wechat", value=f"o{n}"))
    assert len(r._memory) == 2
