"""Regenerate the Taobao sample events (events/taobao-*.json).

Each file is an API Gateway HTTP API v2 event carrying one relay request, signed for the demo
account (appKey 12345678, appSecret helloworld). Timestamps are fixed so the files are
reproducible: the signature's ``timestamp`` and the event's ``requestContext.timeEpoch`` (when
the gateway received it) are the same instant, so the samples pass verification whenever they
are replayed as events. Sending one over HTTP today needs a fresh signature (``send-sample``
re-signs).

    python scripts/make_taobao_events.py          # write the files
    python scripts/make_taobao_events.py --check  # exit 1 if a file is out of date
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from dmhub_adapter.mapping.converters import GMT8
from dmhub_adapter.sources.taobao import TIMESTAMP_FORMAT, signed_request
from dmhub_adapter_tools.local.apigw_event import make_event

EVENTS_DIR = Path(__file__).resolve().parent.parent / "events"
DEMO_SECRET = {"appKey": "12345678", "appSecret": "helloworld"}
SHOP = {"pub_app_key": "12345678", "user_id": 2200123456789, "user_nick": "示例旗舰店"}
BUYER = {"buyer_nick": "t**", "buyer_open_uid": "AAHq5d-EAAeG3JedwSFpZMe1"}
TID = 3898765432101234567  # above 2**53 on purpose: it must survive as an exact integer


def _content(**fields: Any) -> str:
    # TMC sends content as a JSON string that embeds the ids as JSON numbers.
    return json.dumps(dict(sorted(fields.items())), ensure_ascii=False, separators=(",", ":"))


def _trade(message_id: int, topic: str, pub_time: str, *, tid: int = TID, buyer: dict[str, str] = BUYER,
           payment: str = "199.00", status: str) -> dict[str, Any]:
    return {
        "id": message_id,
        "topic": f"taobao_trade_{topic}",
        "pub_time": pub_time,
        **SHOP,
        "content": _content(**buyer, oid=tid, payment=payment, seller_nick=SHOP["user_nick"], status=status,
                            tid=tid, type="fixed"),
    }


def messages() -> dict[str, Any]:
    """Sample name → request body (one TMC message, or a batch)."""
    other_tid = 3898765432105550001
    other_buyer = {"buyer_nick": "z**", "buyer_open_uid": "AAFm2b-EAAeG3JedwSFrQ8cc"}
    return {
        "created": _trade(2760453001234567891, "TradeCreate", "2024-06-18 20:01:05", status="WAIT_BUYER_PAY"),
        "paid": _trade(2760453001234567902, "TradeBuyerPay", "2024-06-18 20:01:41", status="WAIT_SELLER_SEND_GOODS"),
        "shipped": _trade(2760453001234569117, "TradeSellerShip", "2024-06-19 10:22:09",
                          status="WAIT_BUYER_CONFIRM_GOODS"),
        "success": _trade(2760453001234580044, "TradeSuccess", "2024-06-22 18:40:00", status="TRADE_FINISHED"),
        "closed": _trade(2760453001234570321, "TradeClose", "2024-06-19 20:05:12", tid=3898765432109876543,
                         buyer={"buyer_nick": "x**", "buyer_open_uid": "AAGz1c-EAAeG3JedwSFqT0aa"},
                         payment="59.00", status="TRADE_CLOSED_BY_TAOBAO"),
        "refund-created": {
            "id": 2760453001234590087,
            "topic": "taobao_refund_RefundCreated",
            "pub_time": "2024-06-25 09:12:45",
            **SHOP,
            "content": _content(**BUYER, bill_type="refund_bill", modified="2024-06-25 09:12:44", oid=TID,
                                refund_fee="199.00", refund_id=228765432101234567, refund_phase="aftersale",
                                seller_nick=SHOP["user_nick"], tid=TID),
        },
        "batch": {
            "messages": [
                _trade(2760453001234600001, "TradeCreate", "2024-06-26 11:00:00", tid=other_tid, buyer=other_buyer,
                       payment="88.00", status="WAIT_BUYER_PAY"),
                _trade(2760453001234600002, "TradeBuyerPay", "2024-06-26 11:00:30", tid=other_tid, buyer=other_buyer,
                       payment="88.00", status="WAIT_SELLER_SEND_GOODS"),
            ]
        },
    }


def _last_pub_time(body: dict[str, Any]) -> datetime:
    times = [m["pub_time"] for m in body.get("messages", [body])]
    return datetime.strptime(max(times), TIMESTAMP_FORMAT).replace(tzinfo=GMT8)


def build_events() -> dict[str, dict[str, Any]]:
    """File name → API Gateway v2 event."""
    events: dict[str, dict[str, Any]] = {}
    for name, body in messages().items():
        # The relay forwards a second after TMC published the message.
        sent = _last_pub_time(body) + timedelta(seconds=1)
        raw = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        events[f"taobao-{name}.json"] = make_event(
            method="POST",
            source="taobao",
            account="demo",
            body=raw,
            raw_query=signed_request(DEMO_SECRET, raw, "md5", sent),
            headers={"content-type": "application/json; charset=utf-8", "user-agent": "taobao-tmc-relay/1.0"},
            request_id=f"sample-taobao-{name}",
            now_ms=int(sent.timestamp() * 1000),
        )
    return events


def render(event: dict[str, Any]) -> str:
    return json.dumps(event, ensure_ascii=False, indent=2) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="exit 1 if a file differs instead of writing")
    parser.add_argument("--dir", type=Path, default=EVENTS_DIR, help="where the files go (default: events/)")
    args = parser.parse_args(argv)
    stale = []
    for name, event in build_events().items():
        path = args.dir / name
        text = render(event)
        if args.check:
            if not path.is_file() or path.read_text(encoding="utf-8") != text:
                stale.append(name)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path}")
    if stale:
        print(f"out of date: {', '.join(stale)}; run python scripts/make_taobao_events.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
