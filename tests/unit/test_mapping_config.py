"""Config errors fail loudly at load, naming file, rule and field; check-config and map CLIs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dmhub_adapter.mapping import MappingConfigError, json_schema, load_mapping
from dmhub_adapter.model.customer_event import AttributeBudget
from dmhub_adapter.sources.registry import parse_source_mapping
from dmhub_adapter_tools.cli import main

GOOD = """
source: {name}
defaults: {{identity: {{type: demo-user, value: user}}}}
rules:
  - name: follow
    when: "kind == 'follow'"
    event: {event}
    externalId: "id"
    date: {{path: at, convert: {convert}}}
    attributes: {attributes}
"""


def config(name: str = "demo", event: str = "c_follow", convert: str = "unix_seconds",
           attributes: str = "{}") -> str:
    return GOOD.format(name=name, event=event, convert=convert, attributes=attributes)


def problems(text: str, file: str = "<demo>", budget: int = 5) -> str:
    with pytest.raises(MappingConfigError) as info:
        parse_source_mapping(text, file, budget=AttributeBudget.of(budget))
    return str(info.value)


def test_a_good_config_loads() -> None:
    assert parse_source_mapping(config(), "<demo>").rules[0].name == "follow"


def test_invalid_yaml() -> None:
    assert "invalid YAML" in problems("source: [unclosed")


def test_not_a_mapping() -> None:
    assert "YAML mapping" in problems("- a\n- b\n")


def test_unknown_converter_names_rule_and_field() -> None:
    text = problems(config(convert="unix_epoch"))
    assert "rule 'follow'" in text and "date" in text and "unknown converter 'unix_epoch'" in text


def test_bad_jmespath_names_rule_and_field() -> None:
    text = problems(config().replace('"kind == \'follow\'"', '"kind == "'))
    assert "rule 'follow'" in text and "'when'" in text and "JMESPath" in text


def test_event_type_of_33_characters() -> None:
    text = problems(config(event="c_" + "a" * 31))
    assert "rule 'follow'" in text and "33 characters" in text and "32" in text


def test_event_type_of_32_characters_is_fine() -> None:
    parse_source_mapping(config(event="c_" + "a" * 30), "<demo>")


def test_sixth_custom_attribute() -> None:
    six = "{" + ", ".join(f"a{i}: x" for i in range(6)) + "}"
    text = problems(config(attributes=six))
    assert "rule 'follow'" in text and "at most 5 custom attributes" in text and "got 6" in text
    five = "{" + ", ".join(f"a{i}: x" for i in range(5)) + "}"
    parse_source_mapping(config(attributes=five), "<demo>")
    parse_source_mapping(config(attributes=six), "<demo>", budget=AttributeBudget.of(16))


def attributes(text: int, quantity: int = 0, amount: int = 0) -> str:
    parts = [f"t{i}: x" for i in range(text)]
    parts += [f"q{i}: {{path: n, kind: quantity}}" for i in range(quantity)]
    parts += [f"m{i}: {{path: m, kind: amount}}" for i in range(amount)]
    return "{" + ", ".join(parts) + "}"


def test_sixteen_attributes_are_ten_text_three_quantity_three_amount() -> None:
    sixteen = AttributeBudget.of(16)
    parse_source_mapping(config(attributes=attributes(10, 3, 3)), "<demo>", budget=sixteen)
    assert "at most 10 text attributes" in problems(config(attributes=attributes(11, 2, 3)), budget=16)
    assert "at most 3 quantity attributes" in problems(config(attributes=attributes(9, 4, 3)), budget=16)
    assert "at most 3 amount attributes" in problems(config(attributes=attributes(9, 3, 4)), budget=16)
    assert "DMHUB_CUSTOM_ATTRIBUTES=16" in problems(config(attributes=attributes(11, 2, 3)), budget=16)
    assert "kind" in problems(config(attributes="{a: {path: x, kind: money}}"))


@pytest.mark.parametrize("field", ["targetId", "targetName", "summary"])
def test_a_rule_mapping_target_or_summary_onto_a_custom_event_is_named(field: str) -> None:
    text = problems(config() + f"    fields: {{{field}: x}}\n")
    assert "rule 'follow'" in text and field in text and "custom attribute" in text
    in_defaults = config().replace(
        "defaults: {identity: {type: demo-user, value: user}}",
        f"defaults: {{identity: {{type: demo-user, value: user}}, fields: {{{field}: x}}}}",
    )
    assert "rule 'follow'" in problems(in_defaults)
    # built-in event types keep them
    parse_source_mapping(config(event="wechat_follow") + f"    fields: {{{field}: x}}\n", "<demo>")


def test_check_config_uses_the_budget_setting(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "demo.yaml").write_text(config(attributes=attributes(6)), encoding="utf-8")
    monkeypatch.delenv("DMHUB_CUSTOM_ATTRIBUTES", raising=False)
    assert main(["check-config", str(tmp_path)]) == 1
    assert "at most 5 custom attributes" in capsys.readouterr().err
    monkeypatch.setenv("DMHUB_CUSTOM_ATTRIBUTES", "16")
    assert main(["check-config", str(tmp_path)]) == 0
    assert main(["check-config", "--custom-attributes", "5", str(tmp_path)]) == 1


def test_custom_attributes_need_a_custom_event_type() -> None:
    assert "custom event type" in problems(config(event="wechat_follow", attributes="{a: x}"))


def test_rule_without_identity_or_date() -> None:
    no_identity = config().replace("defaults: {identity: {type: demo-user, value: user}}", "")
    assert "no identity" in problems(no_identity)
    assert "needs 'date'" in problems(config().replace("    date: {path: at, convert: unix_seconds}\n", ""))


def test_unknown_event_field_and_unknown_top_level_key() -> None:
    assert "unknown event field" in problems(config() + "    fields: {colour: red}\n")
    assert "colour" in problems(config() + "colour: red\n")


def test_duplicate_rule_names() -> None:
    doubled = config() + """  - name: follow
    skip: again
