#!/usr/bin/env bash
# Start the whole platform for one machine: the web server and the scheduler.
# Ctrl-C stops both. Data lives in ./var/ (SQLite database, photos, models).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
VAR_DIR="${CROWDLENS_VAR_DIR:-var}"
mkdir -p "$VAR_DIR"
export DEBUG="${DEBUG:-true}"
if [ -z "${SECRET_KEY:-}" ]; then
  [ -s "$VAR_DIR/secret_key" ] || "$BIN/python" -c "import secrets; print(secrets.token_urlsafe(50))" > "$VAR_DIR/secret_key"
  SECRET_KEY="$(cat "$VAR_DIR/secret_key")"
  export SECRET_KEY
fi
"$BIN/python" manage.py migrate --noinput
"$BIN/python" manage.py collectstatic --noinput --verbosity 0

pids=()
cleanup() { trap - INT TERM EXIT; kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap cleanup INT TERM EXIT

"$BIN/python" manage.py runscheduler &
pids+=($!)
"$BIN/python" manage.py runserver "${RUN_ADDRESS:-127.0.0.1:8000}" --noreload &
pids+=($!)
echo "Crowdlens is starting on http://${RUN_ADDRESS:-127.0.0.1:8000}/ (admin: /admin/, API docs: /api/docs/). Ctrl-C stops it."
wait -n "${pids[@]}"
