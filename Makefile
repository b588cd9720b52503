# Crowdlens: `make run` starts the platform on SQLite and local files; `make test` runs the suite.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: venv frontend run test test-fast migrate schema audit bench-upload bench-upload-memory bench-nginx bench-train bench-leaderboard bench-newsletter bench-review bench-browser-model clean

# uv installs the pinned set (constraints.txt) faster than pip (5 s against 55 s with warm caches before
# the bytecode below: docs/testing.md); `make venv INSTALLER=pip` installs the same pins with pip (uv reads
# no pip.conf: a machine that reaches packages only through pip's configured mirror needs that).
# Both write every package's bytecode at install, as pip does by default and uv only when asked: a machine
# with PYTHONDONTWRITEBYTECODE set (this project's CI machine) never writes it later, so without it every
# process compiled what it imported, again (TensorFlow's import 17 s of CPU instead of 5: docs/testing.md).
UV_VERSION := 0.13.9
INSTALLER ?= uv
ifeq ($(INSTALLER),uv)
INSTALL = $(BIN)/uv pip install --python $(BIN)/python --quiet --compile-bytecode
else
INSTALL = $(BIN)/python -m pip install --quiet
endif

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(if $(filter uv,$(INSTALLER)),$(BIN)/python -m pip install --quiet uv==$(UV_VERSION),$(BIN)/python -m pip install --quiet --upgrade pip)
	$(INSTALL) -c constraints.txt -e '.[dev]'
	# mediapipe declares absl-py~=2.3 (for its command-line tools) and tensorflow-model-optimization
	# absl-py~=1.2, so no resolver installs both; the metadata writers and the Tasks classifier we use
	# import no absl, and their real dependencies are in pyproject.toml (docs/decisions.md).
	$(INSTALL) --no-deps -c constraints.txt mediapipe==1.2.2
	touch $(STAMP)

venv: $(STAMP)

# The volunteer pages' npm libraries (package-lock.json), copied into static/vendor/ (deploy/frontend.sh).
FRONTEND_STAMP := static/vendor/.installed-from-lock
$(FRONTEND_STAMP): package.json package-lock.json deploy/frontend.sh
	bash deploy/frontend.sh

frontend: $(FRONTEND_STAMP)

# Web server on 127.0.0.1:8000 and the one scheduler process, on SQLite and ./var/.
run: venv frontend
	bash deploy/run-local.sh

migrate: venv
	$(BIN)/python manage.py migrate --noinput

# The project's own packages (every top-level folder with an __init__.py) compiled once here, for the same
# reason (every test process and subprocess imports them; compileall rewrites only what changed).
PACKAGES := $(patsubst %/__init__.py,%,$(wildcard */__init__.py))
test: venv frontend
	bash deploy/ensure-test-tools.sh
	$(BIN)/python -m compileall -q -j 0 $(PACKAGES) manage.py
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Everything but model training and the browser.
test-fast: venv
	$(BIN)/python -m pytest -m "not slow and not browser" $(PYTEST_ARGS)

schema: venv
	DEBUG=true $(BIN)/python manage.py spectacular --fail-on-warn --validate --file var/openapi.yaml

# Every pinned package against published advisories (pip-audit asks PyPI's vulnerability
# data, so it needs that service; --strict fails rather than skip what it cannot look up).
audit: venv
	$(BIN)/pip-audit --requirement constraints.txt --no-deps --disable-pip --strict --progress-spinner off

bench-upload: venv
	$(BIN)/python bench/upload.py

# Workers' memory: 8 clients sending the worst image the limits allow vs 12 MP phone photos.
bench-upload-memory: venv
	$(BIN)/python bench/upload_memory.py

# Needs PostgreSQL and Redis on 127.0.0.1 and Debian's nginx (deploy/ensure-test-tools.sh).
bench-nginx: venv
	$(BIN)/python bench/nginx_upload.py

bench-train: venv
	$(BIN)/python bench/train.py

bench-leaderboard: venv
	$(BIN)/python bench/leaderboard.py

bench-newsletter: venv
	$(BIN)/python bench/newsletter.py

bench-review: venv
	bash deploy/ensure-test-tools.sh
	$(BIN)/python bench/review.py

# Needs ../shared/data (flowers and weights), chromium (deploy/ensure-test-tools.sh) and static/vendor/.
bench-browser-model: venv frontend
	$(BIN)/python bench/browser_model.py

clean:
	rm -rf $(VENV) var
