"""The accounts file of the local stack (and of dry runs that need to decrypt).

:func:`check_accounts_file` is what ``dev`` runs before it starts anything: every problem with
its file and line and the fix — unknown keys (``acounts:``), unknown sources, account names the
route cannot carry, secrets that miss a field the source needs or hold one it does not know,
key material that does not decode — checked by the source's own adapter
(:func:`dmhub_adapter.sources.registry.check_account_secret`), so the file is refused at start-up
instead of the first request answering 503.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml


@dataclass(frozen=True)
class AccountsFile:
    dmhub: dict[str, Any] = field(default_factory=dict)
    accounts: list[dict[str, Any]] = field(default_factory=list)

    def secret(self, source: str, account: str) -> dict[str, Any] | None:
        for entry in self.accounts:
            if entry.get("source") == source and entry.get("account") == account:
                return dict(entry.get("secret") or {})
        return None


def demo_accounts_path() -> Path:
    return Path(str(resources.files("dmhub_adapter_tools") / "local" / "demo-accounts.yaml"))


def load_accounts(path: str | Path | None = None) -> AccountsFile:
    """Read and check an accounts YAML (default: the packaged demo accounts)."""
    file = Path(path) if path else demo_accounts_path()
    data = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{file}: expected a mapping with 'dmhub' and 'accounts'")
    accounts = data.get("accounts") or []
    if not isinstance(accounts, list):
        raise ValueError(f"{file}: 'accounts' must be a list")
    for index, entry in enumerate(accounts, 1):
        if not isinstance(entry, dict) or not {"source", "account", "secret"} <= set(entry):
            raise ValueError(f"{file}: account #{index} needs 'source', 'account' and 'secret'")
        if not isinstance(entry["secret"], dict):
            raise ValueError(f"{file}: account #{index}: 'secret' must be a mapping")
    dmhub = data.get("dmhub") or {}
    if not isinstance(dmhub, dict):
        raise ValueError(f"{file}: 'dmhub' must be a mapping with appId and secret")
    return AccountsFile(dmhub=dict(dmhub), accounts=[dict(a) for a in accounts])


#: the keys of the file and of one account entry
FILE_KEYS = ("dmhub", "accounts")
ENTRY_KEYS = ("source", "account", "secret")
DMHUB_KEYS = ("appId", "secret")
#: what the route /webhooks/{source}/{account} accepts as an account name
ACCOUNT_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")


class AccountsFileError(ValueError):
    """An accounts file with problems; ``problems`` are ``FILE:LINE: what — the fix`` lines."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def _suggest(name: str, known: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}?" if close else f"known: {', '.join(known)}"


def check_accounts_file(path: str | Path | None = None, mappings_dir: str | None = None) -> list[str]:
    """Every problem of an accounts file, as ``FILE:LINE: problem — fix`` (empty when valid)."""
    from dmhub_adapter.mapping.config import MappingConfigError, available_sources
    from dmhub_adapter.sources.registry import check_account_secret, load_source_mapping

    file = Path(path) if path else demo_accounts_path()
    name = str(file)
    try:
        root = yaml.compose(file.read_text(encoding="utf-8"))
    except OSError as exc:
        return [f"{name}: cannot read: {exc.strerror or exc}"]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{name}:{mark.line + 1}" if mark is not None else name
        return [f"{where}: not valid YAML: {getattr(exc, 'problem', exc)}"]
    if root is None:
        return [f"{name}:1: the file is empty — give 'accounts:' (and 'dmhub:' for a real DM Hub)"]
    if not isinstance(root, yaml.MappingNode):
        return [f"{name}:{root.start_mark.line + 1}: expected a mapping with 'dmhub' and 'accounts'"]
    problems: list[str] = []

    def at(node: yaml.Node, message: str) -> None:
        problems.append(f"{name}:{node.start_mark.line + 1}: {message}")

    top = {key.value: (key, value) for key, value in root.value if isinstance(key, yaml.ScalarNode)}
    for key, (key_node, _) in top.items():
        if key not in FILE_KEYS:
            at(key_node, f"unknown key {key!r} — {_suggest(key, FILE_KEYS)}")
    if "accounts" not in top:
        at(root, "no 'accounts:' list — the stack would start with no accounts")
    if "dmhub" in top:
        _, dmhub = top["dmhub"]
        if not isinstance(dmhub, yaml.MappingNode):
            at(dmhub, "'dmhub' must be a mapping with appId and secret")
        else:
            fields = {k.value: k for k, _ in dmhub.value}
            for key, node in fields.items():
                if key not in DMHUB_KEYS:
                    at(node, f"unknown key {key!r} in 'dmhub' — {_suggest(key, DMHUB_KEYS)}")
            for key in DMHUB_KEYS:
                if key not in fields:
                    at(dmhub, f"'dmhub' needs {key!r}")
    if "accounts" not in top:
        return problems
    _, accounts = top["accounts"]
    if not isinstance(accounts, yaml.SequenceNode):
        at(accounts, "'accounts' must be a list of {source, account, secret}")
        return problems
    data = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
    entries = data.get("accounts") or []
    known_sources = available_sources(mappings_dir)
    seen: dict[tuple[str, str], int] = {}
    for node, entry in zip(accounts.value, entries, strict=False):
        if not isinstance(node, yaml.MappingNode) or not isinstance(entry, dict):
            at(node, "an account is a mapping {source, account, secret}")
            continue
        keys = {k.value: (k, v) for k, v in node.value}
        for key, (key_node, _) in keys.items():
            if key not in ENTRY_KEYS:
                at(key_node, f"unknown key {key!r} in an account — {_suggest(key, ENTRY_KEYS)}")
        missing = [k for k in ENTRY_KEYS if k not in keys]
        if missing:
            at(node, f"the account needs {', '.join(repr(m) for m in missing)}")
            continue
        source, account, secret = entry["source"], entry["account"], entry["secret"]
        if not isinstance(account, str) or not ACCOUNT_NAME_RE.match(account):
            at(keys["account"][1], f"account name {account!r} must be 1-128 letters, digits, '_', '.' or '-'")
        if source not in known_sources:
            where = f" in {mappings_dir} or the packaged mappings" if mappings_dir else ""
            at(keys["source"][1], f"unknown source {source!r}{where} — {_suggest(str(source), known_sources)}")
            continue
        key = (str(source), str(account))
        if key in seen:
            at(node, f"{source}/{account} is listed twice (first on line {seen[key]})")
        seen[key] = node.start_mark.line + 1
        try:
            mapping = load_source_mapping(str(source), mappings_dir)
        except MappingConfigError as exc:
            at(keys["source"][1], f"the mapping of {source!r} is broken: {'; '.join(exc.problems)}")
            continue
        assert mapping is not None
        secret_node = keys["secret"][1]
        for problem in check_account_secret(mapping, secret):
            at(_field_node(secret_node, problem), f"{source}/{account}: secret {problem}")
    return problems


def _field_node(secret: yaml.Node, problem: str) -> yaml.Node:
    """The line of the secret field a problem names (the secret's own line otherwise)."""
    if isinstance(secret, yaml.MappingNode):
        for key, _ in secret.value:
            if isinstance(key, yaml.ScalarNode) and f"'{key.value}'" in problem:
                return key
    return secret


def load_checked_accounts(path: str | Path | None = None, mappings_dir: str | None = None) -> AccountsFile:
    """:func:`load_accounts` after :func:`check_accounts_file`; raises :class:`AccountsFileError`."""
    problems = check_accounts_file(path, mappings_dir)
    if problems:
        raise AccountsFileError(problems)
    return load_accounts(path)
