#!/usr/bin/env bash
# Runs the hot-path micro-benchmarks COUNT times and prints each one's
# median, with its ratio to the reference measured in the same run.
# Usage: bench/micro.sh [COUNT]   (raw output goes to stderr)
set -euo pipefail
cd "$(dirname "$0")/.."
count=${1:-5}
go test -run '^$' -bench . -benchmem -count "$count" ./proxy/relay/ ./proxy/hbone/ ./xds/ | tee /dev/stderr |
  go run ./bench/cmd/benchtable \
    -ref BenchmarkRelayTCP=BenchmarkDirectTCP \
    -ref BenchmarkHBONERelay=BenchmarkTLSReference \
    -ref BenchmarkHBONEStreamSetup=BenchmarkTCPConnectReference
