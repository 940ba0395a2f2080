"""The operator console in a real headless Chromium against ``dmhub-adapter dev``: every page
loads; a refused event is found in the DLQ, replayed from the page after the refusal is
lifted and delivered; an unmapped payload is fixed in the mappings playground."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from dmhub_adapter.sources.wechat import signed_request
from dmhub_adapter_tools.local.accounts import load_accounts
from dmhub_adapter_tools.local.samples import build_sample, wechat_event_xml
from tests.e2e.conftest import RunningStack, start_stack, wait_for
from tests.e2e.console_support import RunningConsole, browser, console_for, new_page, screenshot

pytestmark = pytest.mark.e2e
__all__ = ["browser"]  # the fixture, imported for this module

WECHAT = load_accounts().secret("wechat", "demo") or {}
CARD_RULE = """
  - name: card_claimed
    description: a follower claimed a card (added in the playground)
    when: "lower(MsgType) == 'event' && lower(Event) == 'user_get_card'"
    event: c_wechat_card
    externalId: {template: "{ToUserName}|{FromUserName}|{CreateTime}|card"}
    date: *create_time
    attributes:
      card_id: CardId
"""


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    running = start_stack(tmp_path_factory.mktemp("console-stack"))
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def console(stack: RunningStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningConsole]:
    running = console_for(stack, tmp_path_factory.mktemp("console"))
    try:
        yield running
    finally:
        running.stop()


def send_xml(stack: RunningStack, xml: str) -> httpx.Response:
    raw_query, body = signed_request(WECHAT, xml, "safe")
    return httpx.post(f"{stack.gateway}/webhooks/wechat/demo?{raw_query}", content=body,
                      headers={"content-type": "text/xml"}, timeout=30)


def no_error(page: Any) -> None:
    errors = page.locator(".error")
    assert errors.count() == 0, errors.all_inner_texts()


#: pages whose screenshot the flow tests take, with their data on them
SHOWN_BY_THE_FLOWS = {"webhooks", "trace", "dlq", "unmapped", "playground"}
PAGES = {
    "overview": "/",
    "webhooks": "/webhooks",
    "trace": "/trace",
    "dlq": "/dlq",
    "unmapped": "/unmapped",
    "playground": "/playground?source=wechat",
    "events": "/events?run=1",
}


def test_dead_letter_found_and_replayed_from_the_page(browser: Any, console: RunningConsole,
                                                      stack: RunningStack, tmp_path: Path) -> None:
    openid = "oCon" + secrets.token_urlsafe(12)
    stack.control("config", {"event_types": ["c_something_else"]})  # DM Hub refuses c_wechat_follow
    try:
        sample = build_sample("wechat-follow", WECHAT, openid=openid)
        assert httpx.request(sample.method, sample.url(stack.gateway), content=sample.body,
                             headers=sample.headers, timeout=30).status_code == 200
        wait_for(lambda: stack.queue_depth("DEAD_LETTER_QUEUE_URL") >= 1, timeout=30, what="a dead letter")
    finally:
        stack.control("config", {"event_types": None})  # the refusal is lifted
    page = new_page(browser, console)
    page.goto(console.base + "/dlq")
    no_error(page)
    row = page.locator("tr.message", has_text="c_wechat_follow").first
    if row.count() == 0:  # the reason names the event type; else find the row by the openid's claim
        row = page.locator("tr.message").first
    message_id = row.get_attribute("data-id")
    assert message_id
    screenshot(page, "dlq", tmp_path)
    # the payload viewer: decoded, pretty-printed, with the failure block
    page.goto(f"{console.base}/queues/dlq/messages/{message_id}")
    assert openid in page.locator("#body").inner_text()
    assert page.locator("#reason").inner_text() != "-"
    page.goto(console.base + "/dlq")
    page.locator(f"tr.message[data-id='{message_id}'] input[type=checkbox]").check()
    page.locator("#replay-selected").click()
    assert "1 message(s) done" in page.locator("#action-result").inner_text(timeout=15_000)
    wait_for(lambda: any(openid in str(e) for e in stack.emulator_state()["events"]), timeout=30,
             what="the replayed event in DM Hub")
    # the trace shows it delivered, with the event as DM Hub returns it
    gone = page.goto(f"{console.base}/queues/dlq/messages/{message_id}")
    assert gone is not None and gone.status == 404  # no longer in the DLQ
    assert "no longer on the queue" in page.locator("#error").inner_text()
    # the search box takes the externalId as DM Hub holds it (namespaced source:account:key)
    page.goto(console.base + "/trace")
    page.locator("input[name=q]").fill(dmhub_external_id(stack, openid))
    page.locator("button", has_text="Trace").click()
    wait_for(lambda: page.reload() or page.locator("#claim-status").inner_text() == "DELIVERED", timeout=20,
             what="the claim delivered")
    assert openid in page.locator("#dmhub-event").inner_text()
    screenshot(page, "trace", tmp_path)
    page.context.close()


def dmhub_external_id(stack: RunningStack, openid: str) -> str:
    """The externalId of the event DM Hub holds for ``openid``."""
    events = [e for e in stack.emulator_state()["events"] if openid in str(e)]
    assert events, "no event for the openid"
    return str(events[0]["externalId"])


def test_unmapped_payload_fixed_in_the_playground(browser: Any, console: RunningConsole,
                                                  stack: RunningStack, tmp_path: Path) -> None:
    openid = "oCard" + secrets.token_urlsafe(12)
    response = send_xml(stack, wechat_event_xml("user_get_card", openid=openid, CardId="pXyZ-card-1"))
    assert response.status_code == 200
    wait_for(lambda: stack.queue_depth("UNMAPPED_QUEUE_URL") >= 1, timeout=20, what="an unmapped record")
    page = new_page(browser, console)
    page.goto(console.base + "/unmapped")
    no_error(page)
    screenshot(page, "unmapped", tmp_path)
    page.goto(console.base + "/unmapped?limit=200")
    link = page.locator("tr.message").filter(has_text="no rule matched").locator("a", has_text="view")
    # several records may be waiting: open each until ours
    hrefs = [link.nth(i).get_attribute("href") for i in range(link.count())]
    for href in hrefs:
        page.goto(console.base + str(href))
        if openid in page.locator("#payload").inner_text():
            break
    else:
        raise AssertionError("the unmapped record is not listed")
    # re-map preview with the current mappings: still unmapped
    assert "no rule matched" in page.locator(".mapped-message").first.inner_text()
    screenshot(page, "unmapped-record", tmp_path)
    page.locator("a", has_text="Open in the mappings playground").click()
    page.wait_for_url(re.compile(r"/playground\?from="))
    assert openid in page.locator("#payload").input_value()
    yaml = page.locator("#yaml").input_value()
    assert "rules:" in yaml
    # a broken rule first: check-config's error is shown next to its field
    page.locator("#yaml").fill(yaml + CARD_RULE.replace("card_id: CardId", "card_id: {path: CardId, convert: [nope]}"))
    page.locator("#try").click()
    assert "unknown converter 'nope'" in page.locator("#config-errors").inner_text(timeout=10_000)
    assert "attributes.card_id" in page.locator("#outcome td.fielderr").first.inner_text()
    # the fix
    page.locator("#yaml").fill(yaml + CARD_RULE)
    page.locator("#try").click()
    page.locator("#outcome code.rule").wait_for(timeout=10_000)
    assert page.locator("#outcome code.rule").first.inner_text() == "card_claimed"
    event = page.locator("#outcome pre.event").first.inner_text()
    assert "c_wechat_card" in event and "pXyZ-card-1" in event
    page.locator("#outcome").scroll_into_view_if_needed()
    screenshot(page, "playground", tmp_path)
    # nothing was saved: replaying the record keeps it, still unmapped; deleting needs the box
    record = page.url.split("from=", 1)[1]
    page.goto(f"{console.base}/queues/unmapped/messages/{record}")
    page.locator("#replay-one").click()
    result = page.locator("#action-result").inner_text(timeout=15_000)
    assert "0 message(s) done, 1 kept" in result and "still unmapped" in page.locator("#result").inner_text()
    page.locator("button", has_text="Delete").click()
    assert "confirmation" in page.locator("#result .error").inner_text(timeout=10_000)
    page.locator("input[name=confirm]").check()
    page.locator("button", has_text="Delete").click()
    page.locator("#action-result").wait_for(timeout=10_000)
    assert "1 message(s) done" in page.locator("#action-result").inner_text()
    assert page.goto(f"{console.base}/queues/unmapped/messages/{record}").status == 404
    page.context.close()


def test_a_webhook_appears_in_the_live_feed_and_opens_its_trace(browser: Any, console: RunningConsole,
                                                                 stack: RunningStack, tmp_path: Path) -> None:
    page = new_page(browser, console)
    page.goto(console.base + "/webhooks")
    no_error(page)
    openid = "oFeed" + secrets.token_urlsafe(10)
    sample = build_sample("wechat-follow", WECHAT, openid=openid)
    assert httpx.request(sample.method, sample.url(stack.gateway), content=sample.body, headers=sample.headers,
                         timeout=30).status_code == 200
    forged = httpx.post(sample.url(stack.gateway).replace("signature=", "signature=0"), content=sample.body,
                        headers=sample.headers, timeout=30)
    assert forged.status_code in (401, 403)
    # no reload: the feed polls the gateway's request log
    ours = page.locator("tr.request", has_text=openid)
    ours.first.wait_for(timeout=15_000)
    assert ours.first.locator("[data-field=outcome]").inner_text() == "enqueued 1"
    assert "wechat/demo" in ours.first.inner_text()
    page.locator("tr.request", has_text="refused").first.wait_for(timeout=10_000)
    screenshot(page, "webhooks", tmp_path)
    # filtered to refusals: ours goes, the forged one stays, with its reason
    page.locator("select[name=outcome]").select_option("refused")
    wait_for(lambda: page.locator("tr.request", has_text=openid).count() == 0, timeout=10,
             what="the feed filtered to refusals")
    refused = page.locator("tr.request").first
    assert "refused 1" in refused.inner_text() and str(forged.status_code) in refused.inner_text()
    page.locator("select[name=outcome]").select_option("")
    page.locator("input[name=q]").fill(openid)
    # both filters change the feed one after the other: wait for the one row to be ours, not for
    # any single row (the refusals view also shows one, until the search applies)
    wait_for(lambda: page.locator("tr.request").count() == 1 and openid in page.locator("tr.request").inner_text(),
             timeout=10, what="the feed filtered to ours")
    assert openid in page.locator("tr.request").inner_text()
    ours.first.locator("a.open-trace").click()
    page.wait_for_url(re.compile(r"/trace\?"))
    assert page.locator("#claim-status").inner_text() in ("QUEUED", "DELIVERED")
    page.context.close()


# Last, so the pages show what the tests above sent through the stack.
@pytest.mark.parametrize("name", list(PAGES))
def test_every_page_loads(browser: Any, console: RunningConsole, stack: RunningStack, tmp_path: Path,
                          name: str) -> None:
    page = new_page(browser, console)
    response = page.goto(console.base + PAGES[name])
    assert response is not None and response.status == 200
    no_error(page)
    assert page.locator("h1").count() == 1
    if name == "overview":
        # the numbers refresh on their own (htmx, every 5 s): the fragment is fetched again
        with page.expect_response(lambda r: "/fragments/overview" in r.url, timeout=15_000) as refreshed:
            pass
        assert refreshed.value.status == 200
        assert page.locator("[data-queue=dlq] [data-field=depth]").inner_text().isdigit()
    if name not in SHOWN_BY_THE_FLOWS:
        screenshot(page, name, tmp_path)
    page.context.close()
