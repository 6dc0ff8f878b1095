# dirsync developer entry points. `make run` and `make test` first make sure
# PostgreSQL and Redis are up (scripts/ensure-services.sh), so both work on a
# fresh machine.

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := build

# PKG narrows `make test` to some packages, e.g. make test PKG=./internal/testdb/...
PKG ?= ./...
# -p 2: packages run as parallel processes; each test gets its own database
# and Redis DB, so this is safe, and the machines here have two cores.
GOTEST_FLAGS ?= -race=false -count=1 -timeout 20m -p 2

.PHONY: build generate migration run test bench lint services clean clean-testdbs

generate:
	go generate ./...

# Writes a new versioned migration from the ent schema (needs PostgreSQL: it
# diffs against a scratch database it creates and drops).
migration: services
	@test -n "$(NAME)" || { echo "usage: make migration NAME=what_changed"; exit 1; }
	go run ./internal/dbmigrate/gen -name $(NAME)

# Stamped into `dirsync version`; the module version and commit come from Go's
# own build information.
BUILD_TIME := $(shell date -u +%Y-%m-%dT%H:%M:%SZ)
COMMIT := $(shell git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
LDFLAGS := -X main.buildTime=$(BUILD_TIME) -X main.commit=$(COMMIT)

build:
	@echo "building bin/dirsync (the first build compiles every dependency: a minute or more)..."
	go build -ldflags "$(LDFLAGS)" -o bin/dirsync ./cmd/dirsync

# Builds first (saying so), then runs the binary under exec so Ctrl-C reaches
# dirsync itself: it drains, exits 0, and make reports no error.
run: services build
	@echo "starting dirsync dev (Ctrl-C stops it cleanly)"
	@exec ./bin/dirsync dev

# The summary line counts go test's own per-package lines; packages without
# tests show as "? ... [no test files]" and do not fail the run.
test: services
	@start=$$SECONDS; log=$$(mktemp); status=0; \
	go test $(GOTEST_FLAGS) $(PKG) 2>&1 | tee "$$log" || status=$$?; \
	echo "make test: $$(grep -cE '^ok[[:space:]]' "$$log" || true) ok," \
		"$$(grep -cE '^FAIL[[:space:]]' "$$log" || true) failed," \
		"$$(grep -c 'no test files' "$$log" || true) without tests," \
		"$$((SECONDS - start))s"; \
	rm -f "$$log"; exit $$status

lint:
	@unformatted=$$(gofmt -l .); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	go vet ./...

services:
	@scripts/ensure-services.sh

clean:
	rm -rf bin

# Drops what testdb leaves behind: databases of failed tests (kept on
# purpose) and templates of older schemas. Not while tests are running.
clean-testdbs: services
	@scripts/clean-testdbs.sh

# Performance benchmarks with same-run baselines (docs/benchmarks.md). Not part
# of `make test`: they take minutes and want an otherwise idle machine.
# BENCH=<regexp> picks some of them by name.
bench: services
	@BENCH='$(BENCH)' ./scripts/bench.sh
