#!/usr/bin/env bash
# Start the whole platform for one machine: the web server and the scheduler.
# Ctrl-C stops both and exits 0. Data lives in ./var/ (SQLite database, photos, models).
# RUN_ADDRESS (default 127.0.0.1:8000) is where it serves; SITE_URL, unless set, follows it.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
VAR_DIR="${CROWDLENS_VAR_DIR:-var}"
ADDRESS="${RUN_ADDRESS:-127.0.0.1:8000}"
mkdir -p "$VAR_DIR"
export DEBUG="${DEBUG:-true}"
# Links in emails and model manifests must lead back here, also when RUN_ADDRESS is not the default.
export SITE_URL="${SITE_URL:-http://$ADDRESS}"
if [ -z "${SECRET_KEY:-}" ]; then
  [ -s "$VAR_DIR/secret_key" ] || "$BIN/python" -c "import secrets; print(secrets.token_urlsafe(50))" > "$VAR_DIR/secret_key"
  SECRET_KEY="$(cat "$VAR_DIR/secret_key")"
  export SECRET_KEY
fi
"$BIN/python" manage.py migrate --noinput
"$BIN/python" manage.py collectstatic --noinput --verbosity 0

pids=()
stop_children() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
# Ctrl-C (or a TERM) is how one stops it: a clean stop, exit 0 (make then reports no error).
on_signal() { trap - INT TERM EXIT; echo "Stopping Crowdlens..."; stop_children; exit 0; }
trap on_signal INT TERM
trap 'trap - EXIT; stop_children' EXIT

"$BIN/python" manage.py runscheduler &
pids+=($!)
"$BIN/python" manage.py runserver "$ADDRESS" --noreload &
pids+=($!)
echo "Crowdlens is starting on http://$ADDRESS/ (admin: /admin/, API docs: /api/docs/). Ctrl-C stops it."
echo "Commands in another terminal: export DEBUG=$DEBUG SITE_URL=$SITE_URL (and CROWDLENS_VAR_DIR if you set it)."
# One process ended by itself: stop the other and pass its status on.
status=0
wait -n "${pids[@]}" || status=$?
exit "$status"
