"""Write the WeChat sample events (events/wechat-*.json): API Gateway HTTP API v2 events signed
and, in safe/compatible mode, encrypted with the secret of a demo account.

Safe and compatible samples (and the handshake) go to ``demo``, the account with an
EncodingAESKey; plaintext samples go to ``demo-plain``, an account in plaintext mode, because a
keyed account refuses plaintext pushes.

Deterministic by default (fixed timestamps, nonces and AES random prefixes), so the files can
be regenerated and compared. Each event's ``requestContext.timeEpoch`` equals its signed
timestamp, so the ingest's timestamp window accepts it when replayed as is. ``--now`` signs
with the current time instead (for a live endpoint; the output then changes on every run).

    python scripts/make_wechat_events.py [--out DIR] [--now]
    python scripts/make_wechat_events.py --check  # exit 1 if a file is out of date
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dmhub_adapter.sources.wechat import Mode, handshake_query, signed_request
from dmhub_adapter_tools.local.accounts import load_accounts
from dmhub_adapter_tools.local.apigw_event import make_event

OFFICIAL_ACCOUNT = "gh_7f083739789a"
OPENID = "oia2TjjewbmiOUlr6X-1crbLOvLw"
# The sample ticket printed in WeChat's createQRCode documentation.
TICKET = "gQH47joAAAAAAAAAASxodHRwOi8vd2VpeGluLnFxLmNvbS9xL2taZ2Z3TVRtNzJXV1Brb3ZhYmJJAAIEZ23sUwMEmm3sUw=="
HEADERS = {"content-type": "text/xml", "user-agent": "Mozilla/4.0"}
#: the demo account of each mode (local/demo-accounts.yaml)
SAFE_ACCOUNT = "demo"
PLAIN_ACCOUNT = "demo-plain"


def _event_xml(create_time: int, event: str, event_key: str | None = None, extra: str = "") -> str:
    key = "" if event_key is None else f"<EventKey><![CDATA[{event_key}]]></EventKey>"
    return (
        f"<xml><ToUserName><![CDATA[{OFFICIAL_ACCOUNT}]]></ToUserName>"
        f"<FromUserName><![CDATA[{OPENID}]]></FromUserName>"
        f"<CreateTime>{create_time}</CreateTime><MsgType><![CDATA[event]]></MsgType>"
        f"<Event><![CDATA[{event}]]></Event>{key}{extra}</xml>"
    )


@dataclass(frozen=True)
class Sample:
    name: str
    mode: Mode
    xml: str
    timestamp: int
    nonce: str
    random16: str | None = None

    @property
    def account(self) -> str:
        return PLAIN_ACCOUNT if self.mode == "plain" else SAFE_ACCOUNT


SAMPLES = [
    Sample("follow-plain", "plain", _event_xml(1732780860, "subscribe", ""), 1732780861, "872301954"),
    # The research digest's constructed safe-mode vector: same query, body and msg_signature.
    Sample(
        "follow-qr-safe",
        "safe",
        _event_xml(1732780800, "subscribe", "qrscene_campaign_2024_spring", f"<Ticket><![CDATA[{TICKET}]]></Ticket>"),
        1732780801,
        "1320562132",
        "0123456789abcdef",
    ),
    Sample("follow-compat", "compat", _event_xml(1732781000, "subscribe", ""), 1732781001, "2045182233",
           "fedcba9876543210"),
    Sample("unfollow", "safe", _event_xml(1732867200, "unsubscribe", ""), 1732867201, "1187304526",
           "aaaabbbbccccdddd"),
    Sample(
        "scan",
        "safe",
        _event_xml(1732953600, "SCAN", "campaign_2024_spring", f"<Ticket><![CDATA[{TICKET}]]></Ticket>"),
        1732953601,
        "733019284",
        "0011223344556677",
    ),
    Sample(
        "text",
        "plain",
        f"<xml><ToUserName><![CDATA[{OFFICIAL_ACCOUNT}]]></ToUserName><FromUserName><![CDATA[{OPENID}]]>"
        "</FromUserName><CreateTime>1732953700</CreateTime><MsgType><![CDATA[text]]></MsgType>"
        "<Content><![CDATA[优惠券]]></Content><MsgId>24823471058392817</MsgId></xml>",
        1732953701,
        "918273645",
    ),
    Sample(
        "template-receipt",
        "compat",
        _event_xml(1732953800, "TEMPLATESENDJOBFINISH", None,
                   "<MsgID>3147483652</MsgID><Status><![CDATA[success]]></Status>"),
        1732953801,
        "564738291",
        "9988776655443322",
    ),
]
HANDSHAKE_ECHOSTR = "5837397520665436492"
HANDSHAKE_TIMESTAMP = 1732780000
HANDSHAKE_NONCE = "1514711492"


def build_events(now: int | None = None) -> dict[str, dict[str, Any]]:
    """``{file name: API Gateway v2 event}``; ``now`` replaces every fixed timestamp."""
    accounts = load_accounts()
    secrets: dict[str, dict[str, Any]] = {}
    for name in (SAFE_ACCOUNT, PLAIN_ACCOUNT):
        secret = accounts.secret("wechat", name)
        if not secret:
            raise SystemExit(f"the packaged demo accounts have no wechat/{name} account")
        secrets[name] = secret
    events: dict[str, dict[str, Any]] = {}
    ts = now or HANDSHAKE_TIMESTAMP
    query = handshake_query(str(secrets[SAFE_ACCOUNT]["token"]), HANDSHAKE_ECHOSTR, timestamp=ts,
                            nonce=HANDSHAKE_NONCE)
    events["wechat-handshake.json"] = make_event(
        method="GET", source="wechat", account=SAFE_ACCOUNT, raw_query=query,
        headers={"user-agent": "Mozilla/4.0"}, request_id="wechat-handshake", now_ms=ts * 1000,
    )
    for sample in SAMPLES:
        ts = now or sample.timestamp
        raw_query, body = signed_request(
            secrets[sample.account], sample.xml, sample.mode, timestamp=ts, nonce=sample.nonce,
            random16=sample.random16,
        )
        events[f"wechat-{sample.name}.json"] = make_event(
            method="POST", source="wechat", account=sample.account, body=body, raw_query=raw_query,
            headers=HEADERS, request_id=f"wechat-{sample.name}", now_ms=ts * 1000,
        )
    return events


def render(event: dict[str, Any]) -> str:
    return json.dumps(event, ensure_ascii=False, indent=2) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent.parent / "events"),
                        help="output directory (default: the repository's events/)")
    parser.add_argument("--now", action="store_true", help="sign with the current time (not reproducible)")
    parser.add_argument("--check", action="store_true", help="exit 1 if a file differs instead of writing")
    args = parser.parse_args(argv)
    if args.check and args.now:
        parser.error("--check compares the deterministic files; it cannot be combined with --now")
    out = Path(args.out)
    stale = []
    for name, event in build_events(int(time.time()) if args.now else None).items():
        path = out / name
        text = render(event)
        if args.check:
            if not path.is_file() or path.read_text(encoding="utf-8") != text:
                stale.append(name)
            continue
        out.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        print(path)
    if stale:
        print(f"out of date: {', '.join(stale)}; run python scripts/make_wechat_events.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
