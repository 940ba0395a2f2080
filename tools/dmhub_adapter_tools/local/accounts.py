"""The accounts file of the local stack (and of dry runs that need to decrypt)."""

from __future__ import annotations

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
