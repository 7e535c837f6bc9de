# The two set-up commands of the README: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PLUGINS := plugins/mail_delivery plugins/local_store plugins/notifications plugins/asterisk plugins/hylafax plugins/smstools

.PHONY: demo test lint install reliability bench

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

test: lint
	$(PY) -m pytest

reliability: $(VENV)/.installed
	$(PY) scripts/reliability.py

bench: $(VENV)/.installed
	$(PY) scripts/bench.py