"""
    assert "repeated" in problems(doubled)


def test_unknown_adapter_and_file_name_mismatch() -> None:
    assert "unknown adapter 'fax'" in problems(config() + "adapter: fax\n")
    assert "must match the file name" in problems(config(name="other"), "mappings/demo.yaml")


def test_mappings_dir_overrides_packaged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "demo.yaml").write_text(config(), encoding="utf-8")
    mapping = load_mapping("demo", str(tmp_path))
    assert mapping is not None and mapping.source == "demo"
    assert load_mapping("demo") is None  # only where it was asked for
    assert load_mapping("../etc/passwd", str(tmp_path)) is None
    assert load_mapping("nothing-here", str(tmp_path)) is None


def test_check_config_cli_reports_file_rule_field(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "demo.yaml").write_text(config(event="c_" + "a" * 31), encoding="utf-8")
    (tmp_path / "fine.yaml").write_text(config(name="fine"), encoding="utf-8")
    assert main(["check-config", str(tmp_path)]) == 1
    captured = capsys.readouterr()
    assert "demo.yaml: invalid" in captured.err and "rule 'follow'" in captured.err
    assert "fine.yaml: ok" in captured.out


def test_check_config_cli_passes_on_the_packaged_configs(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config"]) == 0
    assert "invalid" not in capsys.readouterr().err


def test_check_config_on_an_empty_or_missing_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", str(tmp_path)]) == 1
    assert main(["check-config", str(tmp_path / "missing")]) == 1
    assert "not a directory" in capsys.readouterr().err


def test_map_cli_on_unparsable_payload_and_unknown_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "demo.yaml").write_text(config(), encoding="utf-8")
    monkeypatch.setenv("MAPPINGS_DIR", str(tmp_path))
    payload = tmp_path / "payload.json"
    payload.write_text("{not json", encoding="utf-8")
    assert main(["map", "demo", str(payload)]) == 1
    err = capsys.readouterr().err
    assert "cannot be parsed" in err and "Traceback" not in err
    assert main(["map", "nosuch", str(payload)]) == 1
    assert "unknown source 'nosuch'" in capsys.readouterr().err
    assert main(["map", "demo", str(tmp_path / "missing.json")]) == 1


def test_map_cli_prints_events_with_identity_and_external_id(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "demo.yaml").write_text(config(), encoding="utf-8")
    monkeypatch.setenv("MAPPINGS_DIR", str(tmp_path))
    payload = tmp_path / "payload.json"
    payload.write_text(json.dumps({"kind": "follow", "user": "u1", "id": "e1", "at": 1732780800}), encoding="utf-8")
    assert main(["map", "demo", str(payload)]) == 0
    (event,) = json.loads(capsys.readouterr().out)
    assert event["identity"] == {"type": "demo-user", "value": "u1", "create": True}
    assert event["event"]["externalId"] == "e1" and event["event"]["date"] == "2024-11-28T08:00:00Z"
    payload.write_text(json.dumps({"kind": "unknown"}), encoding="utf-8")
    assert main(["map", "demo", str(payload)]) == 1
    assert "no rule matched" in capsys.readouterr().err


def test_json_schema_describes_rules() -> None:
    schema = json_schema()
    assert "rules" in schema["properties"] and "RuleSpec" in json.dumps(schema)


@pytest.mark.parametrize("name", ["token", "identity", "dmhub"])
def test_reserved_source_names(name: str) -> None:
    assert "is reserved" in problems(config(name=name), f"mappings/{name}.yaml")
