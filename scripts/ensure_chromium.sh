#!/usr/bin/env bash
# Installs Debian's Chromium when none is on PATH and CHROMIUM is unset: the operator console's
# browser tests drive the system's Chromium through Playwright by its executable path
# (Playwright's own browser download is not used). Needs root or sudo; says so when it has
# neither, so `make test` stops with the reason instead of eleven browser-test errors.
set -euo pipefail
if [ -n "${CHROMIUM:-}" ] || command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" -eq 0 ]; then
  SUDO=""
elif command -v sudo >/dev/null 2>&1; then
  SUDO="sudo"
else
  echo "the browser tests need Chromium: install it (apt-get install -y chromium) or set CHROMIUM" >&2
  exit 1
fi
echo "installing Chromium for the console's browser tests (apt-get install chromium)" >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
