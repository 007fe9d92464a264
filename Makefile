# Totem — the two commands a newcomer needs are `make run` and `make test`.
GO          ?= go
BIN         := bin
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
GOPATHBIN   := $(shell $(GO) env GOPATH 2>/dev/null)/bin
PKGS        := ./...
# make fuzz: how long each fuzz target runs, and how long each new input
# it finds may be minimised (go's default of 60s would dwarf the run).
FUZZTIME    ?= 30s
FUZZMINIMIZE ?= 2s
# The PC/SC driver needs cgo and libpcsclite-dev; without them totemd builds
# with a stub reader (the simulated one still works). TAGS is expanded when
# a recipe uses it, after deps has installed libpcsclite-dev: with := it was
# fixed when make read this file, and a fresh machine's first make test ran
# without the pcsc tag.
PCSC_HEADER ?= /usr/include/PCSC/winscard.h
DEPS_SCRIPT ?= deploy/deps.sh
TAGS         = $(shell test -e $(PCSC_HEADER) && echo pcsc)

.PHONY: all build run demo test check lint vet race cross fuzz fuzz-targets bench bench-fleet attack deps clean deb debcheck

all: build

## deps: install the system packages the demo and the tests use (Debian, as root or with sudo)
deps:
	@bash $(DEPS_SCRIPT)

## build: the three programs into bin/
build:
	$(GO) build -tags "$(TAGS)" -o $(BIN)/ ./cmd/totemd ./cmd/totemhub ./cmd/totemctl

## run: the demo: totemhub, totemctl and totemd with the terminal panel, simulated devices, state in ./state
run: deps build
	@bash deploy/demo.sh $(BIN)

## test: formatting, vet, staticcheck, tidy check, race tests, cross builds
test: deps check race cross

check: vet lint
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	@$(GO) mod tidy -diff || { echo "go.mod/go.sum are not tidy: run go mod tidy"; exit 1; }

vet:
	$(GO) vet $(PKGS)
	$(GO) vet -tags "$(TAGS)" $(PKGS)

lint:
	@test -x $(GOPATHBIN)/staticcheck || GOFLAGS= $(GO) install $(STATICCHECK)
	$(GOPATHBIN)/staticcheck $(PKGS)
	$(GOPATHBIN)/staticcheck -tags "$(TAGS)" $(PKGS)

## race: every package under -race; CI=1 makes a test whose daemon (mosquitto, tmux, espeak-ng…) is missing fail instead of skip (deps installs them)
race:
	CI=$${CI:-1} $(GO) test -race -count=1 -timeout 12m -tags "$(TAGS)" $(PKGS)

## cross: linux/arm64 and linux/arm (GOARM=7) builds, cgo off
cross:
	CGO_ENABLED=0 GOOS=linux GOARCH=arm64 $(GO) build -o /dev/null ./cmd/...
	CGO_ENABLED=0 GOOS=linux GOARCH=arm GOARM=7 $(GO) build -o /dev/null ./cmd/...

## deb: totemd, totemhub and totemctl .deb for amd64, arm64 and armhf (GOARM=7) into dist/ with nfpm; ARCHES=amd64 for one
deb:
	GO=$(GO) $(if $(ARCHES),ARCHES="$(ARCHES)") bash deploy/deb.sh

## debcheck: make deb, then dpkg-deb and systemd-analyze checks of every package built (make test checks amd64's by itself)
debcheck: deb
	TOTEM_DEB_DIR=$(CURDIR)/dist $(if $(ARCHES),TOTEM_DEB_ARCHES="$(ARCHES)") $(GO) test -count=1 -run TestPackages ./deploy

## fuzz: a short run of every fuzz target (make fuzz-targets lists them), so a new one runs without an edit here
fuzz:
	@set -e; targets=$$($(MAKE) -s --no-print-directory fuzz-targets); set -- $$targets; \
	while [ $$# -gt 0 ]; do \
		echo "fuzz $$1 $$2"; \
		$(GO) test -tags "$(TAGS)" $$1 -run '^$$' -fuzz "^$$2\$$" -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMINIMIZE); \
		shift 2; \
	done

## fuzz-targets: every fuzz target as "package target": found in the sources (func Fuzz…), confirmed by go test -list; fails when a package's tests do not build or a target found is not listed (a build tag)
fuzz-targets:
	@set -e; found=0; listed=0; \
	for pkg in $$(grep -rl --include='*_test.go' '^func Fuzz' . | xargs -n1 dirname | sort -u); do \
		found=$$((found + $$(cat $$pkg/*_test.go | grep -c '^func Fuzz'))); \
		list=$$($(GO) test -tags "$(TAGS)" -list '^Fuzz' $$pkg) || { echo "$$list" >&2; echo "fuzz-targets: $$pkg: go test -list failed" >&2; exit 1; }; \
		for fz in $$(echo "$$list" | grep '^Fuzz' || true); do echo "$$pkg $$fz"; listed=$$((listed + 1)); done; \
	done; \
	if [ $$listed -ne $$found ]; then echo "fuzz-targets: $$found fuzz targets in the sources, $$listed listed by go test -list" >&2; exit 1; fi

## bench: one run of the sync benchmarks (enqueue, drain at 1k/10k/100k, the 10k drain again on a private PostgreSQL, autopaho file queue anchor): a table, then key=value figures
bench:
	$(GO) run ./cmd/internal/bench $(BENCHFLAGS)

## attack: the attack suite alone (sync/attack, about 2 minutes): a table attack → outcome → figures (hub RSS, descriptors, legit op p99, log lines)
attack:
	$(GO) test ./sync/attack -run . -count=1 -v -timeout 10m -args -attack.table
## bench-fleet: a regional reconnect storm: 100, 300 and 1 000 simulated totems (real outbox + uplink, 30 queued each) against a real totemhub, then 1 000 on mosquitto + a private PostgreSQL with 1 and 3 totemhub processes: a table, then key=value figures
bench-fleet:
	$(GO) build -o $(BIN)/ ./cmd/totemhub
	$(GO) run ./cmd/internal/benchfleet --hub $(BIN)/totemhub $(BENCHFLAGS)

clean:
	rm -rf $(BIN) state dist
