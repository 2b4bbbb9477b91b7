# `make run` / `make test` create .venv on first use and never reinstall after that.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test lint screenshot

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
	$(BIN)/lint-imports

# The window under Xvfb on the shared everyday photos after a short training run (reuses the
# library once it has a map): docs/screenshot.png.
PHOTOS ?= ../shared/data/flickr-dev
SCREENSHOT_LIBRARY ?= /tmp/photoatlas-screenshot-library
screenshot: $(VENV)
	xvfb-run -a -s "-screen 0 1600x1000x24" $(BIN)/python -m photoatlas.app.screenshot $(PHOTOS) \
		--library $(SCREENSHOT_LIBRARY) --out docs/screenshot.png
