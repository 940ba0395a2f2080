"""SharedToken protocol on DynamoDB (moto in-process), with a controllable clock."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from dmhub_adapter.dmhub.client import TokenGrant
from dmhub_adapter.dmhub.errors import CredentialsError, TokenError, TransportError
from dmhub_adapter.dmhub.token import (
    SharedToken,
)
from dmhub_adapter.secrets import clear_credentials_cache, load_credentials
from dmhub_adapter.store.tokens import StoredToken, TokenTable, token_key
from dmhub_adapter_tools.local.resources import create_stack

APP = "demo-app"


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


class Fetcher:
    def __init__(self, clock: Clock, expires_in: int = 7200) -> None:
        self.clock = clock
        self.expires_in = expires_in
        self.calls = 0
        self.fail_with: Exception | None = None

    def __call__(self) -> TokenGrant:
        if self.fail_with is not None:
            raise self.fail_with
        self.calls += 1
        return TokenGrant(f"token-{self.calls}", self.expires_in, self.clock())


@pytest.fixture
def ddb() -> Iterator[tuple[Any, str]]:
    with mock_aws():
        session = boto3.session.Session()
        stack = create_stack(session)
        yield session.client("dynamodb"), stack.table


def shared(ddb: tuple[Any, str], clock: Clock, fetcher: Fetcher, **kwargs: Any) -> SharedToken:
    client, table = ddb
    return SharedToken(store=TokenTable(table, client, app_id=APP), fetch=fetcher, clock=clock, **kwargs)


def item(ddb: tuple[Any, str]) -> dict[str, Any]:
    client, table = ddb
    return dict(client.get_item(TableName=table, Key={"pk": {"S": token_key(APP)}})["Item"])


def test_first_caller_fetches_and_other_containers_reuse_the_stored_token(ddb: tuple[Any, str]) -> None:
    clock, fetcher = Clock(), Fetcher(Clock())
    fetcher.clock = clock
    first = shared(ddb, clock, fetcher)
    assert first.get() == "token-1"
    assert shared(ddb, clock, fetcher).get() == "token-1"
    assert first.get() == "token-1"
    assert fetcher.calls == 1
    stored = item(ddb)
    assert stored["token"]["S"] == "token-1"
    assert int(stored["tokenExpiresAt"]["N"]) == int(clock.now + 7200)
    assert int(stored["expiresAt"]["N"]) > int(stored["tokenExpiresAt"]["N"])  # TTL only tidies up
    assert "lease" not in stored and "leaseUntil" not in stored


def test_refreshes_a_margin_before_expiry(ddb: tuple[Any, str]) -> None:
    clock = Clock()
    fetcher = Fetcher(clock)
    token = shared(ddb, clock, fetcher, margin_seconds=300)
    assert token.get() == "token-1"
    clock.now += 7200 - 301
    assert token.get() == "token-1"
    clock.now += 2  # now inside the margin
    assert token.get() == "token-2"
    assert fetcher.calls == 2


def test_short_lived_tokens_are_still_used(ddb: tuple[Any, str]) -> None:
    clock = Clock()
    fetcher = Fetcher(clock, expires_in=60)
    token = shared(ddb, clock, fetcher, margin_seconds=300)
    assert token.get() == "token-1"
    clock.now += 20
    assert token.get() == "token-1"
    assert fetcher.calls == 1


def test_renew_refreshes_only_if_the_rejected_token_is_still_stored(ddb: tuple[Any, str]) -> None:
    clock = Clock()
    fetcher = Fetcher(clock)
    a = shared(ddb, clock, fetcher)
    b = shared(ddb, clock, fetcher)
    assert a.get() == b.get() == "token-1"
    assert a.renew("token-1") == "token-2"  # the stored one was refused: refresh once
    # b still holds token-1 in memory; its renewal finds token-2 and does not fetch again
    assert b.renew("token-1") == "token-2"
    assert fetcher.calls == 2


def test_a_lapsed_lease_of_a_dead_holder_is_taken_over(ddb: tuple[Any, str]) -> None:
    client, table = ddb
    clock = Clock()
    client.put_item(
        TableName=table,
        Item={"pk": {"S": token_key(APP)}, "lease": {"S": "dead"}, "leaseUntil": {"N": str(int(clock.now * 1000) - 1)}},
    )
    fetcher = Fetcher(clock)
    assert shared(ddb, clock, fetcher).get() == "token-1"
    assert fetcher.calls == 1


def test_waits_for_the_lease_holder_instead_of_fetching(ddb: tuple[Any, str]) -> None:
    client, table = ddb
    clock = Clock()
    client.put_item(
        TableName=table,
        Item={
            "pk": {"S": token_key(APP)},
            "lease": {"S": "other"},
            "leaseUntil": {"N": str(int((clock.now + 10) * 1000))},
        },
    )
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        if len(sleeps) == 3:  # the other instance finishes its refresh
            client.update_item(
                TableName=table,
                Key={"pk": {"S": token_key(APP)}},
                UpdateExpression="SET #t = :t, tokenExpiresAt = :e, fetchedAt = :f REMOVE lease, leaseUntil",
                ExpressionAttributeNames={"#t": "token"},
                ExpressionAttributeValues={
                    ":t": {"S": "theirs"},
                    ":e": {"N": str(int(clock.now + 7200))},
                    ":f": {"N": str(int(clock.now))},
                },
            )

    fetcher = Fetcher(clock)
    assert shared(ddb, clock, fetcher, sleep=sleep).get() == "theirs"
    assert fetcher.calls == 0
    assert len(sleeps) == 3 and all(0 < s <= 0.5 for s in sleeps)


def test_gives_up_waiting_with_a_retryable_error(ddb: tuple[Any, str]) -> None:
    client, table = ddb
    clock = Clock()
    client.put_item(
        TableName=table,
        Item={
            "pk": {"S": token_key(APP)},
            "lease": {"S": "other"},
            "leaseUntil": {"N": str(int((clock.now + 60) * 1000))},
        },
    )
    token = shared(ddb, clock, Fetcher(clock), wait_seconds=0.05, sleep=lambda s: time.sleep(0.01))
    with pytest.raises(TokenError) as info:
        token.get()
    assert info.value.retryable


def test_a_failed_fetch_releases_the_lease(ddb: tuple[Any, str]) -> None:
    clock = Clock()
    fetcher = Fetcher(clock)
    fetcher.fail_with = TransportError("token: timed out")
    token = shared(ddb, clock, fetcher)
    with pytest.raises(TransportError):
        token.get()
    assert "lease" not in item(ddb)
    fetcher.fail_with = None
    assert token.get() == "token-1"  # no waiting for a lapsed lease


def test_stored_token_freshness() -> None:
    stored = StoredToken("t", expires_at=1000.0, fetched_at=1000.0 - 7200)
    assert stored.fresh(1000 - 301, 300) and not stored.fresh(1000 - 299, 300)


def test_credentials_from_secrets_manager_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    clear_credentials_cache()
    with mock_aws():
        sm = boto3.client("secretsmanager")
        sm.create_secret(Name="p/dmhub", SecretString=json.dumps({"appId": "a", "secret": "s"}))
        sm.create_secret(Name="p/bad", SecretString=json.dumps({"appId": "a"}))
        creds = load_credentials("p/dmhub", client=sm)
        assert (creds.app_id, creds.secret) == ("a", "s")
        assert "s'" not in repr(creds) and "***" in repr(creds)
        with pytest.raises(CredentialsError):
            load_credentials("p/bad", client=sm)
        with pytest.raises(CredentialsError, match="does not exist"):
            load_credentials("p/none", client=sm)
        monkeypatch.setenv("DMHUB_APP_ID", "env-app")
        monkeypatch.setenv("DMHUB_SECRET", "env-secret")
        # the runtime reads Secrets Manager only; the environment override is the CLI's
        assert load_credentials("p/dmhub", client=sm).app_id == "a"
    clear_credentials_cache()


# -- body errors: reconsider the token, refresh on suspicion at most once per minimum age ------


def test_a_body_error_refreshes_once_then_the_young_suspected_token_stands(ddb: tuple[Any, str]) -> None:
    clock = Clock()
    fetcher = Fetcher(clock)
    first, second = shared(ddb, clock, fetcher), shared(ddb, clock, fetcher)
    assert first.get() == "token-1"
    # token-1 was not fetched on suspicion: a body error on it refreshes it
    assert first.reconsider("token-1") == "token-2"
    assert item(ddb)["suspected"]["N"] == "1"
    # another container failing with the old token gets the newer stored one, no fetch
    assert second.reconsider("token-1") == "token-2"
    # the same error with token-2, fetched on suspicion seconds ago: the token is not the problem
    clock.now += 59
    assert first.reconsider("token-2") is None
    assert second.reconsider("token-2") is None
    assert fetcher.calls == 2
    # after the minimum age it may be refreshed on suspicion once more
    clock.now += 2
    assert first.reconsider("token-2") == "token-3"
    assert fetcher.calls == 3


def test_the_minimum_age_is_a_setting(ddb: tuple[Any, str]) -> None:
    clock = Clock()
    fetcher = Fetcher(clock)
    token = shared(ddb, clock, fetcher, min_age_seconds=5)
    token.get()
    assert token.reconsider("token-1") == "token-2"
    clock.now += 6
    assert token.reconsider("token-2") == "token-3"
    assert token.reconsider("token-3") is None
