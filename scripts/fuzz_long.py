"""The fuzz targets of tests/reliability/test_fuzz.py, run long: at least 100,000 examples each.

    python scripts/fuzz_long.py [--examples 100000] [--only NAME]

Prints, per target, the examples run and the time taken; exit status 1 on the first failure
(Hypothesis prints the shrunk failing example).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TARGETS = (
    "test_wechat_random_body_with_a_valid_query_is_refused",
    "test_taobao_random_body_with_a_valid_query_is_refused",
    "test_random_queries_never_authenticate",
    "test_mutated_wechat_body_is_accepted_only_when_unchanged",
    "test_mutated_taobao_body_is_never_accepted",
    "test_mutated_queries_are_never_accepted",
    "test_mapping_engine_classifies_every_message",
    "test_model_validation_only_raises_value_errors",
    "test_number_conversion_is_bounded_and_only_raises_conversion_errors",
    "test_any_charset_is_a_4xx_or_decodes",
    "test_deep_json_and_xml_are_4xx_or_parsed",
    # tests/reliability/test_fuzz_senders.py
    "test_mutated_wechatpay_body_is_never_accepted",
    "test_mutated_wechatpay_headers_are_never_accepted",
    "test_hostile_resources_behind_a_valid_signature_are_4xx",
    "test_mutated_wecom_push_is_accepted_only_when_its_message_is_unchanged",
    "test_mutated_wecom_query_is_never_accepted",
    "test_mutated_shopify_body_is_never_accepted",
    "test_random_bodies_with_valid_headers_are_refused",
    "test_youzan_bodies_without_event_sign_are_4xx",
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=int, default=100_000, help="examples per target (default 100000)")
    parser.add_argument("--only", action="append", choices=TARGETS, help="run only these targets")
    args = parser.parse_args(argv)

    os.environ["FUZZ_EXAMPLES"] = str(args.examples)
    from tests.reliability import test_fuzz, test_fuzz_senders

    total = 0
    failed = False
    started_all = time.perf_counter()
    for name in args.only or TARGETS:
        test: Any = getattr(test_fuzz, name, None) or getattr(test_fuzz_senders, name)
        counter = [0]
        inner = test.hypothesis.inner_test

        def counted(*a: Any, _inner: Any = inner, _counter: list[int] = counter, **k: Any) -> None:
            _counter[0] += 1
            _inner(*a, **k)

        test.hypothesis.inner_test = counted
        started = time.perf_counter()
        try:
            test()
        except Exception as exc:  # a property failed: report and go on with the others
            failed = True
            print(f"{name}: FAILED after {counter[0]} examples: {type(exc).__name__}: {exc}", flush=True)
            for note in getattr(exc, "__notes__", []):  # Hypothesis's falsifying example
                print(f"    {note}", flush=True)
        else:
            print(f"{name:<62} {counter[0]:>8} examples  {time.perf_counter() - started:7.1f} s", flush=True)
        finally:
            test.hypothesis.inner_test = inner
        total += counter[0]
    print(f"{'total':<62} {total:>8} examples  {time.perf_counter() - started_all:7.1f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
