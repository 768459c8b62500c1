#!/usr/bin/env bash
# Runs the hot-path micro-benchmarks COUNT times (interleaved by go test's
# -count) and prints each one's median with its ratio to the reference
# measured in the same run. Usage: bench/micro.sh [COUNT]
set -euo pipefail
cd "$(dirname "$0")/.."
count=${1:-5}
out=$(mktemp)
trap 'rm -f "$out"' EXIT
go test -run '^$' -bench . -benchmem -count "$count" ./proxy/relay/ ./proxy/hbone/ ./xds/ | tee "$out" >&2

# name -> median ns/op, MB/s, B/op, allocs/op
awk '
/^Benchmark/ {
  name=$1; sub(/-[0-9]+$/, "", name)
  for (i = 2; i < NF; i++) {
    if ($(i+1) == "ns/op") ns[name] = ns[name] " " $i
    if ($(i+1) == "MB/s") mbs[name] = mbs[name] " " $i
    if ($(i+1) == "B/op") bop[name] = $i
    if ($(i+1) == "allocs/op") aop[name] = $i
  }
}
function median(list,   a, n) {
  n = split(list, a, " ")
  if (n == 0) return 0
  asort(a)
  return (n % 2) ? a[(n+1)/2] : (a[n/2] + a[n/2+1]) / 2
}
END {
  ref["BenchmarkRelayTCP"] = "BenchmarkDirectTCP"
  ref["BenchmarkHBONERelay"] = "BenchmarkTLSReference"
  ref["BenchmarkHBONEStreamSetup"] = "BenchmarkTCPConnectReference"
  printf "| benchmark | median ns/op | MB/s | B/op | allocs/op | reference | ns/op ratio to reference |\n"
  printf "|---|---|---|---|---|---|---|\n"
  n = asorti(ns, names)
  for (k = 1; k <= n; k++) {
    b = names[k]
    r = (b in ref) ? ref[b] : ""
    ratio = (r != "" && median(ns[r]) > 0) ? sprintf("%.2fx", median(ns[b]) / median(ns[r])) : ""
    printf "| %s | %.0f | %s | %s | %s | %s | %s |\n", b, median(ns[b]), (b in mbs) ? sprintf("%.0f", median(mbs[b])) : "", bop[b], aop[b], r, ratio
  }
}' "$out"
