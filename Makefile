# Two commands for a newcomer: `make demo` and `make test`. Both bootstrap .venv on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test install clean bench

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/socialcrm demo

test: $(STAMP)
	$(BIN)/python -m pytest -q -ra

bench: $(STAMP)
	$(BIN)/python -m bench.ingest --quick
	$(BIN)/python -m bench.inbox --quick
	$(BIN)/python -m bench.live --quick
	$(BIN)/python -m bench.dashboard --quick
	$(BIN)/python -m bench.search --quick
	$(BIN)/python -m bench.outbound --quick

clean:
	rm -rf $(VENV) .pytest_cache build dist *.egg-info
