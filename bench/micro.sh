#!/usr/bin/env bash
# Runs the hot-path micro-benchmarks COUNT times and prints each one's
# median, with its ratio to the reference measured in the same run.
# Usage: bench/micro.sh [COUNT]   (raw output goes to stderr)
set -euo pipefail
cd "$(dirname "$0")/.."
count=${1:-5}
go test -run '^$' -bench . -benchmem -count "$count" \
  ./proxy/relay/ ./proxy/hbone/ ./xds/ ./protocols/http1/ ./protocols/http2/ \
  ./filters/router/route/ ./filters/router/ ./proxy/localmesh/ | tee /dev/stderr |
  go run ./bench/cmd/benchtable \
    -ref BenchmarkRelayTCP=BenchmarkDirectTCP \
    -ref BenchmarkHBONERelay=BenchmarkTLSReference \
    -ref BenchmarkHBONEStreamSetup=BenchmarkTCPConnectReference \
    -ref BenchmarkUnaryRoundTrip=BenchmarkXNetUnaryRoundTrip \
    -ref BenchmarkUnaryRoundTripParallel=BenchmarkXNetUnaryRoundTripParallel \
    -ref BenchmarkMeshRequest=BenchmarkBackendDirect \
    -pair http1=net-http -pair l7=xnet-reference
