"""Signature bindings on the idempotency table (moto_server over HTTP) and in memory."""

from __future__ import annotations

from typing import Any

import boto3
import pytest

from dmhub_adapter.store.signature_binding import MemoryBinding, SignatureBinding, binding_key, body_digest

NOW = 1_750_000_000


def _stores(aws: Any, moto_endpoint: str) -> list[Any]:
    client = boto3.session.Session(region_name="eu-west-1").client("dynamodb", endpoint_url=moto_endpoint)
    clock = {"now": NOW}
    return [SignatureBinding(client, aws.table, clock=lambda: clock["now"]), MemoryBinding(clock=lambda: clock["now"]),
            clock]


@pytest.mark.parametrize("which", [0, 1])
def test_first_body_binds_same_body_rebinds_other_body_is_refused_until_expiry(
    aws: Any, moto_endpoint: str, which: int
) -> None:
    *stores, clock = _stores(aws, moto_endpoint)
    store = stores[which]
    key = binding_key("wechat", "demo", "1750000000", "123456789", "ab" * 20)
    assert key.startswith("sig#wechat#demo#") and len(key) == len("sig#wechat#demo#") + 64
    first, other = body_digest(b"<xml>1</xml>"), body_digest(b"<xml>2</xml>")
    assert store.bind(key, first, NOW + 300)
    assert store.bind(key, first, NOW + 300)  # a redelivery
    assert not store.bind(key, other, NOW + 300)
    clock["now"] = NOW + 301  # the window is over (TTL deletion is lazy; the condition compares)
    assert store.bind(key, other, NOW + 601)
    assert not store.bind(key, first, NOW + 601)
