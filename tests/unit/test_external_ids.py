"""The externalId DM Hub sees is namespaced per source and account, deterministic and ≤ 255."""

from __future__ import annotations

import hashlib

from dmhub_adapter.ingest.external_ids import HASH_MARKER, dmhub_external_id, namespaced
from dmhub_adapter.model.customer_event import EXTERNAL_ID_MAX, CustomerEvent


def test_short_keys_keep_their_text_behind_the_namespace() -> None:
    assert dmhub_external_id("wechat", "shop1", "gh_abc|123") == "wechat:shop1:gh_abc|123"


def test_the_same_key_in_two_accounts_or_sources_differs() -> None:
    ids = {
        dmhub_external_id("wechat", "a", "gh_x|1"),
        dmhub_external_id("wechat", "b", "gh_x|1"),
        dmhub_external_id("taobao", "a", "gh_x|1"),
    }
    assert len(ids) == 3


def test_long_keys_are_hashed_whole_and_stay_in_the_limit() -> None:
    source, account = "s" * 63, "a" * 64
    key = "k" * 1000
    value = dmhub_external_id(source, account, key)
    whole = f"{source}:{account}:{key}".encode()
    assert value == f"{source}:{account}:{HASH_MARKER}{hashlib.sha256(whole).hexdigest()}"
    assert len(value) <= EXTERNAL_ID_MAX
    assert value == dmhub_external_id(source, account, key)  # deterministic
    assert value != dmhub_external_id(source, account, key + "x")


def test_the_boundary_is_255_characters() -> None:
    prefix = "src:acct:"
    fits = "x" * (EXTERNAL_ID_MAX - len(prefix))
    assert dmhub_external_id("src", "acct", fits) == prefix + fits
    assert HASH_MARKER in dmhub_external_id("src", "acct", fits + "x")


def test_a_short_key_cannot_pose_as_the_hashed_form_of_a_long_one() -> None:
    long_key = "k" * 300
    hashed = dmhub_external_id("src", "acct", long_key)
    forged = hashed.removeprefix("src:acct:")
    assert dmhub_external_id("src", "acct", forged) != hashed


def test_namespaced_copies_the_event() -> None:
    event = CustomerEvent(event="c_x", externalId="k1", date="2024-01-01T00:00:00Z", amount="1")
    copy = namespaced(event, "acme", "t1")
    assert copy.externalId == "acme:t1:k1"
    assert event.externalId == "k1"
    assert copy.to_request()["amount"] == "1"
