# `make run` / `make test` create .venv on first use and never reinstall after that.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test lint

$(VENV): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(VENV)

run: $(VENV)
	$(BIN)/photoatlas

test: $(VENV)
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -q

lint: $(VENV)
	$(BIN)/ruff check app core tests bench
