"""The operator console's protections, against the real console process over a real local
stack: only 127.0.0.1, only with the printed token (then its cookie), a CSRF token on every
action, payloads shown inert in a real browser, secrets never rendered."""

from __future__ import annotations

import re
import secrets
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest

from dmhub_adapter.sources.wechat import signed_request
from dmhub_adapter_tools.local.accounts import load_accounts
from dmhub_adapter_tools.local.samples import wechat_event_xml
from tests.e2e.conftest import RunningStack, start_stack, wait_for
from tests.e2e.console_support import RunningConsole, browser, console_for, new_page

pytestmark = pytest.mark.e2e
__all__ = ["browser"]

ACCOUNTS = load_accounts()
WECHAT = ACCOUNTS.secret("wechat", "demo") or {}
MARK = "pwn" + secrets.token_hex(4)
#: an HTML/JS payload: were it rendered as markup, it would set window.<MARK> or open a dialog
HOSTILE = (f'</textarea></pre><script>window.{MARK}=1;alert(1)</script>'
           f'<img src=x onerror="window.{MARK}=2;alert(2)"><b id="{MARK}">bold</b>')
PAGES = ["/", "/trace", "/dlq", "/unmapped", "/playground?source=wechat", "/events?run=1"]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    running = start_stack(tmp_path_factory.mktemp("console-security-stack"))
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def console(stack: RunningStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningConsole]:
    running = console_for(stack, tmp_path_factory.mktemp("console-security"))
    try:
        yield running
    finally:
        running.stop()


@contextmanager
def signed_in(console: RunningConsole) -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30) as client:
        response = client.get(console.url)
        assert response.status_code == 303
        yield client


def test_pages_need_the_token_then_its_cookie(console: RunningConsole) -> None:
    for path in [*PAGES, "/static/htmx.min.js", "/fragments/overview"]:
        assert httpx.get(console.base + path, timeout=10).status_code == 403, path
    assert httpx.get(console.base + "/?token=" + "x" * 43, timeout=10).status_code == 403
    assert httpx.get(console.base + "/", cookies={"dmhub_console": "guess"}, timeout=10).status_code == 403
    first = httpx.get(console.url, timeout=10)
    assert first.status_code == 303 and first.headers["location"] == "/"  # the token leaves the URL
    cookie = first.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie
    with signed_in(console) as client:
        page = client.get(console.base + "/")
        assert page.status_code == 200
        assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
        assert "script-src 'self'" in page.headers["content-security-policy"]


def test_only_loopback_and_only_its_host_name(console: RunningConsole) -> None:
    port = int(console.base.rsplit(":", 1)[1])
    listening = Path("/proc/net/tcp").read_text().splitlines()[1:]
    local = {line.split()[1] for line in listening if line.split()[3] == "0A"}  # LISTEN
    assert f"0100007F:{port:04X}" in local
    assert f"00000000:{port:04X}" not in local
    # another address of this machine does not answer
    try:
        address = socket.gethostbyname(socket.gethostname())
    except OSError:
        address = "127.0.0.1"
    if not address.startswith("127."):
        with pytest.raises((httpx.ConnectError, httpx.ConnectTimeout)):
            httpx.get(f"http://{address}:{port}/", timeout=3)
    # DNS rebinding: a page served under another name is refused even with the cookie
    with signed_in(console) as client:
        refused = client.get(console.base + "/", headers={"host": f"evil.example:{port}"})
        assert refused.status_code == 403


def test_every_action_needs_the_csrf_token(console: RunningConsole, stack: RunningStack) -> None:
    send_unmapped(stack, "card-csrf-" + secrets.token_hex(3))
    wait_for(lambda: stack.queue_depth("UNMAPPED_QUEUE_URL") >= 1, timeout=20, what="an unmapped record")
    before = stack.queue_depth("UNMAPPED_QUEUE_URL")
    with signed_in(console) as client:
        page = client.get(console.base + "/unmapped").text
        ids = re.findall(r'name="id" value="([^"]+)"', page)
        assert ids
        form = {"action": "delete", "confirm": "yes", "id": ids}
        for extra in ({}, {"csrf": "0" * 64}):
            refused = client.post(console.base + "/queues/unmapped/act", data={**form, **extra})
            assert refused.status_code == 403, refused.text
        assert client.post(console.base + "/queues/unmapped/act", data=form,
                           headers={"x-csrf-token": "nope"}).status_code == 403
        assert client.post(console.base + "/playground/try", data={"source": "wechat"}).status_code == 403
    assert stack.queue_depth("UNMAPPED_QUEUE_URL") == before  # nothing was deleted


