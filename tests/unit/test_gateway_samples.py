"""``send-sample``: every sample passes the real adapter's verification after the gateway's
event conversion, maps to a CustomerEvent, and the command sends it over a socket."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dmhub_adapter.apigw import request_from_event
from dmhub_adapter.errors import WebhookError
from dmhub_adapter.mapping.engine import map_payload
from dmhub_adapter.sources.base import Account
from dmhub_adapter.sources.registry import source_for
from dmhub_adapter_tools.cli import main
from dmhub_adapter_tools.local.accounts import load_accounts
from dmhub_adapter_tools.local.gateway import LocalGateway, build_event
from dmhub_adapter_tools.local.samples import SAMPLES, SampleRequest, UnknownSample, build_sample

ACCOUNTS = load_accounts()


def _through_gateway(sample: SampleRequest, secret: dict[str, Any] | None = None) -> tuple[Any, Account, Any]:
    event = build_event(method=sample.method, raw_path=sample.path, raw_query=sample.raw_query,
                        headers=list(sample.headers.items()), body=sample.body, source=sample.source,
                        account=sample.account)
    adapter = source_for(sample.source)
    assert adapter is not None
    account = Account(sample.source, sample.account, adapter.mapping,
                      secret if secret is not None else ACCOUNTS.secret(sample.source, sample.account))
    return adapter, account, request_from_event(event)


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_every_sample_is_authentic_and_maps(name: str) -> None:
    spec = SAMPLES[name]
    sample = build_sample(name, ACCOUNTS.secret(spec.source, spec.account) or {})
    assert sample.account == spec.account
    adapter, account, request = _through_gateway(sample)
    if sample.method == "GET":
        assert adapter.handshake(request, account).body == sample.facts["echostr"]
        return
    inbound = adapter.receive(request, account)
    results = map_payload(adapter.mapping, inbound.messages, {"source": spec.source, "account": spec.account})
    assert [r.status for r in results] == ["mapped"]
    assert results[0].events[0].event.event.startswith("c_")


def test_a_sample_signed_with_another_secret_is_refused() -> None:
    sample = build_sample("wechat-follow", {**(ACCOUNTS.secret("wechat", "demo") or {}), "token": "other"})
    adapter, account, request = _through_gateway(sample)
    with pytest.raises(WebhookError) as raised:
        adapter.receive(request, account)
    assert raised.value.status == 401


def test_samples_are_fresh_unless_pinned() -> None:
    secret = ACCOUNTS.secret("taobao", "demo") or {}
    one, two = build_sample("taobao-paid", secret), build_sample("taobao-paid", secret)
    assert one.facts["tid"] != two.facts["tid"]
    pinned = build_sample("taobao-paid", secret, tid=3800000000000000001, now=1_700_000_000)
    assert pinned.facts["tid"] == 3800000000000000001
    assert "timestamp=2023-11-15+06%3A13%3A20" in pinned.raw_query  # GMT+8 of the pinned instant
    follow = build_sample("wechat-follow", ACCOUNTS.secret("wechat", "demo") or {}, openid="oPinned", now=1_700_000_000)
    assert follow.facts == {"mode": "safe", "openid": "oPinned", "event": "subscribe", "created": 1_700_000_000}
    with pytest.raises(UnknownSample):
        build_sample("nope", {})


# -- the command -----------------------------------------------------------------------------------


class Recorder:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def __call__(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        self.events.append(event)
        return {"statusCode": 200, "headers": {"Content-Type": "text/plain"}, "body": "success"}


@pytest.fixture
def gateway() -> Iterator[tuple[LocalGateway, Recorder]]:
    recorder = Recorder()
    server = LocalGateway(recorder, port=0, on_request=lambda _line: None).start()
    try:
        yield server, recorder
    finally:
        server.stop()


def test_send_sample_sends_the_same_signed_request_repeatedly(
    gateway: tuple[LocalGateway, Recorder], capsys: pytest.CaptureFixture[str]
) -> None:
    server, recorder = gateway
    code = main(["send-sample", "wechat-follow", "--gateway", server.url, "--repeat", "3"])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert out.out.count("POST /webhooks/wechat/demo → 200 OK") == 3
    assert "success" in out.out
    assert len(recorder.events) == 3
    assert len({(e["rawQueryString"], e["body"]) for e in recorder.events}) == 1  # a retry, not a new push
    assert recorder.events[0]["pathParameters"] == {"source": "wechat", "account": "demo"}
    assert "encrypt_type=aes" in recorder.events[0]["rawQueryString"]


def test_plaintext_sample_goes_to_the_plaintext_account(
    gateway: tuple[LocalGateway, Recorder], capsys: pytest.CaptureFixture[str]
) -> None:
    server, recorder = gateway
    assert main(["send-sample", "wechat-plain-follow", "--gateway", server.url]) == 0, capsys.readouterr().err
    assert "POST /webhooks/wechat/demo-plain → 200 OK" in capsys.readouterr().out
    [event] = recorder.events
    assert event["pathParameters"] == {"source": "wechat", "account": "demo-plain"}
    assert "encrypt_type" not in event["rawQueryString"]
    adapter = source_for("wechat")
    assert adapter is not None
    request = request_from_event(event)
    plain = Account("wechat", "demo-plain", adapter.mapping, ACCOUNTS.secret("wechat", "demo-plain"))
    assert adapter.receive(request, plain).context["mode"] == "plain"
    # the keyed account refuses plaintext even when the signature is its own
    keyed_secret = ACCOUNTS.secret("wechat", "demo") or {}
    own = build_sample("wechat-plain-follow", keyed_secret, account="demo")
    _, keyed, own_request = _through_gateway(own)
    with pytest.raises(WebhookError) as raised:
        adapter.receive(own_request, keyed)
    assert raised.value.status == 403


def test_send_sample_uses_the_accounts_file(gateway: tuple[LocalGateway, Recorder], tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    server, recorder = gateway
    accounts = tmp_path / "accounts.yaml"
    accounts.write_text("accounts:\n  - {source: taobao, account: shop1, secret: {appKey: k1, appSecret: s1}}\n")
    assert main(["send-sample", "taobao-paid", "--gateway", server.url, "--accounts", str(accounts),
                 "--account", "shop1", "--tid", "3800000000000000042"]) == 0
    event = recorder.events[0]
    assert event["rawPath"] == "/webhooks/taobao/shop1"
    assert "app_key=k1" in event["rawQueryString"]
    assert "3800000000000000042" in event["body"]
    assert main(["send-sample", "wechat-follow", "--gateway", server.url, "--accounts", str(accounts)]) == 1
    assert "no wechat/demo account" in capsys.readouterr().err


def test_send_sample_list_and_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["send-sample", "--list"]) == 0
    listed = capsys.readouterr().out
    for name in ("wechat-follow", "wechat-unfollow", "wechat-plain-follow", "taobao-paid", "taobao-created"):
        assert name in listed
    assert main(["send-sample", "no-such-sample"]) == 2
    assert "unknown sample" in capsys.readouterr().err
    assert main(["send-sample"]) == 2


def test_send_sample_reports_an_unreachable_gateway(capsys: pytest.CaptureFixture[str]) -> None:
    from tests.conftest import free_port

    assert main(["send-sample", "taobao-paid", "--gateway", f"http://127.0.0.1:{free_port()}"]) == 1
    assert "is `dmhub-adapter dev` running?" in capsys.readouterr().err
