"""WeCom customer-contact callbacks (sources/wecom, mappings/wecom.yaml): the official URL
verification vector, pushes encrypted by wechatpy, the event table and dedup keys, and bad input."""

from __future__ import annotations

from typing import Any

import pytest

from dmhub_adapter.errors import BadRequest, Forbidden, Unauthorized, Unavailable, WebhookError
from dmhub_adapter.mapping.engine import MessageResult, map_payload
from dmhub_adapter.sources import msgcrypt
from dmhub_adapter.sources.base import Account, IngestOutcome, Source
from dmhub_adapter.sources.registry import source_for
from dmhub_adapter.sources.wechat import crypto as wechat_crypto
from dmhub_adapter.webhook import WebhookRequest
from tests import wecom_push as wc

NOW = 1735689601


def _source() -> Source:
    found = source_for("wecom")
    assert found is not None
    return found


def _account(secret: dict[str, Any] | None = None) -> Account:
    return Account("wecom", "demo", _source().mapping, wc.SECRET if secret is None else secret)


def _request(query: dict[str, str], body: bytes = b"", *, method: str = "POST", received_at: float = NOW + 1
             ) -> WebhookRequest:
    return WebhookRequest(method=method, source="wecom", account="demo", body=body, query=query,
                          headers={"content-type": "text/xml"}, received_at=received_at)


def _map(query: dict[str, str], body: bytes, **kwargs: Any) -> MessageResult:
    source = _source()
    inbound = source.receive(_request(query, body, **kwargs), _account())
    [result] = map_payload(source.mapping, inbound.messages)
    return result


def test_the_crypto_is_one_module_shared_with_wechat() -> None:
    assert wechat_crypto.decrypt is msgcrypt.decrypt and wechat_crypto.encrypt is msgcrypt.encrypt


def test_the_official_url_verification_vector() -> None:
    query = {"msg_signature": "012bc692d0a58dd4b10f8dfe5c4ac00ae211ebeb", "timestamp": "1476416373",
             "nonce": "47744683",
             "echostr": "fsi1xnbH4yQh0+PJxcOdhhK6TDXkjMyhEPA7xB2TGz6b+g7xyAbEkRxN/3cNXW9qdqjnoVzEtpbhnFyq6SVHyA=="}
    response = _source().handshake(_request(query, method="GET", received_at=1476416373), _account())
    assert (response.status, response.body) == (200, "1288432023552776189")
    assert response.content_type.startswith("text/plain")
    with pytest.raises(Unauthorized):
        _source().handshake(_request({**query, "nonce": "47744684"}, method="GET", received_at=1476416373),
                            _account())


def test_the_published_add_contact_push_decrypts_and_maps() -> None:
    # research/new-sources.md §2.6 B, verified there with wechatpy and Node.
    encrypted = (
        "scEag1243Fmy/fYz4Ux8DxDPYH60EsUx+BrIEkhOXCOv/ohdVNoBBfy0h3EAStvYWdnnrjv5x+doLGSoSr9vJBLK7hgjLbyOxztRqBwJeVH"
        "j1q1dK135nh3bXKJvZxxri0o6wJ59tIBnCiH4G6f1MVy2y1WtQq+0kWcYYQBthLMB96BBMXRJKhpKQ71b+EIqMXXNM99r33jVShG/XWNevD"
        "fQoGUdEtSUGqOM4SKnRxLiKWC4IHpA/BqCGPx5zBCigZWtt4HMTBCT8Q/ee0MT9MIm+qP0WrWFb654t9veRlpR26mWlwNh2BA3xFWBzoG8o"
        "zP7Ms6/j9Gv/d3X6GEiTQa+QwYzhDX39ey8YJFFwoFGU+FUbeezdLfGhp3Efb+XNz3mv4SIKCbgRNc1ERCpbVztnYZ33vJU9vM302NgjOBQu"
        "hXphJA71IF2XqrHP4LSxQkYM1iP+ylbiyv2tD4LfBMBxtZMeC8mOYRSo0W4K6pLluX79QPim3NyP16yUsFLG6ukFUoKDySlMxP2GunAc005SR"
        "8NLiqGRrRmUfdY5zh64VVyedtBuwOSGomI2HZ7Tt2U39wc5iObKn93WNaIshwcSFUcQ42JI/DG5P08AeyoROk1rNce+CqoSpLrCCKsIjUo0cc3"
        "O//l6pZRYL9WNzKgEheQk1CR9G092VF7mx2miOoLmjrAUOz/PPlS1/f0DfzRZX54a+pqDTxf7UdmXA==")
    body = (f"<xml><ToUserName><![CDATA[ww1436e0e65a779aee]]></ToUserName><Encrypt><![CDATA[{encrypted}]]></Encrypt>"
            "<AgentID><![CDATA[1000002]]></AgentID></xml>").encode()
    query = {"msg_signature": "70a5fd2483f515bd3c287fb48bedc9a491468a92", "timestamp": "1735689601",
             "nonce": "1372623149"}
    result = _map(query, body)
    [mapped] = result.events
    assert mapped.identity is not None
    assert (mapped.identity.type, mapped.identity.value) == ("wecom-external", "wmAJ2GCAAAXtWyujaWJHDDGi0mACHAAA")
    event = mapped.event.model_dump(exclude_none=True)
    assert event == {"event": "c_wecom_contact_added", "date": "2025-01-01T00:00:00Z", "source": "企业微信",
                     "externalId": "change_external_contact|add_external_contact|zhangsan|"
                                   "wmAJ2GCAAAXtWyujaWJHDDGi0mACHAAA|1735689600",
                     "user_id": "zhangsan", "state": "crm_c7"}
    with pytest.raises(Unauthorized):
        _map({**query, "timestamp": "1735689602"}, body)


