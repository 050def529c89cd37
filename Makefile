# Vigil — build, run, test. `make run` and `make test` set everything up on a
# fresh machine with Go, git, make and npm.
SHELL := /bin/bash
.DEFAULT_GOAL := build

include scripts/chdb.env
CACHE_DIR ?= $(or $(VIGIL_CACHE_DIR),$(or $(XDG_CACHE_HOME),$(HOME)/.cache)/vigil)
export VIGIL_CHDB_LIB ?= $(CACHE_DIR)/chdb/$(CHDB_VERSION)/libchdb.so
GOBIN_DIR := $(shell go env GOPATH)/bin
BIN := bin/vigil
DATA ?= ./data
TEST_TIMEOUT ?= 10m

.PHONY: deps browser build run test test-long bench lint fuzz clean

deps: ## Fetch libchdb.so (pinned, verified) and tools that are not Go modules.
	@scripts/deps.sh

browser: ## Install Debian chromium for the console's browser tests (if missing).
	@scripts/chromium.sh

build: ## Build bin/vigil.
	go build -o $(BIN) ./cmd/vigil

run: deps build ## Start vigil dev (embedded NATS + ClickHouse) and a gentle simulated load.
	@$(BIN) dev --data $(DATA) & dev=$$!; \
	$(BIN) simulate --wait 2m --rate 5 --sessions 2 --duration 0 --log-level warn & sim=$$!; \
	trap 'true' INT; trap 'kill -TERM $$dev $$sim 2>/dev/null' TERM; \
	wait $$dev; kill -INT $$sim 2>/dev/null; wait $$sim

test: deps browser ## Unit, integration and conformance tests with -race, and the rule packs.
	go run ./cmd/vigil rules test rules/packs/...
	go test -race -count=1 -timeout $(TEST_TIMEOUT) ./...

test-long: deps browser ## Slow suites: soak, 50k sessions, cluster failover, long fuzzing.
	go test -race -count=1 -tags long -timeout 60m ./...

bench: deps build ## Package benchmarks, then `vigil bench` (writes bench/results/e2e.md). Other results in bench/results/*.md name their own commands.
	go test -run '^$$' -bench . ./rules/ ./pii/ ./warehouse/chlocal/ ./warehouse/ ./review/
	$(BIN) bench

lint: deps ## gofmt, go vet, staticcheck and the import-graph check.
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt: files above need formatting"; exit 1; }
	go vet ./...
	$(GOBIN_DIR)/staticcheck ./...
	$(GOBIN_DIR)/staticcheck -tags long ./cmd/vigil
	go test -count=1 -run TestImportGraph .

clean:
	rm -rf bin
