# The two set-up commands of the README: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PLUGINS := plugins/mail_delivery plugins/local_store plugins/notifications plugins/asterisk plugins/hylafax plugins/smstools

.PHONY: demo test test-sqlite test-postgresql lint install reliability bench bench-nodes

$(VENV)/.installed: pyproject.toml $(addsuffix /pyproject.toml,$(PLUGINS))
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]' $(addprefix -e ,$(PLUGINS))
	touch $@

install: $(VENV)/.installed

demo: $(VENV)/.installed
	UMS=$(VENV)/bin/ums PY=$(PY) bash scripts/demo.sh

lint: $(VENV)/.installed
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .

# The whole suite twice: on SQLite (the embedded default), then on a throw-away
# PostgreSQL cluster the tests start themselves (tests/pgcluster.py).
test: lint test-sqlite test-postgresql

test-sqlite: $(VENV)/.installed
	$(PY) -m pytest

test-postgresql: $(VENV)/.installed
	UMS_TEST_DATABASE=postgresql $(PY) -m pytest

reliability: $(VENV)/.installed
	$(PY) scripts/reliability.py

bench: $(VENV)/.installed
	$(PY) scripts/bench.py

bench-nodes: $(VENV)/.installed
	$(PY) scripts/bench_nodes.py
