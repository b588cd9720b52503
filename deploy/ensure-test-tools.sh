#!/usr/bin/env bash
# What the tests need outside the virtual environment: Debian's chromium for
# the browser tests (Playwright's own browser download cannot work offline),
# and Debian's nginx for the deployment test (tests/test_deploy*.py run the
# site from deploy/nginx/ in front of two gunicorn hosts).
set -euo pipefail
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium fonts-dejavu-core)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx)
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "Installing Debian's ${missing[*]} for the tests..."
    apt-get update -qq >/dev/null
    # (Debian may start a system nginx on port 80; the tests run their own, on free ports.)
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "Not installed: ${missing[*]}; run 'sudo apt-get install ${missing[*]}' (browser and deployment tests fail without them)" >&2
  fi
fi
