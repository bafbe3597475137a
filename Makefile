# The two commands of the README: `make run` (the hub on the embedded default) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup run test clean

# (Re)build the virtual environment whenever a requirements file changes.
$(VENV)/.installed: requirements.txt requirements-sandbox.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@

setup: $(VENV)/.installed

run: setup
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py collectstatic --noinput --verbosity 0
	$(BIN)/python manage.py ensure_staff_user
	$(BIN)/python -m sandbox.run

test: setup
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) staticfiles test-artifacts db.sqlite3 db.sqlite3-wal db.sqlite3-shm
