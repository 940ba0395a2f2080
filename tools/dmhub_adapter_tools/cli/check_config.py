"""``dmhub-adapter check-config [DIR]``: validate mapping configs."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "check-config",
        help="validate mapping configs (default: MAPPINGS_DIR, else the packaged ones)",
        description="Validate every *.yaml mapping file in DIR: YAML syntax, rule shape, JMESPath "
        "expressions, converters, DM Hub limits (event type length, no targetId/targetName/summary on "
        "custom events, the custom attribute budget of DMHUB_CUSTOM_ATTRIBUTES: 5, or 16 = 10 text, "
        "3 quantity, 3 amount) and each adapter's own blocks (verification, reply). Exit 1 naming "
        "file, rule and field on errors.",
    )
    parser.add_argument(
        "--custom-attributes",
        type=int,
        choices=(5, 16),
        help="custom attribute budget to check against (default: DMHUB_CUSTOM_ATTRIBUTES, else 5)",
    )
    parser.add_argument("directory", nargs="?", help="directory of mapping files")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import os

    from dmhub_adapter.mapping.config import packaged_dir
    from dmhub_adapter.model.customer_event import AttributeBudget
    from dmhub_adapter.settings import Settings, SettingsError
    from dmhub_adapter.sources.registry import check_directory
    from dmhub_adapter_tools.cli import CommandError

    if args.custom_attributes is not None:
        budget = AttributeBudget.of(args.custom_attributes)
    else:
        try:
            budget = Settings.from_env().attribute_budget
        except SettingsError as exc:
            raise CommandError(str(exc)) from None

    directory = args.directory or os.environ.get("MAPPINGS_DIR") or str(packaged_dir())
    if not os.path.isdir(directory):
        raise CommandError(f"{directory} is not a directory")
    results = check_directory(directory, budget=budget)
    if not results:
        raise CommandError(f"no *.yaml mapping files in {directory}")
    failed = 0
    for file, problems in results.items():
        if problems:
            failed += 1
            print(f"{file}: invalid", file=sys.stderr)
            for problem in problems:
                print(f"  - {problem}", file=sys.stderr)
        else:
            print(f"{file}: ok")
    if failed:
        print(f"{failed} of {len(results)} mapping file(s) invalid", file=sys.stderr)
        return 1
    return 0
