# The commands a developer and CI run. `make run` and `make test` are the two set-up
# commands from the README.
CARGO ?= cargo
BIN := ./target/release/seriesd

.PHONY: run build init migrate seed test test-timescaledb test-citus fuzz fmt lint openapi explorer-screenshot api-check bench bench-ingest bench-query bench-hostile bench-engines bench-erase bench-replicas bench-mixed-vs bench-bytes bench-bytes-timescaledb bench-growth

# `make fuzz`: cases per property, and the most seconds the whole run may take.
FUZZ_CASES ?= 50000
FUZZ_SECONDS ?= 600

run: build ## build, migrate, seed (with a demo user's sessions), make sure a development admin token exists (.seriesd-dev-token), serve
	$(BIN) migrate
	$(BIN) seed --demo
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
# depend on it: tokens, headers, the document, input limits, the CLI, fault clusters,
# read replicas on clusters of their own, the explorer page in a browser); the catalogue's
# tests stay, since on Citus its tables are reference tables with rules of their own.
STORAGE_TESTS := kind(test) & !test(/^(tokens|headers|openapi|hostile_input|input_limits|overload|cli|engines|faults|replicas|explorer)::/)

test: ## every test against the PostgreSQL and Redis on loopback, then the storage tests on TimescaleDB and on Citus (where ../shared/pg-extensions is)
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	  echo "skipped: the explorer's browser tests (chromium and chromedriver are not installed: apt-get install chromium chromium-driver)"
	$(CARGO) nextest run --no-fail-fast
	$(MAKE) test-timescaledb
	$(MAKE) test-citus

test-timescaledb: ## the storage tests against a throwaway TimescaleDB cluster (skipped without ../shared/pg-extensions)
	scripts/on-engine.sh timescaledb $(CARGO) nextest run --no-fail-fast -E '$(STORAGE_TESTS)'

test-citus: ## the storage tests against a throwaway three-node Citus cluster (skipped without ../shared/pg-extensions)
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

explorer-screenshot: ## rewrite docs/explorer.png: the demo user in the explorer, drawn by headless Chromium
	EXPLORER_SCREENSHOT=$(CURDIR)/docs/explorer.png $(CARGO) nextest run -E 'test(=explorer::the_demo_user_is_drawn_one_click_after_pasting_a_token)'
	@test -f docs/explorer.png

api-check: ## schemathesis against a real server on a fresh database (creates .venv-api-check/)
	$(CARGO) build
	bash tests/api-check/run.sh

bench: bench-ingest bench-query bench-mixed-vs bench-bytes bench-bytes-timescaledb bench-engines bench-erase bench-replicas bench-growth ## the whole suite; rewrites BENCHMARKS.md

bench-ingest: build ## ingest benchmark; rewrites its section of BENCHMARKS.md
	bash benches/ingest.sh

bench-hostile: build ## memory and time under hostile ingest input; prints a table for BENCHMARKS.md
	python3 benches/hostile_memory.py target/release/seriesd

bench-query: build ## query benchmark on 10 M points; rewrites its section of BENCHMARKS.md
	$(CARGO) build --release --example mixed_load
	bash benches/query.sh

bench-mixed-vs: build ## the saturating mixed load on this commit and on BENCH_BASE_COMMIT (default 3f11835), taking turns on a copy of bench-query's data; rewrites its section of BENCHMARKS.md
	$(CARGO) build --release --example mixed_load
	bash benches/mixed_vs.sh

bench-bytes: build ## table, index and rollup bytes per point on the seed's data shape and on bench-query's; rewrites its section of BENCHMARKS.md
	bash benches/bytes.sh

bench-bytes-timescaledb: build ## bytes per point of compressed weeks on a throwaway TimescaleDB cluster (skipped without ../shared/pg-extensions); rewrites its section of BENCHMARKS.md
	bash benches/bytes_timescaledb.sh

bench-growth: build ## one user's two years at 250 k, 2.5 M and 25 M points: ingest rate and query p50 against plain SQL, plotted to docs/growth.png (creates .venv-bench/ for matplotlib); rewrites its section of BENCHMARKS.md
	bash benches/growth.sh

bench-erase: build ## erasing a 1 M-point user while other users ingest; rewrites its section of BENCHMARKS.md
	bash benches/erase.sh

bench-engines: build ## ingest and queries on native, TimescaleDB and Citus in one run (throwaway clusters; skipped without ../shared/pg-extensions); rewrites its section of BENCHMARKS.md
	bash benches/engines.sh

bench-replicas: build ## the mixed load on a primary alone and with one streaming hot standby, in one run (throwaway clusters); rewrites its section of BENCHMARKS.md
	$(CARGO) build --release --example mixed_load
	bash benches/replicas.sh
