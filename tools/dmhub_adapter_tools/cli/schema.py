"""``dmhub-adapter schema``: the JSON Schema of mapping files, for editors."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "schema",
        help="print the JSON Schema of the mapping file format",
        description="Print the JSON Schema of mapping files (use with yaml-language-server: "
        "'# yaml-language-server: $schema=mapping.schema.json').",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dmhub_adapter.mapping.config import json_schema

    json.dump(json_schema(), sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0
