#!/usr/bin/env bash
# What the tests need outside the virtual environment: Debian's chromium for
# the browser tests (Playwright's own browser download cannot work offline),
# and for the deployment test (tests/deploy/test_cluster.py runs the site from
# deploy/nginx/ in front of two gunicorn hosts) Debian's nginx, PostgreSQL
# server and redis-server: it starts its own of each (deploy/localcluster.py).
set -euo pipefail
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium fonts-dejavu-core)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx)
# Debian keeps initdb off PATH, in /usr/lib/postgresql/<version>/bin.
command -v initdb >/dev/null 2>&1 || compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null \
  || missing+=(postgresql)
command -v redis-server >/dev/null 2>&1 || [ -x /usr/bin/redis-server ] || missing+=(redis-server)
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "Installing Debian's ${missing[*]} for the tests..."
    apt-get update -qq >/dev/null
    # (Debian may start a system nginx on port 80, PostgreSQL on 5432 and Redis on 6379;
    # the tests run their own, on free ports.)
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "Not installed: ${missing[*]}; run 'sudo apt-get install ${missing[*]}' (browser and deployment tests fail without them)" >&2
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
