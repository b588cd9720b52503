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

# axe-core (npm) for the accessibility checks in the browser tests
# (tests/axe.py injects axe.min.js into each audited page). Pinned; installed
# into var/node/, which git ignores, so the repository carries no vendored copy.
AXE_VERSION="4.14.1"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
AXE_DIR="$ROOT/var/node"
installed="$(node -p "require('$AXE_DIR/node_modules/axe-core/package.json').version" 2>/dev/null || true)"
if [ "$installed" != "$AXE_VERSION" ]; then
  if command -v npm >/dev/null 2>&1; then
    echo "Installing axe-core $AXE_VERSION into var/node/ for the accessibility checks..."
    mkdir -p "$AXE_DIR"
    npm install --prefix "$AXE_DIR" --no-save --no-audit --no-fund --loglevel=error "axe-core@$AXE_VERSION" >/dev/null
  else
    echo "npm is missing: run 'sudo apt-get install npm' (the accessibility checks need axe-core)" >&2
  fi
fi