@pytest.mark.parametrize(("change_type", "event", "attributes"), [
    ("add_external_contact", "c_wecom_contact_added", {"user_id": "zhangsan", "state": "crm_c7"}),
    ("add_half_external_contact", "c_wecom_contact_half_added", {"user_id": "zhangsan", "state": "crm_c7"}),
    ("edit_external_contact", "c_wecom_contact_edited", {"user_id": "zhangsan"}),
    ("del_follow_user", "c_wecom_deleted_by_customer", {"user_id": "zhangsan"}),
    ("del_external_contact", "c_wecom_deleted_by_employee",
     {"user_id": "zhangsan", "delete_source": "DELETE_BY_TRANSFER"}),
    ("transfer_fail", "c_wecom_transfer_failed", {"user_id": "zhangsan", "fail_reason": "customer_refused"}),
])
def test_each_contact_change_is_its_event(change_type: str, event: str, attributes: dict[str, str]) -> None:
    extra = {"del_external_contact": {"Source": "DELETE_BY_TRANSFER"},
             "transfer_fail": {"FailReason": "customer_refused"}}.get(change_type, {})
    query, body = wc.push(wc.contact_xml(change_type, created=NOW, **extra), timestamp=NOW)
    [mapped] = _map(query, body).events
    dumped = mapped.event.model_dump(exclude_none=True)
    assert dumped["event"] == event
    assert {k: v for k, v in dumped.items() if k not in ("event", "date", "externalId", "source")} == attributes
    assert not {"targetId", "targetName", "summary"} & set(dumped)


def test_group_chat_members_join_and_leave_one_event_each_external_member() -> None:
    members = ["wmMember1", "zhangsan", "woMember2"]
    query, body = wc.push(wc.chat_xml("add_member", members, created=NOW), timestamp=NOW)
    result = _map(query, body)
    assert [(m.event.event, m.identity.value if m.identity else None) for m in result.events] == [
        ("c_wecom_group_joined", "wmMember1"), ("c_wecom_group_joined", "woMember2")]
    query, body = wc.push(wc.chat_xml("del_member", ["wmMember1"], created=NOW), timestamp=NOW)
    [left] = _map(query, body).events
    assert left.event.event == "c_wecom_group_left"
    query, body = wc.push(wc.chat_xml("change_name", [], created=NOW), timestamp=NOW)
    assert _map(query, body).status == "skipped"


def test_retries_share_the_external_id_and_a_re_add_does_not() -> None:
    keys = []
    for created, stamp in ((NOW, NOW), (NOW, NOW + 5), (NOW + 60, NOW + 60)):
        query, body = wc.push(wc.contact_xml(created=created), timestamp=stamp, nonce=str(stamp))
        keys.append(_map(query, body, received_at=stamp).events[0].event.externalId)
    assert keys[0] == keys[1] != keys[2]


def test_replies() -> None:
    source = _source()
    ok = source.reply(_request({}), IngestOutcome(enqueued=1))
    assert (ok.status, ok.body) == (200, "")


def _bad(kind: str) -> tuple[dict[str, str], bytes, dict[str, Any] | None, float]:
    secret: dict[str, Any] | None = None
    received = NOW + 1
    query, body = wc.push(wc.contact_xml(created=NOW), timestamp=NOW)
    if kind == "other_corp":
        query, body = wc.push(wc.contact_xml(created=NOW), timestamp=NOW, receive_id="wwOTHERCORPID0000")
    elif kind == "other_to_user":
        query, body = wc.push(wc.contact_xml(created=NOW, corp_id="wwOTHER"), timestamp=NOW)
    elif kind == "signature":
        query["msg_signature"] = "0" * 40
    elif kind == "stale":
        received = NOW + 301
    elif kind == "old_message":
        query, body = wc.push(wc.contact_xml(created=NOW - 400), timestamp=NOW)
    elif kind == "plain":
        body = wc.contact_xml(created=NOW).encode()
    elif kind == "echostr_on_post":
        query["echostr"] = "x"
    elif kind == "not_xml":
        body = b"{}"
    elif kind == "entity":
        body = b'<!DOCTYPE x [<!ENTITY e "e">]><xml><Encrypt>&e;</Encrypt></xml>'
    elif kind == "bad_key":
        secret = {**wc.SECRET, "encodingAesKey": "short"}
    elif kind == "no_corp":
        secret = {k: v for k, v in wc.SECRET.items() if k != "corpId"}
    return query, body, secret, received


@pytest.mark.parametrize(("kind", "error"), [
    ("other_corp", BadRequest), ("other_to_user", Forbidden), ("signature", Unauthorized), ("stale", Unauthorized),
    ("old_message", Unauthorized), ("plain", BadRequest), ("echostr_on_post", Unauthorized),
    ("not_xml", BadRequest), ("entity", BadRequest), ("bad_key", Unavailable), ("no_corp", Unavailable),
])
def test_bad_input(kind: str, error: type[WebhookError]) -> None:
    query, body, secret, received = _bad(kind)
    with pytest.raises(error) as caught:
        _source().receive(_request(query, body, received_at=received), _account(secret))
    assert caught.value.message
    if kind == "other_corp":
        assert "CorpID" in caught.value.message
    if error is Unavailable:
        assert ("encodingAesKey" if kind == "bad_key" else "corpId") in caught.value.message


def test_the_kept_clear_text_replays_as_the_same_message() -> None:
    query, body = wc.push(wc.contact_xml(created=NOW), timestamp=NOW)
    inbound = _source().receive(_request(query, body), _account())
    assert b"<Encrypt>" not in inbound.payload
    again = _source().parse_unverified(_request({}, inbound.payload, received_at=NOW + 86400 * 30), _account())
    assert again.messages == inbound.messages
