"""docs/mapping.schema.json accepts every form the loader accepts: every shipped mapping and every
YAML example in the docs validates with the ``jsonschema`` package, and the loader takes them too."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from dmhub_adapter.mapping.config import MappingFile, json_schema, packaged_dir, parse_mapping
from dmhub_adapter.sources.registry import parse_source_mapping

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((ROOT / "docs" / "mapping.schema.json").read_text(encoding="utf-8"))
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)
MAPPING_KEYS = {field.alias or name for name, field in MappingFile.model_fields.items()}
#: YAML blocks in the docs that are not mapping files (the local stack's accounts file)
OTHER_KINDS = ({"dmhub", "accounts"},)
#: what a fragment (a block showing one part of a file) is completed with to be a whole file
SKELETON: dict[str, Any] = {"source": "example", "rules": [{"name": "all", "skip": "an example"}]}


def errors(data: Any) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in VALIDATOR.iter_errors(data)]


def yaml_examples() -> list[tuple[str, str]]:
    found = []
    for path in sorted([*(ROOT / "docs").glob("*.md"), ROOT / "README.md"]):
        text = path.read_text(encoding="utf-8")
        for match in re.finditer(r"```ya?ml[^\n]*\n(.*?)```", text, re.S):
            line = text[: match.start()].count("\n") + 1
            found.append((f"{path.name}:{line}", match.group(1)))
    return found


def test_the_published_schema_is_the_generated_one() -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    generated = json.loads(json.dumps(json_schema()))
    assert generated == SCHEMA, "regenerate: dmhub-adapter schema > docs/mapping.schema.json"


@pytest.mark.parametrize("path", sorted(packaged_dir().glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_mapping_validates_and_loads(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert errors(yaml.safe_load(text)) == []
    parse_source_mapping(text, str(path))


@pytest.mark.parametrize(("where", "text"), yaml_examples(), ids=[w for w, _ in yaml_examples()])
def test_every_yaml_example_in_the_docs_validates_and_loads(where: str, text: str) -> None:
    data = yaml.safe_load(text)
    assert isinstance(data, dict), f"{where}: not a YAML mapping"
    if set(data) in OTHER_KINDS:
        return
    assert set(data) <= MAPPING_KEYS, f"{where}: keys {sorted(set(data) - MAPPING_KEYS)} are not mapping-file keys"
    whole = data if {"source", "rules"} <= set(data) else {**SKELETON, **data}
    assert errors(whole) == [], where
    parse_mapping(yaml.safe_dump(whole, allow_unicode=True), f"{whole['source']}.yaml")


@pytest.mark.parametrize(("value", "valid"), [
    ("FromUserName", True), (3, True), (True, True), ({"path": "a", "convert": "string"}, True),
    ({"path": "a", "convert": ["strip", "lower"]}, True), ({"template": "{a}"}, True),
    ({"path": "a", "nope": 1}, False), ({"path": "a", "convert": 3}, False), ([1], False),
])
def test_short_and_long_value_forms_agree_with_the_loader(value: Any, valid: bool) -> None:
    rule = {"name": "r", "event": "c_x", "externalId": value, "date": "t", "identity": {"type": "x", "value": "u"}}
    whole = {**SKELETON, "rules": [rule]}
    assert (errors(whole) == []) is valid
    try:
        parse_mapping(yaml.safe_dump(whole), "example.yaml")
        loaded = True
    except Exception:
        loaded = False
    assert loaded is valid
