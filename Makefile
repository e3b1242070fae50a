# Two commands a newcomer needs: `make run` and `make test`. Both set themselves up.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CONFIG ?=

.PHONY: run test lint typecheck pytest pytest-compiled compiled bench soak fuzz acceptance clean constraints contracts system-packages

run: $(VENV)/.installed
	$(BIN)/meter-gateway run $(if $(CONFIG),--config $(CONFIG))

test: $(VENV)/.installed-test system-packages lint typecheck pytest pytest-compiled

lint: $(VENV)/.installed-test
	$(BIN)/ruff format --check gateway modules tests bench acceptance
	$(BIN)/ruff check gateway modules tests bench acceptance

# Strict on gateway/ and modules/; tests/, bench/ and acceptance/ get the project's base
# settings (pyproject.toml): annotations optional, but every body is checked.
typecheck: $(VENV)/.installed-test
	$(BIN)/mypy gateway modules tests bench acceptance

# Coverage is reported, not enforced: it measures the test process (codecs, engine, adapters
# driven in-process), not the gateways the end-to-end tests start as subprocesses.
pytest: $(VENV)/.installed-test system-packages
	$(BIN)/pytest --cov=gateway --cov=modules --cov-report=term:skip-covered $(PYTEST_ARGS)

# The codecs' and the engine's hot modules compiled with mypyc (scripts/compile-codecs), C
# extensions beside the sources that Python then imports instead; `make run` uses them when they
# are there. Without a C compiler nothing is built and the same code runs as pure Python.
# `make clean` removes them.
compiled: $(VENV)/.installed-test
	$(BIN)/python scripts/compile-codecs

# The codec and engine tests again on a compiled copy of the checkout (build/compiled): both
# builds pass. ENGINE_TESTS: the tests that drive gateway/engine's per-sample path.
ENGINE_TESTS = tests/test_engine_*.py tests/test_meters_checkpoint.py tests/test_commands_atomic.py \
	tests/test_breaker_e2e.py tests/test_store.py tests/faults/test_clock_faults.py \
	tests/test_mqtt_payloads.py
pytest-compiled: $(VENV)/.installed-test
	@$(BIN)/python scripts/compile-codecs --into build/compiled; status=$$?; \
	if [ $$status -eq 3 ]; then echo "no compiled build here: the codecs and the engine ran as pure Python only"; \
	elif [ $$status -ne 0 ]; then exit $$status; \
	else cd build/compiled && $(abspath $(BIN))/pytest tests/codecs $(ENGINE_TESTS) -q -p no:cacheprovider; fi

# Peers go into bench/.venv (from PyPI), never into .venv; valgrind counts instructions for
# the Raspberry Pi section. BENCH_ARGS=--quick for a short run.
bench: $(VENV)/.installed-test system-packages
	-@scripts/ensure-packages valgrind
	$(BIN)/python -m bench $(BENCH_ARGS)

# The fault campaign (tests/faults/) at length: every fault FAULT_CYCLES times (kill -9 cycles,
# unplugs, outages), figures printed as FIGURE lines. `make test` runs the same tests briefly.
FAULT_CYCLES ?= 100
soak: $(VENV)/.installed-test system-packages
	FAULT_CYCLES=$(FAULT_CYCLES) $(BIN)/pytest tests/faults -s -q -p no:cacheprovider $(PYTEST_ARGS)

# The codecs' decoders under a coverage-guided fuzzer (atheris), each until 1 M inputs (at least
# a minute) or FUZZ_SECONDS; where atheris does not install, a plain mutation fuzzer runs and
# says so. Exit 1 on any exception that is not the codecs' own.
FUZZ_SECONDS ?= 360
fuzz: $(VENV)/.installed-test
	@$(BIN)/python -m pip install --quiet 'atheris>=2.3' || echo "atheris does not install here: the fallback mutation fuzzer runs (not coverage-guided)"
	$(BIN)/python -m tests.faults.fuzzing --seconds $(FUZZ_SECONDS) $(FUZZ_ARGS)

# Public contracts (HTTP responses, live-stream messages, MQTT payloads, command arguments and
# results) are pinned as JSON schemas under tests/contracts/, and the README's command list is
# generated from the command table; after a deliberate change, rewrite both and commit the diff.
contracts: $(VENV)/.installed-test
	$(BIN)/python -m tests.test_contracts --write
	$(BIN)/python -m gateway.commands --write README.md

# A real Home Assistant Core (HA_VERSION, default in acceptance/setup-home-assistant) in a
# Debian trixie chroot under .acceptance/ (it needs Python 3.13), two gateways and three sim
# meters on one mosquitto; asserts through HA's APIs. Needs root. About 5 minutes once set up.
acceptance: $(VENV)/.installed-test system-packages
	@scripts/ensure-packages debootstrap
	acceptance/setup-home-assistant .acceptance
	ACCEPTANCE_DIR=.acceptance $(BIN)/pytest acceptance -p no:cacheprovider -o testpaths=acceptance $(PYTEST_ARGS)

system-packages:
	@scripts/ensure-packages mosquitto chromium systemd faketime

$(BIN)/python:
	@scripts/ensure-venv $(PYTHON) $(VENV)

# constraints.txt pins what the tests last passed with, so a fresh machine installs the same
# versions; refresh it with `make constraints` after changing a dependency.
$(VENV)/.installed: pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[fast]'
	@touch $@

$(VENV)/.installed-test: pyproject.toml constraints.txt $(VENV)/.installed
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[fast,test]'
	@touch $@

constraints: $(VENV)/.installed-test
	{ echo "# What the tests last passed with (make constraints); make run and make test install within these."; \
	  $(BIN)/python -m pip freeze --exclude-editable | grep -v '^meter-gateway'; } > constraints.txt

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .ruff_cache .pytest_cache
	find modules gateway -name '*.so' -delete
