# waypoint: an L7 waypoint proxy for Istio's ambient mesh, in Go.

GO ?= go
# Tests that start servers bind 127.0.0.0/8 addresses only.
TEST_FLAGS ?= -race -count=1 -timeout 20m

.PHONY: demo test build vet fmt-check bench e2e clean

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

## e2e: only the end-to-end tests (real binaries on loopback)
e2e:
	$(GO) test $(TEST_FLAGS) -v ./e2e/...

## bench: hot-path benchmarks
bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

clean:
	rm -rf bin/
