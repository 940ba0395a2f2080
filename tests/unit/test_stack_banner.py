"""The local stack's banner shows demo secrets readably: key sets and PEM keys are summarised."""

from __future__ import annotations

from dmhub_adapter_tools.local.stack import _banner_value


def test_a_set_of_platform_keys_is_named_not_dumped() -> None:
    keys = {"PUB_KEY_ID_01": "-----BEGIN PUBLIC KEY-----\nMIIB\n-----END PUBLIC KEY-----\n", "PUB_KEY_ID_42": "x"}
    shown = _banner_value(keys)
    assert shown == "<2 keys: PUB_KEY_ID_01, PUB_KEY_ID_42>"
    assert "BEGIN" not in shown


def test_a_pem_value_is_summarised_and_plain_values_are_shown() -> None:
    assert _banner_value("-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----") == "<PEM key>"
    assert _banner_value("whsec_abc") == "whsec_abc"
    assert _banner_value(12345678) == "12345678"
