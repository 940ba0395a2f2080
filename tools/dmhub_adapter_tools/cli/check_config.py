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
        "expressions, converters, DM Hub limits (event type length, custom attributes) and each "
        "adapter's own blocks (verification, reply). Exit 1 naming file, rule and field on errors.",
    )
    parser.add_argument("directory", nargs="?", help="directory of mapping files")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import os

    from dmhub_adapter.mapping.config import packaged_dir
    from dmhub_adapter.sources.registry import check_directory
    from dmhub_adapter_tools.cli import CommandError

    directory = args.directory or os.environ.get("MAPPINGS_DIR") or str(packaged_dir())
    if not os.path.isdir(directory):
        raise CommandError(f"{directory} is not a directory")
    results = check_directory(directory)
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
