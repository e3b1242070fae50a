# Two commands a newcomer needs: `make run` and `make test`. Both set themselves up.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CONFIG ?=

.PHONY: run test lint typecheck pytest bench clean system-packages

run: $(VENV)/.installed
	$(BIN)/meter-gateway run $(if $(CONFIG),--config $(CONFIG))

test: $(VENV)/.installed-test system-packages lint typecheck pytest

lint: $(VENV)/.installed-test
	$(BIN)/ruff format --check gateway modules tests bench
	$(BIN)/ruff check gateway modules tests bench

typecheck: $(VENV)/.installed-test
	$(BIN)/mypy gateway modules

pytest: $(VENV)/.installed-test system-packages
	$(BIN)/pytest $(PYTEST_ARGS)

# Peers go into bench/.venv (from PyPI), never into .venv; valgrind counts instructions for
# the Raspberry Pi section. BENCH_ARGS=--quick for a short run.
bench: $(VENV)/.installed-test system-packages
	-@scripts/ensure-packages valgrind
	$(BIN)/python -m bench $(BENCH_ARGS)

system-packages:
	@scripts/ensure-packages mosquitto chromium

$(BIN)/python:
	@scripts/ensure-venv $(PYTHON) $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[fast]'
	@touch $@

$(VENV)/.installed-test: pyproject.toml $(VENV)/.installed
	$(BIN)/python -m pip install --quiet -e '.[fast,test]'
	@touch $@

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .ruff_cache .pytest_cache
