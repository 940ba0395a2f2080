"""The DM Hub settings of the sender, ingest and command line: API generation, endpoint,
attribute budget and token minimum age, each checked once at init."""

from __future__ import annotations

import pytest

from dmhub_adapter.model.customer_event import AttributeBudget
from dmhub_adapter.settings import IngestSettings, SenderSettings, Settings, SettingsError

SENDER = {"IDEMPOTENCY_TABLE": "t", "DEAD_LETTER_QUEUE_URL": "https://q"}
INGEST = {"IDEMPOTENCY_TABLE": "t", "EVENT_QUEUE_URL": "https://q", "UNMAPPED_QUEUE_URL": "https://u"}


def test_defaults_are_the_seed_v1_customerevents_five_attributes_sixty_seconds() -> None:
    settings = SenderSettings.from_env(SENDER)
    assert (settings.dmhub_api, settings.event_endpoint) == ("v1", "customerevents")
    assert settings.attribute_budget == AttributeBudget.of(5) and settings.token_min_age_seconds == 60
    assert IngestSettings.from_env(INGEST).attribute_budget == AttributeBudget.of(5)


def test_each_setting_is_read() -> None:
    settings = SenderSettings.from_env({**SENDER, "DMHUB_API": "v2", "DMHUB_EVENT_ENDPOINT": "collector",
                                        "DMHUB_CUSTOM_ATTRIBUTES": "16", "DMHUB_TOKEN_MIN_AGE": "5"})
    assert (settings.dmhub_api, settings.event_endpoint, settings.token_min_age_seconds) == ("v2", "collector", 5)
    assert settings.attribute_budget.per_kind == (("text", 10), ("quantity", 3), ("amount", 3))
    assert IngestSettings.from_env({**INGEST, "DMHUB_CUSTOM_ATTRIBUTES": "16"}).attribute_budget.total == 16
    assert Settings.from_env({"DMHUB_API": "v2"}).dmhub_api == "v2"


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("DMHUB_API", "v3", "DMHUB_API must be one of v1, v2"),
        ("DMHUB_EVENT_ENDPOINT", "batch", "DMHUB_EVENT_ENDPOINT must be one of customerevents, collector"),
        ("DMHUB_CUSTOM_ATTRIBUTES", "10", "DMHUB_CUSTOM_ATTRIBUTES must be 5 or 16"),
        ("DMHUB_CUSTOM_ATTRIBUTES", "many", "DMHUB_CUSTOM_ATTRIBUTES must be an integer"),
        ("DMHUB_TOKEN_MIN_AGE", "-1", "DMHUB_TOKEN_MIN_AGE must be between"),
    ],
)
def test_a_bad_value_fails_the_cold_start_naming_the_variable(name: str, value: str, message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        SenderSettings.from_env({**SENDER, name: value})