def send_unmapped(stack: RunningStack, card: str, openid: str | None = None) -> None:
    xml = wechat_event_xml("user_get_card", openid=openid or "oSec" + secrets.token_hex(6), CardId=card)
    raw_query, body = signed_request(WECHAT, xml, "safe")
    response = httpx.post(f"{stack.gateway}/webhooks/wechat/demo?{raw_query}", content=body,
                          headers={"content-type": "text/xml"}, timeout=30)
    assert response.status_code == 200, response.text


def test_a_hostile_payload_is_shown_inert(browser: Any, console: RunningConsole, stack: RunningStack) -> None:
    openid = "oXss" + secrets.token_hex(6)
    send_unmapped(stack, HOSTILE, openid)
    wait_for(lambda: stack.queue_depth("UNMAPPED_QUEUE_URL") >= 1, timeout=20, what="the unmapped record")
    with signed_in(console) as client:
        listing = client.get(console.base + "/unmapped?limit=200").text
        ids = re.findall(r'href="/queues/unmapped/messages/([^"]+)"', listing)
        ours = None
        for message_id in ids:
            html = client.get(f"{console.base}/queues/unmapped/messages/{message_id}").text
            if openid in html:
                ours = message_id
                break
        assert ours, "the hostile record is not listed"
        # the server escapes it: no markup of the payload reaches the page
        assert f"<script>window.{MARK}" not in html and f'id="{MARK}"' not in html
        assert f"&lt;script&gt;window.{MARK}" in html
    page = new_page(browser, console)
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    for path in (f"/queues/unmapped/messages/{ours}", f"/playground?from={ours}"):
        page.goto(console.base + path)
        page.wait_for_load_state("load")
        assert page.evaluate(f"window.{MARK}") is None
        assert page.locator(f"#{MARK}").count() == 0
        assert page.locator("script").count() == 1  # htmx, nothing else
    page.goto(f"{console.base}/queues/unmapped/messages/{ours}")
    assert f"<script>window.{MARK}=1" in page.locator("#payload").inner_text()  # shown as text
    page.goto(f"{console.base}/playground?from={ours}")
    assert HOSTILE in page.locator("#payload").input_value()
    page.locator("#try").click()
    page.locator("#outcome .mapped-message").wait_for(timeout=10_000)
    assert page.evaluate(f"window.{MARK}") is None
    assert not dialogs
    page.context.close()


def test_secrets_are_never_rendered(console: RunningConsole, stack: RunningStack) -> None:
    # a delivery makes the senders fetch and share a DM Hub token
    from dmhub_adapter_tools.local.samples import build_sample

    sample = build_sample("wechat-follow", WECHAT, openid="oSecret" + secrets.token_hex(6))
    httpx.request(sample.method, sample.url(stack.gateway), content=sample.body, headers=sample.headers,
                  timeout=30)
    wait_for(stack.drained, timeout=30, what="the delivery")
    dynamodb = boto3.session.Session(region_name="eu-west-1").client("dynamodb", endpoint_url=stack.info["moto"])
    table = stack.info["environment"]["IDEMPOTENCY_TABLE"]
    tokens = [item["token"]["S"] for item in dynamodb.scan(TableName=table)["Items"]
              if item["pk"]["S"].startswith("token#") and "token" in item]
    assert tokens, "no shared token was stored"
    hidden = set(tokens) | {"demo-secret"}
    for entry in ACCOUNTS.accounts:
        # the secret parts (appId, appKey and originalId are public identifiers)
        hidden |= {str(v) for k, v in (entry.get("secret") or {}).items()
                   if any(word in k.lower() for word in ("secret", "token", "aeskey", "password")) or k == "key"}
    assert len(hidden) >= 4
    with signed_in(console) as client:
        for path in PAGES:
            html = client.get(console.base + path).text
            leaked = [value[:4] + "…" for value in hidden if value in html]
            assert not leaked, f"{path} shows secrets {leaked}"
