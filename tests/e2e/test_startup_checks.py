"""Mistakes caught at start-up (issue 16, item 4): ``dev`` refuses with file, line and the fix,
before anything starts; ``accounts put/list/get/delete`` against the running stack."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.e2e.conftest import RunningStack, dev_command

pytestmark = pytest.mark.e2e

AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"


def cli(*args: str) -> list[str]:
    script = Path(sys.executable).with_name("dmhub-adapter")
    return [str(script), *args] if script.exists() else [sys.executable, "-m", "dmhub_adapter_tools.cli", *args]


def refused(tmp_path: Path, *args: str) -> str:
    started = time.monotonic()
    result = subprocess.run(dev_command("--port", "0", *args), capture_output=True, text=True, timeout=60,
                            check=False, cwd=tmp_path)
    assert result.returncode != 0, result.stdout
    assert time.monotonic() - started < 20  # refused up front, not after starting moto
    assert "is up" not in result.stdout and "Traceback" not in result.stderr
    return result.stderr


@pytest.mark.parametrize(("text", "expected"), [
    ("dmhub: {appId: a, secret: b}\nacounts:\n  - {source: wechat, account: demo, secret: {token: t}}\n",
     [":2: unknown key 'acounts' — did you mean 'accounts'?", "no 'accounts:' list"]),
    ("accounts:\n  - source: taobao\n    account: shop\n    secret:\n      appkey: '1'\n      appSecret: s\n",
     [":5: taobao/shop: secret unknown field 'appkey' (did you mean 'appKey'?)", "needs a non-empty 'appKey'"]),
    ("accounts:\n  - source: wechat\n    account: demo\n    secret:\n      token: t\n      encodingAesKey: abcde\n"
     "      appId: wx1\n",
     [":6: wechat/demo: secret field 'encodingAesKey': EncodingAESKey must be exactly 43 letters or digits"]),
    ("accounts:\n  - {source: wehcat, account: demo, secret: {token: t}}\n",
     [":2: unknown source 'wehcat'", "did you mean 'wechat'?"]),
    ("accounts:\n  - source: standard-webhooks\n    account: s\n    secret:\n      signingSecret: whsec_%%%\n",
     [":5: standard-webhooks/s: secret the account's secret field 'signingSecret' is not a valid whsec key"]),
    ("accounts:\n  - source: youzan\n    account: shop\n    secret: {clientId: c}\n    kdtId: 1\n",
     [":5: unknown key 'kdtId' in an account", ":4: youzan/shop: secret needs a non-empty 'clientSecret'"]),
    ("accounts:\n  - source: wechat\n    account: demo\n    secret:\n      token: t\n"
     f"      encodingAesKey: {AES_KEY}\n",
     [":5: wechat/demo: secret an account with encodingAesKey needs appId"]),
])
def test_dev_refuses_a_mistaken_accounts_file_with_file_line_and_fix(tmp_path: Path, text: str,
                                                                     expected: list[str]) -> None:
    accounts = tmp_path / "accounts.yaml"
    accounts.write_text(text, encoding="utf-8")
    stderr = refused(tmp_path, "--accounts", str(accounts))
    assert "nothing was started" in stderr
    for piece in expected:
        assert (f"{accounts}{piece}" if piece.startswith(":") else piece) in stderr, stderr


def test_dev_refuses_a_missing_or_broken_mappings_dir(tmp_path: Path) -> None:
    stderr = refused(tmp_path, "--mappings-dir", str(tmp_path / "nope"))
    assert "no such directory" in stderr
    broken = tmp_path / "mappings"
    broken.mkdir()
    (broken / "acme.yaml").write_text("source: acme\nformat: json\nrules:\n  - name: x\n    evnt: c_x\n",
                                      encoding="utf-8")
    stderr = refused(tmp_path, "--mappings-dir", str(broken))
    assert "fails check-config" in stderr and "acme.yaml" in stderr and "evnt" in stderr


def test_accounts_put_checks_every_source_and_says_where_it_wrote(stack: RunningStack, tmp_path: Path) -> None:
    env = {**os.environ, **{k: str(v) for k, v in stack.info["environment"].items()}}

    def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(cli("accounts", *args), capture_output=True, text=True, env=env, timeout=60,
                              check=False, input=stdin)

    bad = run("put", "standard-webhooks", "shop", "--from-json", "-", stdin='{"signingSecret": "whsec_%%"}')
    assert bad.returncode == 1 and "nothing written" in bad.stderr and "'signingSecret'" in bad.stderr
    typo = run("put", "youzan", "shop", "--from-json", "-", stdin='{"clientid": "c", "clientSecret": "s"}')
    assert typo.returncode == 1 and "did you mean 'clientId'?" in typo.stderr
    good = run("put", "youzan", "shop", "--from-json", "-", stdin='{"clientId": "c", "clientSecret": "sekrit"}')
    assert good.returncode == 0, good.stderr
    assert f"wrote dmhub-adapter/youzan/shop at {stack.info['moto']} (eu-west-1)" in good.stderr
    assert "sekrit" not in good.stdout + good.stderr

    listed = run("list")
    assert "dmhub-adapter/youzan/shop" in listed.stdout.splitlines() and "sekrit" not in listed.stdout
    shown = json.loads(run("get", "youzan", "shop").stdout)
    assert shown["value"] == {"clientId": "<1 characters>", "clientSecret": "<6 characters>"}
    assert json.loads(run("get", "youzan", "shop", "--show").stdout)["value"]["clientSecret"] == "sekrit"
    assert run("delete", "youzan", "shop", "--force").returncode == 0
    gone = run("get", "youzan", "shop")
    assert gone.returncode == 1 and "no secret dmhub-adapter/youzan/shop" in gone.stderr
