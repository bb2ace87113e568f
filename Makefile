# Ferry: `make demo` and `make test` are all a fresh Debian machine needs.
PY := .venv/bin/python
export PYTHONPATH := $(CURDIR)

.PHONY: all deps lint check test up demo bench latency reliability openapi clean

all: test

deps:
	@bash scripts/bootstrap.sh

lint: deps
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy
	.venv/bin/lint-imports

# The inner loop: lint, types and the tests that start no process (no registry, Azurite or CLI).
# Modules whose every test starts one are not even imported (schemathesis alone costs seconds).
WHOLLY_PROCESS := test_api_schema test_up test_demo test_reliability test_cli test_hostile_registry test_tag_sets test_cli_service test_control_page
check: lint
	$(PY) -m pytest -m "not process" $(foreach m,$(WHOLLY_PROCESS),--ignore=tests/$(m).py)

# make test alone needs checkov (the infra tests): make up and make demo never install it.
test: lint
	@bash scripts/bootstrap.sh --test
	$(PY) -m pytest

# Ferry's local service in the foreground (Azurite, registries, the API, workers, the triggers).
up: deps
	$(PY) -m scripts.up

demo: deps
	$(PY) -m scripts.demo

bench: deps
	@bash scripts/bootstrap.sh --runtime
	$(PY) -m bench.run $(BENCH_ARGS)

# POST to succeeded on make up's stack, one worker: the service's overhead beside the engine's.
latency: deps
	$(PY) -m bench.latency $(LATENCY_ARGS)

reliability: deps
	$(PY) -m bench.reliability $(RELIABILITY_ARGS)

openapi: deps
	$(PY) -m scripts.openapi

clean:
	rm -rf .venv node_modules .mypy_cache .pytest_cache .ruff_cache
