// Command soak runs the real waypoint binary for a long time under steady
// load, config pushes and endpoint churn, and records whether anything
// grows or fails (issue 16's soak; bench/README.md, "Soak"):
//
//   - the waypoint is configured over ADS (state of the world; -delta for
//     incremental) by an in-process xDS server (xds/xdsserver) and sits
//     between a source ztunnel stand-in and pods,
//     each an HTTP backend behind its own ztunnel stand-in (HBONE, mTLS),
//     all on 127.79.0.0/16;
//   - a fixed-rate, open-loop load generator sends -rate requests a second
//     (1,000) over keep-alive connections through the source ztunnel, in
//     turn HTTP/1.1 and h2c inside the HBONE streams, to a route whose
//     cluster speaks HTTP/1.1 to the pods and to one that speaks HTTP/2;
//   - every -config-every (10 s) the config flips between two versions
//     that differ where istiod's pushes differ: the route's response header
//     x-soak-config (a or b, which every response must carry), an
//     AuthorizationPolicy's RBAC filter (b only: ALLOW the client's
//     principal) and the clusters' load balancer (ROUND_ROBIN, then
//     LEAST_REQUEST);
//   - every -churn-every (1 s) the -churn oldest of the -endpoints pods leave
//     the clusters by an EDS push and as many new pods, listening first,
//     arrive; a pod that left keeps serving for -grace (5 s), as a
//     terminating pod does, then shuts down (GOAWAY, idle connections
//     closed) and its address is reused by a later pod.
//
// Every -sample-every (5 s) it samples the waypoint's RSS (/proc/PID/status),
// goroutines (the admin's /debug/pprof/goroutine), open fds (/proc/PID/fd)
// and the latency of the interval's requests (p50, p99, max, from the time
// each request was due), and prints a row. At the end it writes
// -out/soak-DATE.md (the figures at start, their range after -warmup, at the
// end and their slope; requests, failures by reason, the waypoint's retry
// counters, config propagation) and soak-DATE.png (one panel each for RSS,
// goroutines, fds, latency and throughput over time).
//
//	go run ./bench/cmd/soak -duration 5m
//	make soak SOAK_FLAGS='-duration 5m'
//
// Run it from the repository root: it builds ./cmd/waypoint unless
// -waypoint names a binary. A failed request is any answer but a 200 with
// body "ok" and the header x-soak-config, or a transport error; the
// waypoint's access log keeps every request answered ≥ 300, with a response
// flag or slower than 1 s, and the first of them are printed at the end.
//
// Ownership: the tool owns the waypoint process (stopped with SIGTERM at the
// end, killed by the kernel should the tool die first), the pods and their
// goroutines, the load workers and the control loop; all end before it
// exits. Exit status 1 when a request failed, a config version was never
// served, or the waypoint or a push failed.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"
)

type options struct {
	duration, warmup, sample    time.Duration
	rate                        float64
	concurrency                 int
	endpoints, churn            int
	churnEvery, grace, cfgEvery time.Duration
	waypoint, out               string
	keep, delta                 bool
	args                        []string // the command line, for the summary
}

func main() {
	var o options
	flag.DurationVar(&o.duration, "duration", time.Hour, "how long to run under load, churn and config pushes")
	flag.DurationVar(&o.warmup, "warmup", time.Minute, "samples before this are left out of the ranges and slopes")
	flag.DurationVar(&o.sample, "sample-every", 5*time.Second, "how often the waypoint and the latency are sampled")
	flag.Float64Var(&o.rate, "rate", 1000, "requests per second, sent on schedule (open loop)")
	flag.IntVar(&o.concurrency, "concurrency", 128, "requests in flight at most (load workers); a request that finds none free waits, and is not sent if 1 s late")
	flag.IntVar(&o.endpoints, "endpoints", 20, "endpoints of the clusters at any time")
	flag.IntVar(&o.churn, "churn", 2, "endpoints replaced at each churn step (0: no churn)")
	flag.DurationVar(&o.churnEvery, "churn-every", time.Second, "how often -churn endpoints leave and as many arrive")
	flag.DurationVar(&o.grace, "grace", 5*time.Second, "how long a pod that left keeps serving before it shuts down")
	flag.DurationVar(&o.cfgEvery, "config-every", 10*time.Second, "how often the config flips between its two versions (0: never)")
	flag.StringVar(&o.waypoint, "waypoint", "", "the waypoint binary (default: go build ./cmd/waypoint)")
	flag.StringVar(&o.out, "out", "bench/results", "where soak-DATE.md and .png are written")
	flag.BoolVar(&o.delta, "delta", false, "the waypoint takes its config over delta ADS (--xds-delta) instead of state of the world")
	flag.BoolVar(&o.keep, "keep", false, "keep the temporary directory (certificates, config, the waypoint's log and access log); kept anyway when requests failed")
	flag.Parse()
	o.args = os.Args
	if err := o.check(); err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		os.Exit(1)
	}
}

func (o options) check() error {
	switch {
	case o.rate <= 0 || o.rate > 20000:
		return fmt.Errorf("-rate %v: want 0 < rate ≤ 20000", o.rate)
	case o.concurrency < 1:
		return fmt.Errorf("-concurrency %d: want ≥ 1", o.concurrency)
	case o.endpoints < 1 || o.churn < 0 || o.churn > o.endpoints:
		return fmt.Errorf("-endpoints %d -churn %d: want endpoints ≥ 1 and 0 ≤ churn ≤ endpoints", o.endpoints, o.churn)
	case o.churn > 0 && o.churnEvery <= 0:
		return fmt.Errorf("-churn-every %v: want > 0", o.churnEvery)
	case o.sample <= 0 || o.duration <= 0 || o.grace < 0 || o.cfgEvery < 0:
		return fmt.Errorf("-duration, -sample-every want > 0, -grace and -config-every ≥ 0")
	case podSlots(o) > maxPodIPs:
		return fmt.Errorf("-endpoints %d, -churn %d, -grace %v: %d pods at once need more than the %d pod addresses", o.endpoints, o.churn, o.grace, podSlots(o)/2, maxPodIPs)
	}
	return nil
}
