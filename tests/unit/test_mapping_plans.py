"""Compiled plans (dmhub_adapter.mapping.files and .compile): a packaged mapping loaded from the
plan the build wrote is the mapping checked from its YAML, and a plan is used only while it
still describes the file.

The comparison is structural and complete: every field of every part of the plan, with each
compiled JMESPath expression compared by its text and each converter chain as parsed, so the
engine (which reads nothing else) cannot tell the two apart; it is then confirmed on every
sample request of the local stack, mapped with both.
"""

from __future__ import annotations

import datetime
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from dmhub_adapter.apigw import request_from_event
from dmhub_adapter.mapping import files
from dmhub_adapter.mapping.compile import NotCompilable, compile_plan, write_plans
from dmhub_adapter.mapping.config import load_mapping, parse_mapping
from dmhub_adapter.mapping.engine import map_payload
from dmhub_adapter.mapping.files import plan_path, read_compiled_plan
from dmhub_adapter.mapping.functions import CompiledExpression
from dmhub_adapter.mapping.plan import MappingPlan, plan_from_data
from dmhub_adapter.model.rules import AttributeBudget
from dmhub_adapter.sources import registry
from dmhub_adapter.sources.base import Account
from dmhub_adapter_tools.local.accounts import load_accounts
from dmhub_adapter_tools.local.gateway import build_event
from dmhub_adapter_tools.local.samples import SAMPLES, build_sample
from tests.conftest import ROOT

PACKAGED = sorted(files.packaged_dir().glob("*.yaml"))
SEED, CURRENT = AttributeBudget.of(5), AttributeBudget.of(16)


def shape(value: Any) -> Any:
    """Everything the engine can read of a plan, as plain data."""
    if isinstance(value, CompiledExpression):
        return ("jmespath", value.expression)
    fields = getattr(type(value), "__record_fields__", None)
    if fields is not None:
        return (type(value).__name__, {name: shape(getattr(value, name)) for name, _ in fields})
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [shape(item) for item in value]
    return value


def _from_yaml(path: Path, budget: AttributeBudget = SEED) -> MappingPlan:
    return registry.parse_source_mapping(path.read_text(encoding="utf-8"), str(path), budget=budget)


@pytest.mark.parametrize("path", PACKAGED, ids=lambda p: p.name)
@pytest.mark.parametrize("budget", [SEED, CURRENT], ids=["budget5", "budget16"])
def test_a_compiled_plan_is_the_plan_of_its_yaml(path: Path, budget: AttributeBudget) -> None:
    content = compile_plan(path)
    assert content["budgets"] == [5, 16]
    # the file written is JSON: what a cold start reads back
    stored = json.loads(json.dumps(content, ensure_ascii=False))
    compiled = plan_from_data(stored["mapping"], budget)
    assert shape(compiled) == shape(_from_yaml(path, budget))
    assert compiled._budget == budget


@pytest.fixture
def packaged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the packaged mappings standing in for the package's folder, with their plans."""
    folder = tmp_path / "mappings"
    shutil.copytree(files.packaged_dir(), folder, ignore=shutil.ignore_patterns("*.plan.json"))
    monkeypatch.setattr(files, "packaged_dir", lambda: folder)
    assert write_plans(folder) == ([], [])
    return folder


def test_a_fresh_plan_is_used_and_a_stale_one_is_not(packaged: Path) -> None:
    path = packaged / "wechat.yaml"
    plan = read_compiled_plan(path, SEED)
    assert plan is not None and plan.source == "wechat"
    assert read_compiled_plan(path, CURRENT) is not None  # checked against both budgets
    # the YAML edited after the build: the plan no longer describes it
    text = path.read_text(encoding="utf-8")
    edited = re.sub(r"name: follow\n", "name: follow-edited\n", text, count=1)
    assert edited != text
    path.write_text(edited, encoding="utf-8")
    assert read_compiled_plan(path, SEED) is None
    loaded = registry.load_source_mapping("wechat", budget=SEED)
    assert loaded is not None and "follow-edited" in [rule.name for rule in loaded.rules]


def test_a_plan_is_not_used_for_a_budget_it_was_not_checked_against(packaged: Path) -> None:
    plan_file = packaged / "wechat.plan.json"
    stored = json.loads(plan_file.read_text(encoding="utf-8"))
    plan_file.write_text(json.dumps({**stored, "budgets": [5]}), encoding="utf-8")
    assert read_compiled_plan(packaged / "wechat.yaml", SEED) is not None
    assert read_compiled_plan(packaged / "wechat.yaml", CURRENT) is None


@pytest.mark.parametrize("content", ["", "{", "[]", '{"format": 2}', "null"])
def test_a_damaged_plan_is_ignored(packaged: Path, content: str) -> None:
    (packaged / "wechat.plan.json").write_text(content, encoding="utf-8")
    assert read_compiled_plan(packaged / "wechat.yaml", SEED) is None
    assert registry.load_source_mapping("wechat") is not None  # checked from the YAML instead


