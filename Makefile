# Crowdlens: `make run` starts the platform on SQLite and local files; `make test` runs the suite.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
export TF_USE_LEGACY_KERAS := 1
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: venv run test test-fast migrate schema bench-upload bench-nginx bench-train bench-leaderboard bench-newsletter clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

# Web server on 127.0.0.1:8000 and the one scheduler process, on SQLite and ./var/.
run: venv
	bash deploy/run-local.sh

migrate: venv
	$(BIN)/python manage.py migrate --noinput

test: venv
	bash deploy/ensure-test-tools.sh
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Everything but model training and the browser.
test-fast: venv
	$(BIN)/python -m pytest -m "not slow and not browser" $(PYTEST_ARGS)

schema: venv
	DEBUG=true $(BIN)/python manage.py spectacular --fail-on-warn --validate --file var/openapi.yaml

bench-upload: venv
	$(BIN)/python bench/upload.py

# Needs PostgreSQL and Redis on 127.0.0.1 and Debian's nginx (deploy/ensure-test-tools.sh).
bench-nginx: venv
	$(BIN)/python bench/nginx_upload.py

bench-train: venv
	$(BIN)/python bench/train.py

bench-leaderboard: venv
	$(BIN)/python bench/leaderboard.py

bench-newsletter: venv
	$(BIN)/python bench/newsletter.py

clean:
	rm -rf $(VENV) var
