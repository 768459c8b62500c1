# waypoint: an L7 waypoint proxy for Istio's ambient mesh, in Go.

GO ?= go
# Tests that start servers bind 127.0.0.0/8 addresses only.
TEST_FLAGS ?= -race -count=1 -timeout 20m

.PHONY: demo test build vet fmt-check bench e2e tools clean

## demo: run a whole local mesh on loopback (waypoint, ztunnel stand-ins, two sample pods)
demo:
	$(GO) run ./cmd/waypoint demo

## build: build the binaries into bin/
build:
	$(GO) build -o bin/ ./cmd/...

## test: format and vet checks, then every test with the race detector, end-to-end tests included
test: fmt-check vet
	$(GO) test $(TEST_FLAGS) ./...

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

## tools: install the pinned real peers the end-to-end tests drive into bin/tools
## (the tests install them on first use too)
GRPC_VERSION = $(shell $(GO) list -m -f '{{.Version}}' google.golang.org/grpc)
TOOLS = $(CURDIR)/bin/tools
tools:
	@mkdir -p $(TOOLS)
	GOBIN=$(TOOLS) GOFLAGS= $(GO) install fortio.org/fortio@v1.66.5
	GOBIN=$(TOOLS) GOFLAGS= $(GO) install github.com/summerwind/h2spec/cmd/h2spec@v2.2.1+incompatible
	cd $$(mktemp -d) && GOBIN=$$PWD GOFLAGS= $(GO) install google.golang.org/grpc/interop/client@$(GRPC_VERSION) google.golang.org/grpc/interop/server@$(GRPC_VERSION) && mv client $(TOOLS)/interop-client && mv server $(TOOLS)/interop-server

## e2e: only the end-to-end tests (real binaries on loopback)
e2e:
	$(GO) test $(TEST_FLAGS) -v ./e2e/...

## bench: hot-path benchmarks
bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

clean:
	rm -rf bin/
