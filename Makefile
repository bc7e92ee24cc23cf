# golvs: `make demo` and `make test` are the quick start (see README.md).
# Both install what they need (Go modules, apt packages, the lab kernel);
# nothing depends on what a previous session installed by hand.

SHELL := /bin/bash
export PATH := $(PATH):/usr/local/go/bin:$(HOME)/go/bin
GO ?= go
BIN := $(CURDIR)/bin

.PHONY: prereqs all build deb test unit lab-test demo fuzz bench bench-scale bench-health bench-failover go-check clean fmt vet

all: build

# Go itself is the one prerequisite the Makefile cannot build: on a Debian-like
# machine without it, install Debian's golang-go; go.mod's `go` line then makes
# a new enough toolchain come from the module proxy (GOTOOLCHAIN=auto).
go-check:
	@command -v $(GO) >/dev/null 2>&1 || { \
	  echo "go not found: installing Debian's golang-go"; \
	  [ "$$(id -u)" = 0 ] || { echo "error: need root to apt-get install golang-go (or install Go >= 1.21 yourself)"; exit 1; }; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq golang-go; }

build: go-check
	$(GO) build -o $(BIN)/ ./cmd/...

# The Debian package: bin/golvs_<version>_amd64.deb with both binaries, the
# systemd units and the conffiles (packaging/). Its test (in `make unit`)
# builds it the same way and runs lintian on it.
deb: go-check
	$(GO) run ./packaging/cmd/mkdeb -o $(BIN)

# gofmt from the toolchain go.mod selects, so that CI and editors agree;
# go vet of every file, the lab-, bench- and browser-tagged ones too; staticcheck;
# and the portable packages (config, IPVS types, VRRP codec and state
# machine, status) built for another OS, so Linux-only code stays marked.
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
PORTABLE := ./config/... ./director ./director/ipvs ./director/vrrp ./director/status ./health ./health/check
vet: go-check
	@bad=$$($(GO) run cmd/gofmt -l $$(git ls-files '*.go')); \
	  [ -z "$$bad" ] || { echo "error: not gofmt-ed (make fmt): $$bad"; exit 1; }
	$(GO) vet ./...
	$(GO) vet -tags 'lab bench browser' ./...
	$(GO) run $(STATICCHECK) ./...
	GOOS=darwin $(GO) build $(PORTABLE)

# Unit tests (the in-memory IPVS fake, checkers on loopback, realserver and
# VRRP in network namespaces on this host), then the lab end-to-end suite in a
# real IPVS kernel. The lab fails loudly when it cannot run: it never skips.
test: unit lab-test

# Debian packages the tests use (qemu, ipvsadm, keepalived, tcpdump, ...):
# installed when missing, as root; otherwise named in a loud failure.
prereqs: go-check
	$(GO) run ./integration/cmd/lab prereqs

unit: vet prereqs
	$(GO) test -count=1 ./...
	# The status page in a real headless Chromium (Debian's, installed by
	# prereqs), on the host: Chromium under the lab's emulation is too slow
	# to time. (lab-test opens a real lab director's page the same way.)
	$(GO) test -count=1 -tags browser -run '^TestPageInChromium$$' ./director/metrics

lab-test: build
	$(GO) run ./integration/cmd/lab test

demo: build
	$(GO) run ./integration/cmd/lab demo

# Every fuzz target (parsers of outside input: topology and keepalived
# files, VRRP adverts, agent replies, /proc and netlink replies, control
# requests) for FUZZTIME each, one after another. Their seeds run in
# `make unit`; a crasher found here is kept as a seed.
FUZZTIME ?= 30s
fuzz: go-check
	GO=$(GO) FUZZTIME=$(FUZZTIME) integration/fuzz.sh

# Benchmarks compare ratios measured in one run; none is part of `make test`.
bench: bench-scale bench-health bench-failover

# IPVS programming at scale: ours vs `ipvsadm -R` vs keepalived, one guest
# boot per layout: one VIP with a port per service (100, 1,000, 5,000
# services), then 1,000 services each on a VIP of its own (the director's
# cold start then includes putting the 1,000 VIPs on its interface).
bench-scale: build
	$(GO) run ./integration/cmd/lab bench
	$(GO) run ./integration/cmd/lab bench -many-vips -sizes 1000

# 10,000 TCP-checked backends at 1 s against local listeners: CPU and lateness,
# with listeners that defer accepting (the backend's half of each loopback
# handshake stays small, as with remote backends), the same with every
# handshake awaited (as a round trip away), and with accepting listeners.
bench-health: go-check
	$(GO) build -o $(BIN)/healthbench ./integration/cmd/healthbench
	$(BIN)/healthbench -n 10000 -interval 1s -duration 15s
	$(BIN)/healthbench -n 10000 -interval 1s -duration 15s -wait
	$(BIN)/healthbench -n 10000 -interval 1s -duration 15s -accept

# Failover outage at 100 ms, 200 ms and 1 s adverts, then connections kept of
# 1,000 at failover and at failback (both pairs with connection sync), ours
# vs keepalived, 5 runs each, one guest boot; the tables, raw figures and the
# host's load go to bench/results/<UTC time>-failover.txt.
bench-failover: build
	$(GO) run ./integration/cmd/lab bench-failover

fmt:
	gofmt -w $$(git ls-files '*.go')

clean:
	rm -rf $(BIN)
