# The commands a developer and CI run. `make run` and `make test` are the two set-up
# commands from the README.
CARGO ?= cargo
BIN := ./target/release/seriesd

.PHONY: run build init migrate seed test test-timescaledb test-citus fuzz fmt lint openapi api-check bench bench-ingest bench-query bench-hostile

# `make fuzz`: cases per property, and the most seconds the whole run may take.
FUZZ_CASES ?= 50000
FUZZ_SECONDS ?= 600

run: build ## build, migrate, seed, make sure a development admin token exists (.seriesd-dev-token), serve
	$(BIN) migrate
	$(BIN) seed
	$(BIN) token ensure-dev
	$(BIN) serve

build:
	$(CARGO) build --release

init: build ## migrate + seed, like the seed project's `make init`
	$(BIN) migrate
	$(BIN) seed

migrate: build
	$(BIN) migrate

seed: build
	$(BIN) seed

# The tests that read or write storage, run again on each other engine (the rest do not
# depend on it: tokens, headers, the document, input limits, the CLI, fault clusters).
STORAGE_TESTS := kind(test) & !test(/^(tokens|headers|openapi|hostile_input|input_limits|overload|cli|engines|faults|catalogue)::/)

test: ## every test against the PostgreSQL and Redis on loopback, then the storage tests on TimescaleDB (where ../shared/pg-extensions is)
	$(CARGO) nextest run --no-fail-fast
	$(MAKE) test-timescaledb

test-timescaledb: ## the storage tests against a throwaway TimescaleDB cluster (skipped without ../shared/pg-extensions)
	scripts/on-engine.sh timescaledb $(CARGO) nextest run --no-fail-fast -E '$(STORAGE_TESTS)'

test-citus: ## the storage tests against a throwaway three-node Citus cluster (not yet part of `make test`: see docs/testing.md)
	scripts/on-engine.sh citus $(CARGO) nextest run --no-fail-fast -E '$(STORAGE_TESTS)'

fuzz: ## the parser properties (src/parser_fuzz.rs) with FUZZ_CASES cases each, stopped after FUZZ_SECONDS
	PROPTEST_CASES=$(FUZZ_CASES) timeout $(FUZZ_SECONDS) $(CARGO) nextest run --no-fail-fast -E 'test(/^parser_fuzz::fuzz_/)'

fmt:
	$(CARGO) fmt

lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings

openapi: ## rewrite openapi/openapi.json from the code (the test `openapi::committed_document_is_current` checks it)
	$(CARGO) run --quiet -- openapi > openapi/openapi.json.tmp
	mv openapi/openapi.json.tmp openapi/openapi.json

api-check: ## schemathesis against a real server on a fresh database (creates .venv-api-check/)
	$(CARGO) build
	bash tests/api-check/run.sh

bench: bench-ingest bench-query ## the whole suite; rewrites BENCHMARKS.md

bench-ingest: build ## ingest benchmark; rewrites its section of BENCHMARKS.md
	bash benches/ingest.sh

bench-hostile: build ## memory and time under hostile ingest input; prints a table for BENCHMARKS.md
	python3 benches/hostile_memory.py target/release/seriesd

bench-query: build ## query benchmark on 10 M points; rewrites its section of BENCHMARKS.md
	$(CARGO) build --release --example mixed_load
	bash benches/query.sh
