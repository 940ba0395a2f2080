"""DM Hub as it is today, in each mode (v1 customerevents, v1 collector, v2): an event type
refused with a non-token body error (40201), one invalid event in a batch of 100, a token
revoked mid-batch, and how many DM Hub calls a delivered event costs.

Each test prints one ``MEASURE`` line (run with ``-s`` to read them); the numbers are quoted in
docs/dmhub.md.
"""

from __future__ import annotations

import itertools
import threading
import time
from typing import Any

from tests.reliability.conftest import Flow, taobao_external_id, taobao_paid, wechat_follow

_tids = itertools.count(3_910_000_000_000_000_001)
_openids = itertools.count(1)
BATCH = 100


def api_calls(flow: Flow) -> int:
    """DM Hub API requests so far (control requests are not counted by the emulator)."""
    return sum(flow.dmhub.state.counters()["requests"].values())


def fetches(flow: Flow) -> int:
    return int(flow.dmhub.state.counters()["token_fetches"])


def warm_up(flow: Flow) -> None:
    """Deliver one event so the shared token exists before the measured run."""
    assert flow.post(wechat_follow(f"oWarm{next(_openids):08d}")) == 200
    flow.drain()
    assert flow.dead_letters() == []


def post_taobao(flow: Flow, count: int) -> list[int]:
    tids = [next(_tids) for _ in range(count)]
    for tid in tids:
        assert flow.post(taobao_paid(tid)) == 200
    return tids


def post_follows(flow: Flow, count: int) -> None:
    for _ in range(count):
        assert flow.post(wechat_follow(f"oFollow{next(_openids):08d}")) == 200


def one_invocation(flow: Flow, count: int) -> dict[str, Any]:
    """Gather ``count`` messages (as a batching window does) and run the sender once on them."""
    messages: list[dict[str, Any]] = []
    deadline = time.monotonic() + 20
    while len(messages) < count and time.monotonic() < deadline:
        messages.extend(flow.receive_up_to(count - len(messages), visibility=30))
    assert len(messages) == count
    return flow.run_sender(messages)


def measure(text: str) -> None:
    print(f"MEASURE {text}")


def test_an_event_type_refused_with_40201_is_dead_lettered_without_refreshing_the_token_again(flow: Flow) -> None:
    warm_up(flow)
    flow.dmhub.configure(refuse_events={"c_taobao_order_paid": 40201}, string_error_codes=True)
    before_fetches, before_calls = fetches(flow), api_calls(flow)
    post_taobao(flow, 100)
    post_follows(flow, 5)
    flow.drain(timeout=60, batch=BATCH)
    dead = flow.dead_letters()
    assert len(dead) == 100
    for body in dead:
        assert body["event"]["event"] == "c_taobao_order_paid"
        assert "40201" in body["failure"]["reason"] and "permission is not enough" in body["failure"]["reason"]
        if flow.mode != "v2":  # v1 reports it in an HTTP 200 body: the kind names the code
            assert body["failure"]["kind"] == "dmhub_error_40201"
    assert {e["event"] for e in flow.dmhub.state.events()} == {"c_wechat_follow"}
    assert len(flow.dmhub.state.events()) == 6  # the warm-up follow and the five others
    fetched = fetches(flow) - before_fetches
    assert fetched <= 1
    measure(f"{flow.mode}: 100 events refused with 40201 -> token fetches during the run {fetched}, "
            f"in the DLQ {len(dead)}, DM Hub calls {api_calls(flow) - before_calls}")


def test_one_invalid_event_in_a_batch_of_100_only_that_one_is_dead_lettered(flow: Flow) -> None:
    warm_up(flow)
    flow.dmhub.configure(event_types={"c_taobao_order_paid": None})  # the follow type is unknown now
    before_calls = api_calls(flow)
    tids = post_taobao(flow, 99)
    post_follows(flow, 1)
    assert one_invocation(flow, BATCH)["batchItemFailures"] == []
    dead = flow.dead_letters()
    assert [body["event"]["event"] for body in dead] == ["c_wechat_follow"]
    assert "not defined" in str(dead[0]["failure"])
    flow.assert_exactly_once(*(taobao_external_id(tid) for tid in tids))
    calls = api_calls(flow) - before_calls
    measure(f"{flow.mode}: 1 invalid event in a batch of 100 -> DM Hub calls {calls}, delivered "
            f"{len(tids)}, in the DLQ {len(dead)}")
    if flow.collector:
        assert calls == 1 + 100  # the refused batch, then one call per event to isolate the bad one


def test_dmhub_calls_per_delivered_event(flow: Flow) -> None:
    warm_up(flow)
    before_calls = api_calls(flow)
    tids = post_taobao(flow, 100)
    assert one_invocation(flow, BATCH)["batchItemFailures"] == []
    flow.assert_exactly_once(*(taobao_external_id(tid) for tid in tids))
    calls = api_calls(flow) - before_calls
    measure(f"{flow.mode}: 100 events delivered with {calls} DM Hub calls = {calls / 100:.2f} per event")
    if flow.collector:
        assert calls == 1  # one batchPushEvents carries all hundred
    else:
        assert calls >= 100


def test_a_token_revoked_mid_batch_is_refreshed_once_and_everything_delivered(flow: Flow) -> None:
    warm_up(flow)
    before = fetches(flow)
    tids = post_taobao(flow, 30)
    created_before = int(flow.dmhub.state.counters()["events_created"])
    revoked: list[Any] = []

    def revoke_mid_batch() -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if int(flow.dmhub.state.counters()["events_created"]) >= created_before + 5:
                revoked.append(flow.dmhub.revoke_token())
                return
            time.sleep(0.002)

    watcher = threading.Thread(target=revoke_mid_batch)
    watcher.start()
    flow.drain(timeout=60, batch=10)
    watcher.join()
    assert revoked and revoked[0] == [flow.dmhub.app_id]
    flow.assert_exactly_once(*(taobao_external_id(tid) for tid in tids))
    assert flow.dead_letters() == []
    refreshed = fetches(flow) - before
    assert refreshed == 1
    measure(f"{flow.mode}: token revoked mid-batch (30 events) -> token fetches {refreshed}, delivered {len(tids)}")
