# waypoint: an L7 waypoint proxy for Istio's ambient mesh, in Go.

GO ?= go
# Tests that start servers bind 127.0.0.0/8 addresses only.
TEST_FLAGS ?= -race -count=1 -timeout 20m

.PHONY: demo test build vet fmt-check bench e2e tools clean cluster e2e-istio chart

## demo: run a whole local mesh on loopback (waypoint, ztunnel stand-ins, two sample pods)
demo:
	$(GO) run ./cmd/waypoint demo

## build: build the binaries into bin/
build:
	$(GO) build -o bin/ ./cmd/...

## test: format and vet checks, then every test with the race detector, end-to-end tests included,
## then the waypoint under a live istiod (e2e-istio)
test: fmt-check vet
	$(GO) test $(TEST_FLAGS) ./...
	$(GO) run ./bench/cmd/allocgate
	$(MAKE) e2e-istio

## cluster: build (once, into bin/cluster) and run a local control plane on 127.20.0.1: etcd,
## kube-apiserver, the Gateway API's and Istio's CRDs, istiod, istioctl; prints how to use it; Ctrl-C stops it
cluster:
	cd e2e/cluster && $(GO) run ./cmd/cluster

## e2e-istio: the waypoint under a live istiod (e2e/cluster/live: TestWaypointUnderIstiod and the
## catalogue of docs/istio-compat.md); COMPAT_DOC=1 rewrites that table from the run's results.
## The control plane's first build takes 10 to 20 minutes; later runs reuse bin/cluster.
LIVE_FLAGS ?= -count=1 -timeout 30m -parallel 4
e2e-istio:
	cd e2e/cluster && $(GO) vet ./...
	cd e2e/cluster && $(GO) run ./cmd/cluster -build-only
	cd e2e/cluster && $(GO) test $(LIVE_FLAGS) $(if $(COMPAT_DOC),./live -args -compat-doc $(CURDIR)/docs/istio-compat.md,./...)

## chart: print what charts/waypoint-controller installs (helm template, helm from e2e/cluster/helm);
## CHART_FLAGS adds to it, e.g. CHART_FLAGS='--set istioWaypointDefaults.enabled=true'
chart:
	@cd e2e/cluster/helm && GOWORK=off $(GO) run helm.sh/helm/v4/cmd/helm template waypoint-controller $(CURDIR)/charts/waypoint-controller -n istio-system $(CHART_FLAGS)

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

## tools: install the pinned real peers the end-to-end tests drive into bin/tools
## (the tests install them on first use too); h2spec is pinned in go.mod
## instead and runs as `go tool h2spec`
GRPC_VERSION = $(shell $(GO) list -m -f '{{.Version}}' google.golang.org/grpc)
TOOLS = $(CURDIR)/bin/tools
tools:
	@mkdir -p $(TOOLS)
	GOBIN=$(TOOLS) GOFLAGS= $(GO) install fortio.org/fortio@v1.66.5
	cd $$(mktemp -d) && GOBIN=$$PWD GOFLAGS= $(GO) install google.golang.org/grpc/interop/client@$(GRPC_VERSION) google.golang.org/grpc/interop/server@$(GRPC_VERSION) && mv client $(TOOLS)/interop-client && mv server $(TOOLS)/interop-server

## e2e: only the end-to-end tests (real binaries on loopback)
e2e:
	$(GO) test $(TEST_FLAGS) -v ./e2e/...

## loadtest: the load harness (bench/README.md, "Load tests"): installs what it
## needs (Debian's nginx, haproxy, caddy, nghttp2-client; fortio into bin/tools),
## builds the binaries, then measures every proxy and scenario (about 10 minutes).
## Flags go in LOADTEST_FLAGS, e.g. LOADTEST_FLAGS='-scenarios http1 -proxies waypoint,nginx -quick'
.PHONY: loadtest
loadtest:
	bench/loadtest/setup.sh
	bin/loadtest -bin bin $(LOADTEST_FLAGS)

