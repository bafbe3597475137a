# The two commands of the README: `make run` (the hub on the embedded default) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup browser promtool run test clean

# (Re)build the virtual environment whenever a requirements file changes.
$(VENV)/.installed: requirements.txt requirements-sandbox.txt requirements-dev.txt build-constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet --build-constraint build-constraints.txt -r requirements-dev.txt
	touch $@

setup: $(VENV)/.installed

# With DEBUG off the hub needs a SECRET_KEY: sandbox.secret_key writes a random one into the
# git-ignored .env the first time (unless the environment or .env has one).
run: setup
	$(BIN)/python -m sandbox.secret_key
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py collectstatic --noinput --verbosity 0
	$(BIN)/python manage.py ensure_staff_user
	$(BIN)/python -m sandbox.run

# The browser tests drive Debian's chromium (Playwright never downloads a browser here).
browser:
	command -v chromium >/dev/null || (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium)

# promtool, for the alert rules' unit tests (tests/test_alerts.py), from Debian's prometheus package.
promtool:
	command -v promtool >/dev/null || (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y prometheus)

# Two pytest processes (pytest-xdist), one test file at a time each: a file's hub and fixtures stay
# in one process. TEST_WORKERS=0 runs the suite in this process alone.
TEST_WORKERS ?= 2
test: setup browser promtool
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

clean:
	rm -rf $(VENV) staticfiles test-artifacts db.sqlite3 db.sqlite3-wal db.sqlite3-shm

# Benchmarks (issue #6): starts its own broker, Stripe stand-in, PostgreSQL database (on the
# server of DATABASE_URL, default postgres://postgres@127.0.0.1:5432) and hub processes, runs every
# scenario and writes docs/benchmarks.md. Needs wrk (Debian) and Redis on 127.0.0.1:6379 (Celery).
.PHONY: bench
bench: setup
	command -v wrk >/dev/null || (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y wrk)
	$(BIN)/pip install --quiet -r bench/requirements.txt
	$(BIN)/python -m bench.run
