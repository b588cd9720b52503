#!/usr/bin/env bash
# What the tests need outside the virtual environment: Debian's chromium for
# the browser tests (Playwright's own browser download cannot work offline).
set -euo pipefail
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "Installing Debian's chromium for the browser tests..."
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-dejavu-core >/dev/null
  else
    echo "chromium is not installed: run 'sudo apt-get install chromium' (browser tests will fail without it)" >&2
  fi
fi