## attack: issue 16's attacks on the waypoint, 60 s each and 60 s after
## (docs/hardening.md, "Attacks and what they cost"), about 15 minutes; not
## part of make test. Flags go in ATTACK_FLAGS, e.g. ATTACK_FLAGS='-duration 10s -settle 10s'
.PHONY: attack
attack:
	CGO_ENABLED=0 $(GO) build -trimpath -o bin/ ./cmd/waypoint ./cmd/hbone ./bench/cmd/attack
	bin/attack -bin bin $(ATTACK_FLAGS)

## soak: issue 16's soak (bench/README.md, "Soak"): the waypoint for an hour at 1,000 req/s through
## HBONE, a config push every 10 s, endpoints churning; writes bench/results/soak-DATE.md and .png and
## fails on any failed request; not part of make test. Flags go in SOAK_FLAGS, e.g. SOAK_FLAGS='-duration 5m'
.PHONY: soak
soak:
	$(GO) build -o bin/ ./cmd/waypoint ./bench/cmd/soak
	bin/soak -waypoint bin/waypoint $(SOAK_FLAGS)

## bench: hot-path benchmarks
bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

clean:
	rm -rf bin/

## image: the container images, without Docker (cmd/waypoint-image, internal/image): for each
## binary, bin/images/<name>-<version>.tar for the first platform (`docker load -i` or
## `kind load image-archive`; tagged localhost/<name>:<version>), one more tarball per other
## platform, and an OCI layout <name>-<version>.oci with an index of all; the version is the
## VERSION file's, else git describe's; each tarball is read back and checked
IMAGE_PLATFORMS ?= linux/amd64,linux/arm64
.PHONY: image
image:
	$(GO) run ./cmd/waypoint-image -out bin/images -platforms $(IMAGE_PLATFORMS) $(if $(VERSION),-version $(VERSION))

.PHONY: alloc-gate alloc-budgets bench-compare bench-baseline

## alloc-gate: run the hot-path benchmarks a fixed number of times (no -race) and fail
## when one allocates more per op than its budget in bench/alloc-budgets.txt; part of test
alloc-gate:
	$(GO) run ./bench/cmd/allocgate

## alloc-budgets: rewrite bench/alloc-budgets.txt from 10 measurements, keeping its
## comments and each line's headroom (after an optimization lowers a count)
alloc-budgets:
	$(GO) run ./bench/cmd/allocgate -update

# The hot-path benchmark packages; bench-compare runs every benchmark in them.
HOT_PATH = ./proxy/relay ./proxy/sockio ./proxy/hbone ./xds ./protocols/http1 ./protocols/http2 \
	./filters/router/route ./filters/router ./proxy/localmesh ./proxy/upstream/lb \
	./filters/rbac ./telemetry/metrics ./telemetry/accesslog \
	./protocols/dubbo ./protocols/dubbo/hessian2 ./proxy/dubboconn
BENCH_COUNT ?= 6
BENCH_RUN = $(GO) test -run '^$$' -bench . -benchmem -count $(BENCH_COUNT) -timeout 60m $(HOT_PATH)
BENCHSTAT_VERSION = v0.0.0-20260908200009-22c9c6c9d4da
BENCHSTAT = $(TOOLS)/benchstat

## bench-compare: the hot-path benchmarks (-count 6) into bench/results/current.txt, then
## benchstat against bench/baseline.txt; CPU figures are reported, never asserted (-ignore cpu:
## machines of one kind report different CPU model names)
bench-compare: $(BENCHSTAT)
	@mkdir -p bench/results
	$(BENCH_RUN) | tee bench/results/current.txt
	@! grep -q '^FAIL' bench/results/current.txt || { echo "bench-compare: go test failed, see bench/results/current.txt"; exit 1; }
	$(BENCHSTAT) -ignore cpu bench/baseline.txt bench/results/current.txt

## bench-baseline: the same run into bench/baseline.txt, the figures bench-compare compares with
bench-baseline:
	$(BENCH_RUN) | tee bench/baseline.txt.new
	@! grep -q '^FAIL' bench/baseline.txt.new || { echo "bench-baseline: go test failed, see bench/baseline.txt.new"; exit 1; }
	mv bench/baseline.txt.new bench/baseline.txt

$(BENCHSTAT):
	@mkdir -p $(TOOLS)
	GOBIN=$(TOOLS) GOFLAGS= $(GO) install golang.org/x/perf/cmd/benchstat@$(BENCHSTAT_VERSION)
