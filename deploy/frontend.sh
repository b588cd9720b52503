#!/usr/bin/env bash
# The volunteer pages' front-end libraries, from npm, pinned by package.json and
# package-lock.json: `npm ci` installs exactly the locked versions into
# node_modules/, and the files the pages load are copied into static/vendor/
# (both git-ignored: about 27 MB, mostly MediaPipe's WebAssembly), so the site
# serves them itself: no CDN at run time (docs/pages.md).
#   static/vendor/workbox/    workbox-sw.js and the modules it loads (service worker)
#   static/vendor/mediapipe/  vision_bundle.mjs and wasm/ (the on-device model's runtime)
# `make run` and `make test` run it whenever package-lock.json changes.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
if ! command -v npm >/dev/null 2>&1; then
  echo "npm is missing: run 'sudo apt-get install nodejs npm' (the camera page's offline app and on-device model need it)" >&2
  exit 1
fi
npm ci --no-audit --no-fund --loglevel=error >/dev/null
VENDOR="$ROOT/static/vendor"
rm -rf "$VENDOR.tmp"
mkdir -p "$VENDOR.tmp/workbox" "$VENDOR.tmp/mediapipe/wasm"
cp node_modules/workbox-sw/build/workbox-sw.js "$VENDOR.tmp/workbox/"
for module in core precaching routing strategies; do
  cp "node_modules/workbox-$module/build/workbox-$module.prod.js" "$VENDOR.tmp/workbox/"
done
cp node_modules/@mediapipe/tasks-vision/vision_bundle.mjs "$VENDOR.tmp/mediapipe/"
for name in vision_wasm_internal vision_wasm_nosimd_internal; do
  cp "node_modules/@mediapipe/tasks-vision/wasm/$name.js" "node_modules/@mediapipe/tasks-vision/wasm/$name.wasm" \
    "$VENDOR.tmp/mediapipe/wasm/"
done
# The versions copied, for the service worker's cache names and for bench/.
node -e '
const lock = require("./package-lock.json").packages;
const pick = n => lock["node_modules/" + n].version;
process.stdout.write(JSON.stringify({workbox: pick("workbox-sw"), mediapipe: pick("@mediapipe/tasks-vision")}) + "\n");
' > "$VENDOR.tmp/versions.json"
rm -rf "$VENDOR"
mv "$VENDOR.tmp" "$VENDOR"
cp package-lock.json "$VENDOR/.installed-from-lock"
