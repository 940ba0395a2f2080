"""The packaged wechat.yaml: which pushes become which CustomerEvents, with which dedup keys."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from dmhub_adapter.mapping.config import MappingFile, load_mapping
from dmhub_adapter.mapping.engine import MessageResult, map_payload
from dmhub_adapter.model.customer_event import EVENT_MAX
from dmhub_adapter.sources.wechat import parse_xml
from dmhub_adapter_tools.cli import main as cli_main
from dmhub_adapter_tools.dryrun import DryRunError, dry_run

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "events"
GH = "gh_3a2b1c0d9e8f"
OPENID = "oFmTU6Xq1ZcL0vJ9yR4kT2nWb8Ds"
TICKET = "gQH47joAAAAAAAAAASxodHRwOi8vd2VpeGluLnFxLmNvbS9xL2taZ2Z3TVRtNzJXV1Brb3ZhYmJJAAIEZ23sUwMEmm3sUw=="
HEAD = f"<xml><ToUserName><![CDATA[{GH}]]></ToUserName><FromUserName><![CDATA[{OPENID}]]></FromUserName>"


@pytest.fixture(scope="module")
def mapping() -> MappingFile:
    loaded = load_mapping("wechat")
    assert loaded is not None
    return loaded


def event_xml(create_time: int, event: str, key: str | None = "", extra: str = "") -> str:
    event_key = "" if key is None else f"<EventKey><![CDATA[{key}]]></EventKey>"
    return (f"{HEAD}<CreateTime>{create_time}</CreateTime><MsgType><![CDATA[event]]></MsgType>"
            f"<Event><![CDATA[{event}]]></Event>{event_key}{extra}</xml>")


def map_one(mapping: MappingFile, xml: str) -> MessageResult:
    [result] = map_payload(mapping, [parse_xml(xml)], {"source": "wechat", "account": "demo"})
    return result


def mapped(mapping: MappingFile, xml: str) -> dict[str, Any]:
    result = map_one(mapping, xml)
    assert result.status == "mapped", result.reason
    [event] = result.events
    assert event.identity is not None
    assert (event.identity.type, event.identity.value, event.identity.create) == ("wechat", OPENID, True)
    body = event.event.to_request()
    assert body["account"] == GH and "targetId" not in body
    assert body["source"] == "微信"
    return body


# -- the research digest's plaintext bodies (§6.e) with their recommended dedup keys ----------------


def test_follow(mapping: MappingFile) -> None:
    body = mapped(mapping, event_xml(1732780800, "subscribe"))
    assert body == {
        "event": "c_wechat_follow", "account": GH, "source": "微信", "date": "2024-11-28T08:00:00Z",
        "externalId": f"{GH}|{OPENID}|1732780800|subscribe|",
    }


def test_follow_without_event_key_element(mapping: MappingFile) -> None:
    body = mapped(mapping, event_xml(1732780800, "subscribe", key=None))
    assert body["externalId"] == f"{GH}|{OPENID}|1732780800|subscribe|"


def test_follow_via_qr(mapping: MappingFile) -> None:
    body = mapped(mapping, event_xml(1732780860, "subscribe", "qrscene_spring_expo_booth_12",
                                     f"<Ticket><![CDATA[{TICKET}]]></Ticket>"))
    assert body["event"] == "c_wechat_follow"
    assert body["externalId"] == f"{GH}|{OPENID}|1732780860|subscribe|qrscene_spring_expo_booth_12"
    assert (body["scene"], body["ticket"]) == ("spring_expo_booth_12", TICKET)


def test_qr_prefix_is_stripped_once(mapping: MappingFile) -> None:
    body = mapped(mapping, event_xml(1732780860, "subscribe", "qrscene_qrscene_x"))
    assert body["scene"] == "qrscene_x"
    assert "ticket" not in body


def test_last_trade_no_is_a_plain_follow(mapping: MappingFile) -> None:
    result = map_one(mapping, event_xml(1732780860, "subscribe", "last_trade_no_4200000001"))
    assert result.rule == "follow"
    body = result.events[0].event.to_request()
    assert "scene" not in body
    assert body["externalId"].endswith("|subscribe|last_trade_no_4200000001")


def test_unfollow(mapping: MappingFile) -> None:
    body = mapped(mapping, event_xml(1732867200, "unsubscribe"))
    assert body["event"] == "c_wechat_unfollow"
    assert body["externalId"] == f"{GH}|{OPENID}|1732867200|unsubscribe|"
    assert body["date"] == "2024-11-29T08:00:00Z"


def test_scan(mapping: MappingFile) -> None:
    body = mapped(mapping, event_xml(1732953600, "SCAN", "spring_expo_booth_12",
                                     f"<Ticket><![CDATA[{TICKET}]]></Ticket>"))
    assert body["event"] == "c_wechat_scan"
    assert body["externalId"] == f"{GH}|{OPENID}|1732953600|scan|spring_expo_booth_12"
    assert (body["scene"], body["ticket"]) == ("spring_expo_booth_12", TICKET)


def test_scan_with_scene_zero(mapping: MappingFile) -> None:
    assert mapped(mapping, event_xml(1732953600, "SCAN", "0"))["scene"] == "0"


def test_text_message(mapping: MappingFile) -> None:
    body = mapped(mapping, f"{HEAD}<CreateTime>1732953700</CreateTime><MsgType><![CDATA[text]]></MsgType>"
                           "<Content><![CDATA[优惠券]]></Content><MsgId>24823471058392817</MsgId></xml>")
    assert body == {
        "event": "c_wechat_message", "account": GH, "source": "微信", "date": "2024-11-30T08:01:40Z",
        "text": "优惠券", "externalId": f"{GH}|24823471058392817",
        "msg_type": "text", "msg_id": "24823471058392817",
    }


def test_long_text_is_truncated_to_the_summary_limit(mapping: MappingFile) -> None:
    body = mapped(mapping, f"{HEAD}<CreateTime>1</CreateTime><MsgType>text</MsgType>"
                           f"<Content><![CDATA[{'字' * 2000}]]></Content><MsgId>5</MsgId></xml>")
    assert body["text"] == "字" * 1024 and "summary" not in body


def test_image_message(mapping: MappingFile) -> None:
    body = mapped(mapping, f"{HEAD}<CreateTime>1732953700</CreateTime><MsgType><![CDATA[image]]></MsgType>"
                           "<PicUrl><![CDATA[https://mmbiz.qpic.cn/x.jpg]]></PicUrl>"
                           "<MediaId><![CDATA[media_1]]></MediaId><MsgId>1234567890123456</MsgId></xml>")
    assert body["event"] == "c_wechat_message"
    assert body["externalId"] == f"{GH}|1234567890123456"
    assert {k: body[k] for k in ("msg_type", "msg_id", "pic_url", "media_id")} == {
        "msg_type": "image", "msg_id": "1234567890123456", "pic_url": "https://mmbiz.qpic.cn/x.jpg",
        "media_id": "media_1",
    }


def test_menu_click_and_view(mapping: MappingFile) -> None:
    click = mapped(mapping, event_xml(1732953650, "CLICK", "V1001_GOOD"))
    assert (click["event"], click["menu_key"]) == ("c_wechat_menu_click", "V1001_GOOD")
    assert click["externalId"] == f"{GH}|{OPENID}|1732953650|click|V1001_GOOD"
    url = "https://example.com/landing?" + "utm=x&" * 200
    view = mapped(mapping, event_xml(1732953650, "VIEW", url, "<MenuId>208396938</MenuId>"))
    assert (view["event"], view["url"], view["menu_id"]) == ("c_wechat_menu_view", url, "208396938")
    assert view["externalId"] == f"{GH}|{OPENID}|1732953650|view|"


def test_location(mapping: MappingFile) -> None:
    body = mapped(mapping, event_xml(1732953650, "LOCATION", None,
                                     "<Latitude>23.137466</Latitude><Longitude>113.352425</Longitude>"
                                     "<Precision>119.385040</Precision>"))
    assert body["event"] == "c_wechat_location"
    assert (body["latitude"], body["longitude"], body["precision"]) == (23.137466, 113.352425, 119.38504)


def test_location_and_view_in_the_same_second_keep_distinct_keys(mapping: MappingFile) -> None:
    location = mapped(mapping, event_xml(1732953650, "LOCATION", None, "<Latitude>1</Latitude>"))
    view = mapped(mapping, event_xml(1732953650, "VIEW", "https://example.com"))
    assert location["externalId"] != view["externalId"]


def test_duplicate_delivery_gives_the_same_key(mapping: MappingFile) -> None:
    xml = event_xml(1732780800, "subscribe")
    assert mapped(mapping, xml)["externalId"] == mapped(mapping, xml)["externalId"]


@pytest.mark.parametrize("event", ["Subscribe", "SUBSCRIBE", "subscribe"])
def test_event_names_are_case_normalised(mapping: MappingFile, event: str) -> None:
    body = mapped(mapping, event_xml(1732780800, event))
    assert body["event"] == "c_wechat_follow"
    assert body["externalId"].endswith("|subscribe|")


@pytest.mark.parametrize("event", ["TEMPLATESENDJOBFINISH", "MASSSENDJOBFINISH", "PUBLISHJOBFINISH",
                                   "subscribe_msg_sent_event"])
def test_receipts_are_skipped_on_purpose(mapping: MappingFile, event: str) -> None:
    result = map_one(mapping, event_xml(1732953800, event, None,
                                        "<MsgID>3147483652</MsgID><Status><![CDATA[success]]></Status>"))
    assert (result.status, result.rule) == ("skipped", "receipts")
    assert result.reason and "receipt" in result.reason


@pytest.mark.parametrize(
    "xml",
    [
        event_xml(1732953800, "kf_create_session"),
        f"{HEAD}<CreateTime>1</CreateTime><MsgType>voice</MsgType><MsgId>9</MsgId></xml>",
        f"{HEAD}<CreateTime>1</CreateTime><Event>subscribe</Event></xml>",  # no MsgType
    ],
)
def test_other_pushes_are_unmapped_not_dropped(mapping: MappingFile, xml: str) -> None:
    assert map_one(mapping, xml).status == "unmapped"


def test_missing_create_time_is_unmapped_with_a_reason(mapping: MappingFile) -> None:
    result = map_one(mapping, f"{HEAD}<MsgType>event</MsgType><Event>subscribe</Event></xml>")
    assert result.status == "unmapped"
    assert result.reason and "date" in result.reason


def test_event_types_fit_dm_hub(mapping: MappingFile) -> None:
    types = {rule.event.value for rule in mapping.rules if rule.event is not None}
    assert types == {"c_wechat_follow", "c_wechat_unfollow", "c_wechat_scan", "c_wechat_menu_click",
                     "c_wechat_menu_view", "c_wechat_location", "c_wechat_message"}
    assert all(len(t) <= EVENT_MAX for t in types)


# -- the sample events through the dry run and the CLI ----------------------------------------------

SAMPLE_EOA = "oia2TjjewbmiOUlr6X-1crbLOvLw"
SAMPLE_GH = "gh_7f083739789a"
EXPECTED = {
    "wechat-follow-plain.json": ("follow", "c_wechat_follow", f"{SAMPLE_GH}|{SAMPLE_EOA}|1732780860|subscribe|"),
    "wechat-follow-qr-safe.json": ("follow_qr", "c_wechat_follow",
                                   f"{SAMPLE_GH}|{SAMPLE_EOA}|1732780800|subscribe|qrscene_campaign_2024_spring"),
    "wechat-follow-compat.json": ("follow", "c_wechat_follow", f"{SAMPLE_GH}|{SAMPLE_EOA}|1732781000|subscribe|"),
    "wechat-unfollow.json": ("unfollow", "c_wechat_unfollow", f"{SAMPLE_GH}|{SAMPLE_EOA}|1732867200|unsubscribe|"),
    "wechat-scan.json": ("scan", "c_wechat_scan", f"{SAMPLE_GH}|{SAMPLE_EOA}|1732953600|scan|campaign_2024_spring"),
    "wechat-text.json": ("text_message", "c_wechat_message", f"{SAMPLE_GH}|24823471058392817"),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_samples_dry_run(name: str) -> None:
    rule, event_type, external_id = EXPECTED[name]
    [result] = dry_run("wechat", (EVENTS / name).read_bytes())
    assert result["rule"] == rule
    assert result["identity"] == {"type": "wechat", "value": SAMPLE_EOA, "create": True}
    assert (result["event"]["event"], result["event"]["externalId"]) == (event_type, external_id)


def test_sample_qr_follow_carries_scene_and_ticket() -> None:
    [result] = dry_run("wechat", (EVENTS / "wechat-follow-qr-safe.json").read_bytes())
    assert result["event"]["scene"] == "campaign_2024_spring"
    assert result["event"]["ticket"].startswith("gQH47jo")


def test_safe_sample_needs_the_key(tmp_path: Path) -> None:
    accounts = tmp_path / "accounts.yaml"
    accounts.write_text("accounts:\n  - {source: wechat, account: demo, secret: {token: pamtest}}\n")
    with pytest.raises(DryRunError, match="encodingAesKey"):
        dry_run("wechat", (EVENTS / "wechat-follow-qr-safe.json").read_bytes(), accounts_file=str(accounts))


def test_template_receipt_sample_maps_to_nothing() -> None:
    assert dry_run("wechat", (EVENTS / "wechat-template-receipt.json").read_bytes()) == []


def test_cli_map_prints_the_events(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["map", "wechat", str(EVENTS / "wechat-follow-qr-safe.json")]) == 0
    [printed] = json.loads(capsys.readouterr().out)
    assert printed["event"]["externalId"] == EXPECTED["wechat-follow-qr-safe.json"][2]


def test_cli_map_of_the_handshake_says_why(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["map", "wechat", str(EVENTS / "wechat-handshake.json")]) == 1
    assert "URL verification" in capsys.readouterr().err


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_wechat_events", ROOT / "scripts" / "make_wechat_events.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


def test_samples_are_what_the_generator_writes() -> None:
    generator = _generator()
    events = generator.build_events()
    assert sorted(events) == sorted(p.name for p in EVENTS.glob("wechat-*.json"))
    for name, event in events.items():
        assert (EVENTS / name).read_text(encoding="utf-8") == generator.render(event), name


def test_plaintext_samples_are_signed_for_the_plaintext_account() -> None:
    event = json.loads((EVENTS / "wechat-follow-plain.json").read_text(encoding="utf-8"))
    assert event["pathParameters"]["account"] == "demo-plain"
    # the constructed plaintext vector for token mktToken2024 (see test_wechat_crypto)
    assert event["queryStringParameters"]["signature"] == "1cf789568e1865f653f6e9205c4ea5d6416524a0"


def test_generator_check_mode(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    generator = _generator()
    assert generator.main(["--check", "--out", str(tmp_path)]) == 1
    assert generator.main(["--out", str(tmp_path)]) == 0
    assert generator.main(["--check", "--out", str(tmp_path)]) == 0
    stale = tmp_path / "wechat-text.json"
    stale.write_text(stale.read_text(encoding="utf-8").replace("demo-plain", "demo"), encoding="utf-8")
    assert generator.main(["--check", "--out", str(tmp_path)]) == 1
    assert "out of date: wechat-text.json" in capsys.readouterr().err