def test_a_plan_outside_the_package_is_never_read(packaged: Path, tmp_path: Path) -> None:
    override = tmp_path / "override"
    override.mkdir()
    shutil.copy(packaged / "wechat.yaml", override)
    shutil.copy(packaged / "wechat.plan.json", override)
    assert read_compiled_plan(override / "wechat.yaml", SEED) is None


def test_an_invalid_file_gets_no_plan_and_is_named(packaged: Path) -> None:
    (packaged / "broken.yaml").write_text("source: broken\nrules: []\n", encoding="utf-8")
    (packaged / "broken.plan.json").write_text("{}", encoding="utf-8")  # left from an earlier build
    invalid, kept_as_yaml = write_plans(packaged)
    assert len(invalid) == 1 and "broken.yaml" in invalid[0] and kept_as_yaml == []
    assert not (packaged / "broken.plan.json").exists()
    assert (packaged / "wechat.plan.json").exists()


def test_a_value_json_cannot_carry_is_not_compiled(packaged: Path) -> None:
    path = packaged / "youzan.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    rule = next(rule for rule in data["rules"] if "skip" not in rule)
    rule.setdefault("fields", {})["campaign"] = {"value": datetime.date(2024, 5, 1)}  # YAML: 2024-05-01
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    assert "campaign:\n      value: 2024-05-01" in path.read_text(encoding="utf-8")
    with pytest.raises(NotCompilable, match="JSON cannot carry"):
        compile_plan(path)
    assert write_plans(packaged) == ([], [f"{path}: holds a value JSON cannot carry (e.g. a YAML date); kept as YAML"])
    assert not plan_path(path).exists()
    assert registry.load_source_mapping("youzan") is not None  # checked from its YAML


def test_plans_of_removed_files_are_removed(packaged: Path) -> None:
    (packaged / "shopify.yaml").unlink()
    write_plans(packaged)
    assert not (packaged / "shopify.plan.json").exists()


def test_the_command_writes_plans_and_fails_on_an_invalid_file(tmp_path: Path) -> None:
    folder = tmp_path / "mappings"
    folder.mkdir()
    shutil.copy(files.packaged_dir() / "taobao.yaml", folder)
    command = [sys.executable, "-m", "dmhub_adapter.mapping.compile", str(folder)]
    env = {"PYTHONPATH": str(ROOT / "layers" / "shared"), "PATH": "/usr/bin:/bin"}
    assert subprocess.run(command, env=env, capture_output=True, check=False).returncode == 0
    assert json.loads((folder / "taobao.plan.json").read_text(encoding="utf-8"))["budgets"] == [5, 16]
    (folder / "acme.yaml").write_text("source: other\nrules: [{name: a, skip: b}]\n", encoding="utf-8")
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 1 and "acme.yaml" in done.stderr


ACCOUNTS = load_accounts()


@pytest.mark.parametrize("name", sorted(n for n, spec in SAMPLES.items() if spec.source in {p.stem for p in PACKAGED}))
def test_every_sample_maps_alike_from_the_plan_and_from_the_yaml(name: str) -> None:
    spec = SAMPLES[name]
    path = files.packaged_dir() / f"{spec.source}.yaml"
    from_yaml = _from_yaml(path)
    compiled = plan_from_data(json.loads(json.dumps(compile_plan(path)))["mapping"], SEED)
    sample = build_sample(name, ACCOUNTS.secret(spec.source, spec.account) or {})
    if sample.method == "GET":
        return
    source = registry.source_for(spec.source)
    assert source is not None
    request = request_from_event(build_event(
        method=sample.method, raw_path=sample.path, raw_query=sample.raw_query, headers=list(sample.headers.items()),
        body=sample.body, source=sample.source, account=sample.account,
    ))
    inbound = source.receive(request, Account(spec.source, spec.account, from_yaml,
                                              ACCOUNTS.secret(spec.source, spec.account) or {}))
    meta = {"source": spec.source, "account": spec.account}

    def outcome(plan: MappingPlan) -> list[Any]:
        return [(r.status, r.reason, r.rule, [(e.rule, e.checked.to_request(), e.checked_identity, e.attribute_kinds)
                                             for e in r.events]) for r in map_payload(plan, inbound.messages, meta)]

    assert outcome(compiled) == outcome(from_yaml)
    assert outcome(compiled)[0][0] == "mapped"


def test_the_packaged_loader_prefers_a_fresh_plan(packaged: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With a plan at hand the YAML is never parsed: the pydantic check is not called."""
    from dmhub_adapter.mapping import config

    def refuse(*_: Any, **__: Any) -> Any:
        raise AssertionError("the YAML was checked although a fresh plan was there")

    monkeypatch.setattr(config, "parse_mapping", refuse)
    registry._load_cached.cache_clear()
    config._load_cached.cache_clear()
    try:
        assert registry.load_source_mapping("taobao") is not None
        assert load_mapping("youzan") is not None
    finally:
        registry._load_cached.cache_clear()
        config._load_cached.cache_clear()


def test_parse_mapping_returns_a_plan() -> None:
    path = files.packaged_dir() / "youzan.yaml"
    assert isinstance(parse_mapping(path.read_text(encoding="utf-8"), str(path)), MappingPlan)
