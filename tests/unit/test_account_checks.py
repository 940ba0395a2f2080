"""What an account secret needs, per source, as ``dev`` and ``accounts put`` check it; and ``map``'s
skip reason on stderr."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dmhub_adapter.sources.registry import check_account_secret, load_source_mapping
from dmhub_adapter_tools.cli import main
from dmhub_adapter_tools.local.accounts import load_accounts

DEMO = load_accounts()


def problems(source: str, secret: dict[str, object]) -> list[str]:
    mapping = load_source_mapping(source)
    assert mapping is not None
    return check_account_secret(mapping, secret)


@pytest.mark.parametrize("entry", DEMO.accounts, ids=lambda e: f"{e['source']}/{e['account']}")
def test_every_demo_account_passes(entry: dict[str, object]) -> None:
    assert problems(str(entry["source"]), dict(entry["secret"])) == []  # type: ignore[call-overload]


def test_a_broken_pem_key_is_named() -> None:
    secret = dict(DEMO.secret("wechatpay", "demo") or {})
    secret["platformKeys"] = {"PUB_KEY_ID_1": "-----BEGIN PUBLIC KEY-----\nnot a key\n-----END PUBLIC KEY-----\n"}
    found = problems("wechatpay", secret)
    assert found and "'platformKeys'" in found[0]


@pytest.mark.parametrize(("source", "secret", "expected"), [
    ("wechat", {"token": "t", "encodingAesKey": "short", "appId": "wx"}, "field 'encodingAesKey'"),
    ("wechat", {"token": ""}, "empty token"),
    ("taobao", {"appKey": "1"}, "needs a non-empty 'appSecret'"),
    ("standard-webhooks", {"signingSecret": "whsec_%%%"}, "'signingSecret' is not a valid whsec key"),
    ("youzan", {"clientId": "c", "clientSecret": "s", "kdtid": 1}, "did you mean 'kdtId'?"),
])
def test_mistakes_are_named(source: str, secret: dict[str, object], expected: str) -> None:
    assert any(expected in problem for problem in problems(source, secret)), problems(source, secret)


def test_map_prints_the_reason_of_a_skip(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    receipt = tmp_path / "receipt.xml"
    receipt.write_text("<xml><ToUserName><![CDATA[gh_1]]></ToUserName><FromUserName><![CDATA[o1]]></FromUserName>"
                       "<CreateTime>1</CreateTime><MsgType><![CDATA[event]]></MsgType>"
                       "<Event><![CDATA[TEMPLATESENDJOBFINISH]]></Event></xml>")
    assert main(["map", "wechat", str(receipt)]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out) == [] and "message #1 skipped by rule 'receipts'" in err
