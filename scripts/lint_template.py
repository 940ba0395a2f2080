"""Lint the SAM template the way CloudFormation will see it.

cfn-lint on its own validates SAM resources against a schema only and misses errors inside
them (an event's ``FunctionResponseTypes`` value, a ``!GetAtt`` in an event or in Globals).
So the template is first expanded offline with aws-sam-translator, the same transform
CloudFormation runs, and cfn-lint then checks the resulting plain CloudFormation; the SAM
template itself is linted too, for what only shows there (top-level property typos).

No AWS call is made and no credentials are needed.

    python scripts/lint_template.py [template.yaml] [--regions us-east-1,cn-north-1]
                                    [--expanded out.json] [--strict]

Exit status: 0 clean, 1 errors (or warnings with ``--strict``), 2 the template cannot be
expanded at all.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_TEMPLATE = ROOT / "template.yaml"
# A commercial region and a China one: DM Hub customers deploy in both partitions.
DEFAULT_REGIONS = ("us-east-1", "cn-north-1")
PLACEHOLDER_CODE = "s3://placeholder-bucket/placeholder.zip"


class ExpansionError(Exception):
    """aws-sam-translator refused the template (what ``sam deploy`` would refuse too)."""


@dataclass(frozen=True)
class Finding:
    stage: str  # "sam" (the template as written) or "expanded"
    rule: str
    level: str  # "error" | "warning" | "informational"
    message: str
    location: str

    def __str__(self) -> str:
        return f"[{self.stage}] {self.rule} {self.message} ({self.location})"


@dataclass
class LintReport:
    findings: list[Finding] = field(default_factory=list)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.level == "error"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.level == "warning"]

    def failed(self, strict: bool = False) -> bool:
        return bool(self.errors or (strict and self.warnings))


class _NoManagedPolicies:
    """The translator maps managed-policy names to ARNs through IAM; the template names none,
    so an empty map keeps the expansion offline."""

    def load(self) -> dict[str, str]:
        return {}


def parse_template(text: str) -> dict[str, Any]:
    """Parse CloudFormation YAML (or JSON) with its short-form tags (!Ref, !GetAtt, !Sub ...)."""
    from samtranslator.yaml_helper import yaml_parse

    parsed = yaml_parse(text)
    if not isinstance(parsed, dict):
        raise ExpansionError("the template is not a mapping")
    return parsed


def expand(template: dict[str, Any], parameters: dict[str, Any] | None = None) -> dict[str, Any]:
    """The CloudFormation template the SAM transform turns ``template`` into."""
    os.environ.setdefault("AWS_DEFAULT_REGION", DEFAULT_REGIONS[0])
    from samtranslator.model.exceptions import InvalidDocumentException
    from samtranslator.translator.transform import transform

    source = copy.deepcopy(template)
    # The translator accepts only S3 locations; `sam build`/`sam package` put real ones there.
    for resource in (source.get("Resources") or {}).values():
        properties = resource.get("Properties") or {}
        for key in ("CodeUri", "ContentUri"):
            if isinstance(properties.get(key), str) and not properties[key].startswith("s3://"):
                properties[key] = PLACEHOLDER_CODE
    try:
        expanded: dict[str, Any] = transform(source, dict(parameters or {}), _NoManagedPolicies())
    except InvalidDocumentException as exc:
        causes = "; ".join(str(cause) for cause in exc.causes) or str(exc)
        raise ExpansionError(causes) from exc
    return expanded


def _level(rule_id: str) -> str:
    return {"E": "error", "W": "warning"}.get(rule_id[:1], "informational")


def run_cfn_lint(text: str, regions: Sequence[str], stage: str) -> list[Finding]:
    from cfnlint.api import ManualArgs, lint

    matches = lint(text, config=ManualArgs(regions=list(regions)))
    findings = []
    for match in matches:
        rule_id = str(match.rule.id)
        location = f"line {match.linenumber}" if stage == "sam" else "/".join(
            str(part) for part in (getattr(match, "path", None) or [])
        )
        findings.append(Finding(stage, rule_id, _level(rule_id), str(match.message), location))
    return findings


def lint_template(
    path: Path, regions: Sequence[str] = DEFAULT_REGIONS, stages: Sequence[str] = ("sam", "expanded")
) -> tuple[LintReport, dict[str, Any]]:
    """Lint the SAM template as written, then expanded. Returns the report and the expansion."""
    text = path.read_text(encoding="utf-8")
    expanded = expand(parse_template(text))
    report = LintReport()
    if "sam" in stages:
        report.findings.extend(run_cfn_lint(text, regions, "sam"))
    if "expanded" in stages:
        report.findings.extend(run_cfn_lint(json.dumps(expanded, indent=1), regions, "expanded"))
    return report, expanded


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("template", nargs="?", type=Path, default=DEFAULT_TEMPLATE)
    parser.add_argument("--regions", default=",".join(DEFAULT_REGIONS), help="comma-separated")
    parser.add_argument("--expanded", type=Path, help="also write the expanded template here")
    parser.add_argument("--strict", action="store_true", help="fail on warnings too")
    args = parser.parse_args(argv)

    regions = [r.strip() for r in args.regions.split(",") if r.strip()]
    try:
        report, expanded = lint_template(args.template, regions)
    except ExpansionError as exc:
        print(f"{args.template}: SAM expansion failed: {exc}", file=sys.stderr)
        return 2
    if args.expanded:
        args.expanded.write_text(json.dumps(expanded, indent=1) + "\n", encoding="utf-8")
    for finding in report.findings:
        print(finding)
    resources = len(expanded.get("Resources", {}))
    print(
        f"{args.template.name}: {resources} resources after expansion, "
        f"{len(report.errors)} errors, {len(report.warnings)} warnings ({', '.join(regions)})"
    )
    return 1 if report.failed(args.strict) else 0


if __name__ == "__main__":
    sys.exit(main())
