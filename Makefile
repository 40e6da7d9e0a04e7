# Seamless developer/CI entry points. `make test` is what .ci/run executes.
#
#   make runtime       create .venv and install the project (what the programs and the demo
#                      need) when needed
#   make venv          the same plus the dev extras (tests, lint, type-check) when needed
#   make docker        make sure a Docker engine + compose/registry/busybox are available
#   make images        build the local base image seamless/busybox:latest (FORCE=1 to rebuild)
#                      and the deploy front's image from the host's haproxy
#   make python-image  seamless/python:3 from Debian's packages (bench/real_service.py)
#   make test          lint (ruff), layers (import-linter), type-check (mypy), pytest
#                      e.g. make test PYTEST_ARGS='tests/test_infrastructure.py -x'
#   make demo ARGS=... / demo-clean / screenshots
#   make clean

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Separate stamps: `make demo` needs only the runtime install; the dev extras (pytest, moto,
# schemathesis, mypy ...) are most of the install time and belong to `make test`.
RUNTIME_STAMP := $(VENV)/.installed-runtime
DEV_STAMP := $(VENV)/.installed-dev
PYTEST_ARGS ?=
# Most tests wait on Docker, git and sockets, not the CPU: three workers on two cores.
PYTEST_WORKERS ?= 3
ARGS ?=

# CI exports SEAMLESS_REQUIRE_DOCKER=1; tests fail on a missing engine either way (no skips).
export SEAMLESS_REQUIRE_DOCKER

.PHONY: test-journey runtime venv docker test-tools images python-image test lint layers typecheck demo demo-clean screenshots clean

runtime: $(RUNTIME_STAMP)
venv: $(DEV_STAMP)

# Reinstall only when pyproject.toml changed since the last install.
$(RUNTIME_STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -e .
	@touch $@

# The dev install includes the runtime one: it satisfies both stamps.
$(DEV_STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -e '.[dev]'
	@touch $(RUNTIME_STAMP) $@

docker:
	@scripts/ensure-docker.sh

test-tools:
	@scripts/ensure-test-tools.sh

images: runtime docker
	@FORCE=$(FORCE) scripts/build-base-image.sh
	@$(BIN)/python -m agent.deploy.front_image >/dev/null

# The Python stage image of bench/real_service.py (debootstrap + docker import; cached,
# not part of `make test`).
python-image: docker
	@FORCE=$(FORCE) scripts/build-python-image.sh

lint: venv
	$(BIN)/ruff check agent store seamless_tui tests bench

# The import contracts in pyproject.toml: layers one way, the TUI on store.models only, no cycles.
layers: venv
	$(BIN)/lint-imports

typecheck: venv
	$(BIN)/mypy agent store seamless_tui tests

# Every test once: a failure is a failure (no reruns), the tmux README journey included.
test: venv docker test-tools images lint layers typecheck
	$(BIN)/pytest -q -p no:cacheprovider -n $(PYTEST_WORKERS) --durations=15 $(PYTEST_ARGS)

# Only the README journey in a real terminal (tmux), at 80x24 and 200x50.
test-journey: venv docker test-tools images
	$(BIN)/pytest -q -p no:cacheprovider -m journey tests/tui_terminal

demo: runtime docker images
	scripts/demo.sh $(ARGS)

demo-clean:
	scripts/demo-clean.sh

screenshots: venv docker images test-tools
	$(BIN)/python scripts/screenshots.py
	SEAMLESS_RUN_PAGE_SCREENSHOT=1 $(BIN)/pytest -q -p no:cacheprovider tests/runpage/test_run_page_browser.py

clean:
	rm -rf build dist .pytest_cache .mypy_cache .ruff_cache *.egg-info
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -exec rm -rf {} +
