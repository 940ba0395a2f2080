"""Account secrets: found, unknown (404, briefly remembered), or failing (503, never cached)."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from dmhub_adapter.errors import NotFound
from dmhub_adapter.ingest.errors import DependencyUnavailable
from dmhub_adapter.secrets import SecretStore


class FakeSecretsClient:
    """What the store calls: get_secret_value, answered from a dict or an error."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.values = values
        self.calls: list[str] = []

    def get_secret_value(self, SecretId: str, **_: Any) -> dict[str, Any]:
        self.calls.append(SecretId)
        value = self.values.get(SecretId)
        if isinstance(value, Exception):
            raise value
        if value is None:
            raise ClientError({"Error": {"Code": "ResourceNotFoundException", "Message": "nope"}}, "GetSecretValue")
        return {"Name": SecretId, "SecretString": value}


class Clock:
    now = 1000.0

    def __call__(self) -> float:
        return self.now


def store(values: dict[str, Any], clock: Clock | None = None) -> tuple[SecretStore, FakeSecretsClient]:
    client = FakeSecretsClient(values)
    return SecretStore("pfx", client=client, clock=clock or Clock()), client


def test_a_json_object_secret_is_returned_and_cached() -> None:
    secrets, client = store({"pfx/wechat/oa1": '{"token": "t"}'})

    assert secrets.account_secret("wechat", "oa1") == {"token": "t"}
    assert secrets.account_secret("wechat", "oa1") == {"token": "t"}
    assert client.calls == ["pfx/wechat/oa1"]


def test_an_unknown_account_is_404_and_remembered_for_a_while() -> None:
    clock = Clock()
    secrets, client = store({}, clock)

    for _ in range(3):
        with pytest.raises(NotFound):
            secrets.account_secret("wechat", "ghost")
    assert client.calls == ["pfx/wechat/ghost"]
    clock.now += 31
    client.values["pfx/wechat/ghost"] = "{}"
    assert secrets.account_secret("wechat", "ghost") == {}


@pytest.mark.parametrize("name", ["", "../etc", "a/b", "x" * 65, "-lead", "sp ace"])
def test_account_names_outside_the_pattern_are_unknown_without_a_lookup(name: str) -> None:
    secrets, client = store({})

    with pytest.raises(NotFound):
        secrets.account_secret("wechat", name)
    assert client.calls == []


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (ClientError({"Error": {"Code": "ThrottlingException", "Message": "slow"}}, "GetSecretValue"),
         "secret_unavailable"),
        (ClientError({"Error": {"Code": "AccessDeniedException", "Message": "no"}}, "GetSecretValue"),
         "secret_unavailable"),
        (ConnectionError("network"), "secret_unavailable"),
        ("not json", "secret_invalid"),
        ('["a list"]', "secret_invalid"),
    ],
)
def test_other_failures_are_503_and_not_cached(value: Any, reason: str) -> None:
    secrets, client = store({"pfx/taobao/shop": value})

    with pytest.raises(DependencyUnavailable) as raised:
        secrets.account_secret("taobao", "shop")
    assert raised.value.status == 503 and raised.value.reason == reason
    assert "slow" not in raised.value.message and "network" not in raised.value.message

    client.values["pfx/taobao/shop"] = '{"appKey": "k"}'
    assert secrets.account_secret("taobao", "shop") == {"appKey": "k"}


def test_a_found_secret_is_read_again_after_max_age() -> None:
    clock = Clock()
    secrets, client = store({"pfx/wechat/oa1": '{"token": "old"}'}, clock)

    assert secrets.account_secret("wechat", "oa1") == {"token": "old"}
    client.values["pfx/wechat/oa1"] = '{"token": "rotated"}'
    clock.now += 299
    assert secrets.account_secret("wechat", "oa1") == {"token": "old"}
    clock.now += 2
    assert secrets.account_secret("wechat", "oa1") == {"token": "rotated"}
    assert client.calls == ["pfx/wechat/oa1", "pfx/wechat/oa1"]


def test_secret_values_never_reach_the_log(caplog: pytest.LogCaptureFixture) -> None:
    secrets, _ = store({"pfx/taobao/shop": "not json s3cr3t"})

    with pytest.raises(DependencyUnavailable):
        secrets.account_secret("taobao", "shop")
    assert "s3cr3t" not in caplog.text
    assert "pfx/taobao/shop" in caplog.text
