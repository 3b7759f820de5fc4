# The commands a developer and CI run. `make run` and `make test` are the two set-up
# commands from the README.
CARGO ?= cargo
BIN := ./target/release/seriesd

.PHONY: run build init migrate seed test fmt lint openapi api-check bench bench-ingest bench-query

run: build ## build, migrate, seed, serve
	$(BIN) migrate
	$(BIN) seed
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

test: ## every test, against the PostgreSQL and Redis on loopback
	$(CARGO) nextest run --no-fail-fast

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

bench-query: build ## query benchmark on 10 M points; rewrites its section of BENCHMARKS.md
	bash benches/query.sh
