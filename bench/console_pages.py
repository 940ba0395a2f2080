"""Page load times of the operator console over a local stack holding many claims and dead
letters (issue: 10,000 claims, 1,000 DLQ messages).

    python bench/console_pages.py [--claims 10000] [--dead-letters 1000] [--runs 7]

Starts ``dmhub-adapter dev`` and ``dmhub-adapter console`` as child processes on free ports,
writes the claims straight into the table (a third delivered and a tenth failed within the
last hour), the dead letters into the DLQ, 50 unmapped records and 1,000 refused requests
into the gateway's log, then times each page (server time to the last byte, as a browser's
document request sees it) and prints the median and the slowest of ``--runs`` loads.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3
import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import fake_aws_environment

PAGES = ["/", "/fragments/overview", "/webhooks", "/fragments/requests", "/trace?q=bench-5000", "/dlq",
         "/unmapped", "/playground?source=wechat", "/events?run=1"]


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def command(name: str, *args: str) -> list[str]:
    script = Path(sys.executable).with_name("dmhub-adapter")
    return [str(script), name, *args] if script.exists() else [sys.executable, "-m", "dmhub_adapter_tools.cli",
                                                              name, *args]


def wait_file(path: Path, process: subprocess.Popen[bytes], timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"{process.args} did not start")
        time.sleep(0.05)
    return path.read_text(encoding="utf-8")


def fill(info: dict[str, Any], claims: int, dead_letters: int) -> None:
    env = info["environment"]
    session = boto3.session.Session(region_name="eu-west-1")
    dynamodb = session.client("dynamodb", endpoint_url=info["moto"])
    sqs = session.client("sqs", endpoint_url=info["moto"])
    now = int(time.time())

    def item(index: int) -> dict[str, Any]:
        status = "DELIVERED" if index % 3 == 0 else "FAILED" if index % 10 == 1 else "QUEUED"
        attributes: dict[str, Any] = {
            "pk": {"S": f"wechat#demo#bench-{index}"}, "status": {"S": status},
            "claimedAt": {"N": str(now - 60)}, "queuedAt": {"N": str(now - 59)},
            "expiresAt": {"N": str(now + 7 * 86400)}}
        if status == "DELIVERED":
            attributes["deliveredAt"] = {"N": str(now - 30)}
            attributes["dmhubId"] = {"S": str(index)}
        if status == "FAILED":
            attributes["failedAt"] = {"N": str(now - 30)}
            attributes["failureReason"] = {"S": "refused"}
        return attributes

    def write(start: int) -> None:
        chunk = [{"PutRequest": {"Item": item(i)}} for i in range(start, min(start + 25, claims))]
        request = {env["IDEMPOTENCY_TABLE"]: chunk}
        while request:
            request = dynamodb.batch_write_item(RequestItems=request).get("UnprocessedItems") or {}

    def dead(start: int) -> None:
        sqs.send_message_batch(QueueUrl=env["DEAD_LETTER_QUEUE_URL"], Entries=[
            {"Id": str(i), "MessageBody": json.dumps({
                "version": 1, "source": "wechat", "account": "demo", "claim_key": f"wechat#demo#bench-{i}",
                "identity": {"type": "wechat", "value": f"o{i}"},
                "event": {"event": "c_wechat_follow", "date": "2024-01-01T00:00:00Z",
                          "externalId": f"wechat:demo:bench-{i}"},
                "failure": {"reason": "DM Hub refused the event type", "kind": "permanent"}})}
            for i in range(start, min(start + 10, dead_letters))])

    def unmapped(index: int) -> None:
        sqs.send_message(QueueUrl=env["UNMAPPED_QUEUE_URL"], MessageBody=json.dumps({
            "version": 1, "source": "wechat", "account": "demo", "payload_type": "text/xml",
            "payload": f"<xml><MsgType>event</MsgType><Event>user_get_card</Event><N>{index}</N></xml>",
            "payload_encoding": "utf-8", "headers": {}, "reasons": ["message #1: no rule matched this message"],
            "received_at": time.time()}))

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(write, range(0, claims, 25)))
        list(pool.map(dead, range(0, dead_letters, 10)))
        list(pool.map(unmapped, range(50)))
    with httpx.Client(timeout=10) as client:
        for _ in range(1000):  # refused fast: fills the gateway's request log (1,000 kept)
            client.post(f"{info['gateway']}/webhooks/wechat/demo?signature=0&timestamp=0&nonce=0", content=b"<xml/>")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--claims", type=int, default=10_000)
    parser.add_argument("--dead-letters", type=int, default=1_000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--settle", type=float, default=20.0, help="seconds between start and the timed loads")
    args = parser.parse_args()
    fake_aws_environment()
    os.environ.pop("AWS_ENDPOINT_URL", None)
    with tempfile.TemporaryDirectory() as scratch:
        ready, console_ready = Path(scratch) / "dev.json", Path(scratch) / "console.txt"
        gateway_port = free_port()
        dev = subprocess.Popen(command("dev", "--port", str(gateway_port), "--ready-file", str(ready),
                                       "--poll-wait", "1"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        console = None
        try:
            info = json.loads(wait_file(ready, dev))
            started = time.perf_counter()
            fill(info, args.claims, args.dead_letters)
            print(f"filled {args.claims} claims, {args.dead_letters} dead letters, 50 unmapped, 1000 requests "
                  f"in {time.perf_counter() - started:.0f} s")
            console = subprocess.Popen(command("console", "--port", str(free_port()), "--gateway-port",
                                               str(gateway_port), "--ready-file", str(console_ready)),
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            url = wait_file(console_ready, console).strip()
            base = url.split("/?", 1)[0]
            with httpx.Client(timeout=60) as client:
                start = time.perf_counter()
                client.get(url)  # the first view, while the console warms up its reads
                print(f"first view of the overview right after start: {(time.perf_counter() - start) * 1000:.0f} ms")
                time.sleep(args.settle)  # as an operator would: the console has been up a moment
                print(f"{'page':32} {'median ms':>10} {'max ms':>8}  (runs: {args.runs})")
                for page in PAGES:
                    times = []
                    for _ in range(args.runs):
                        start = time.perf_counter()
                        response = client.get(base + page)
                        times.append((time.perf_counter() - start) * 1000)
                        assert response.status_code == 200, (page, response.status_code)
                        assert 'class="error"' not in response.text, (page, response.text[:2000])
                    print(f"{page:32} {statistics.median(times):10.0f} {max(times):8.0f}  first {times[0]:.0f}")
        finally:
            for process in (console, dev):
                if process is not None and process.poll() is None:
                    process.terminate()
                    process.wait(30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
