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
# The installation's settings file (config/env.py): every process reads it when it starts, so the admin's
# "start a run" (a new `manage.py train` process) uses an edit without a restart. Its values win over these.
ENV_FILE="${CROWDLENS_ENV_FILE:-$VAR_DIR/crowdlens.env}"
if [ ! -e "$ENV_FILE" ]; then
  cat > "$ENV_FILE" <<'EOF_ENV'
# Crowdlens settings for `make run`: NAME=value, one a line (every setting: docs/reference/settings.md).
# Values here win over the environment's. Every process reads this file when it starts; each training run
# (the admin's "Start a training run" included) is a new process, so save and start a run: no restart.
# The web server and the scheduler read it when they start: restart `make run` for their own settings.
#
# Before the first night, on a machine without internet (README.md, "Before the first night"):
# TRAINING_BASE_WEIGHTS=/path/to/mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_224_no_top.h5
EOF_ENV
fi
CROWDLENS_ENV_FILE="$(cd "$(dirname "$ENV_FILE")" && pwd)/$(basename "$ENV_FILE")"
export CROWDLENS_ENV_FILE
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
echo "Settings file: $CROWDLENS_ENV_FILE (edit it, then start a run: no restart needed for training runs)."
echo "Commands in another terminal: export CROWDLENS_ENV_FILE=$CROWDLENS_ENV_FILE DEBUG=$DEBUG SITE_URL=$SITE_URL (and CROWDLENS_VAR_DIR if you set it)."
# One process ended by itself: stop the other and pass its status on.
status=0
wait -n "${pids[@]}" || status=$?
exit "$status"
