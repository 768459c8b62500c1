package main

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"time"
)

// runner runs the selected scenarios. It is driven by one goroutine.
type runner struct {
	o         *options
	tools     *tools
	sup       *supervisor
	work      string // the run's work directory
	certs     string // the mesh's certificates
	templates string // bench/loadtest
	nofile    uint64 // RLIMIT_NOFILE in force

	sinkBytes atomic.Int64 // bytes the bulk sink has read
	servers   []*tcpServer // the bulk sink

	podServe   *process // the pod's hbone serve of the running HBONE scenario, shared by its waypoints
	unsetProcs int      // the GOMAXPROCS Go chose for the unset variant, once read

	cells    []*cell
	problems []string // what went wrong, for the report
	fortioN  int      // names fortio's result files
}

// run measures every selected scenario in order.
func (r *runner) run(ctx context.Context) error {
	if err := r.startBackends(ctx); err != nil {
		return err
	}
	for _, name := range r.o.scenarios {
		s := scenarioByName(name)
		proxies := r.o.proxiesFor(s)
		if len(proxies) == 0 {
			continue
		}
		fmt.Printf("\n== %s: %s (%s)\n", s.name, s.what, strings.Join(proxies, ", "))
		if err := r.runScenario(ctx, s, proxies); err != nil {
			return err
		}
	}
	return nil
}

// startBackends starts what every scenario shares: fortio servers on the
// backend and pod addresses (the pod's with a TCP echo for the idle
// scenario, so that its ten thousand connections are not the harness's
// descriptors) and the bulk sink.
func (r *runner) startBackends(ctx context.Context) error {
	pod := false
	for _, name := range r.o.scenarios {
		pod = pod || scenarioByName(name).hbone
	}
	servers := []string{ipBackend}
	if pod {
		servers = append(servers, ipPod)
	}
	for _, ip := range servers {
		echo, ports := "disabled", []int{portHTTP, portGRPC}
		if ip == ipPod {
			echo, ports = hostPort(ip, portEcho), append(ports, portEcho)
		}
		p, err := r.sup.start("fortio-server-"+ip, nil, r.tools.fortio, "server",
			"-http-port", hostPort(ip, portHTTP), "-grpc-port", hostPort(ip, portGRPC), "-tcp-port", echo,
			"-redirect-port", "disabled", "-udp-port", "disabled",
			"-ui-path", "", "-echo-debug-path", "", "-quiet")
		if err != nil {
			return err
		}
		for _, port := range ports {
			if err := waitTCP(ctx, hostPort(ip, port), p); err != nil {
				return err
			}
		}
	}
	if pod {
		sink, err := newSink(hostPort(ipPod, portSink), &r.sinkBytes)
		if err != nil {
			return fmt.Errorf("bulk sink: %w", err)
		}
		r.servers = append(r.servers, sink)
	}
	return nil
}

// close stops the harness's own backends.
func (r *runner) close() {
	for _, s := range r.servers {
		s.close()
	}
	r.servers = nil
}

// runScenario deploys the proxies of s, warms each up, then measures them
// round after round, alternating their order, and stops them.
func (r *runner) runScenario(ctx context.Context, s scenario, proxies []string) error {
	deps := map[string]*deployment{}
	failed := map[string]error{}
	defer func() {
		for _, d := range deps {
			d.stop()
		}
		if r.podServe != nil {
			r.podServe.stop(2 * time.Second)
			r.podServe = nil
		}
	}()
	if s.hbone && !s.restart && slices.ContainsFunc(proxies, isWaypoint) {
		// Every waypoint variant is up at once, and the pod has one
		// HBONE port.
		p, err := r.startPodServe(ctx, s.name)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			r.problem("%s: the pod's hbone serve could not start: %v", s.name, err)
		} else {
			r.podServe = p
		}
	}
	if !s.restart {
		for _, p := range proxies {
			d, err := r.deploy(ctx, s, p)
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if err != nil {
				r.problem("%s/%s: could not start: %v", s.name, p, err)
				failed[p] = err
				continue
			}
			deps[p] = d
		}
		for _, p := range proxies {
			if d := deps[p]; d != nil {
				r.warmup(ctx, s, d)
			}
		}
	}
	for round := range r.o.rounds {
		order := slices.Clone(proxies)
		if round%2 == 1 {
			slices.Reverse(order)
		}
		for _, p := range order {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			d := deps[p]
			if s.restart {
				var err error
				if d, err = r.deploy(ctx, s, p); err != nil {
					if ctx.Err() != nil {
						return ctx.Err()
					}
					failed[p] = err
				} else {
					deps[p] = d
				}
			}
			for _, label := range variants(r.o, s) {
				c := &cell{scenario: s.name, label: label, proxy: p, name: r.proxyName(p), round: round + 1}
				switch {
				case d == nil:
					c.err = fmt.Errorf("not run: %v", firstLine(failed[p]))
				default:
					if err := d.alive(); err != nil {
						c.err = err
					} else {
						r.measure(ctx, s, d, c)
					}
				}
				if ctx.Err() != nil {
					return ctx.Err()
				}
				r.cells = append(r.cells, c)
				fmt.Println(c.summary())
				if c.err != nil && d != nil {
					r.problem("%s/%s round %d: %v", c.label, p, c.round, c.err)
				}
			}
			if s.restart && d != nil {
				d.stop()
				delete(deps, p)
			}
		}
	}
	return nil
}

// variants are the labels of a scenario's runs: bulk has one per stream
// count.
func variants(o *options, s scenario) []string {
	if s.kind != kindBulk {
		return []string{s.name}
	}
	var out []string
	for _, n := range o.bulkStreams {
		out = append(out, fmt.Sprintf("bulk-%d", n))
	}
	return out
}

// warmup loads d unmeasured before the scenario's first round, and for
// h2c checks with nghttp that the listener speaks HTTP/2 by prior
// knowledge.
func (r *runner) warmup(ctx context.Context, s scenario, d *deployment) {
	switch s.kind {
	case kindRequests:
		if s.protocol == "h2c" {
			r.checkH2C(ctx, s, d.proxy)
		}
		if r.o.warmup <= 0 {
			return
		}
		res, err := r.fortio(ctx, s, d.proxy, r.o.warmup, "warmup")
		switch {
		case err != nil:
			r.problem("%s/%s warm-up: %v", s.name, d.proxy, err)
		case res.failures(s.protocol == "grpc") > 0:
			r.problem("%s/%s warm-up: %d of %d calls failed (codes %v)", s.name, d.proxy,
				res.failures(s.protocol == "grpc"), res.DurationHistogram.Count, res.RetCodes)
		case s.protocol != "grpc" && res.Sizes.Avg < float64(r.o.size):
			// Not the same job as the others: a body is missing.
			r.problem("%s/%s warm-up: responses average %.0f bytes, less than the %d B payload", s.name, d.proxy, res.Sizes.Avg, r.o.size)
		}
	case kindBulk:
		if r.o.warmup > 0 {
			if _, err := bulkSend(ctx, hostPort(d.source, portSrcBulk), 1, r.o.warmup/2); err != nil {
				r.problem("bulk/%s warm-up: %v", d.proxy, err)
			}
		}
	}
}

// fortio runs one fortio load of s against proxy for d.
func (r *runner) fortio(ctx context.Context, s scenario, proxy string, d time.Duration, what string) (*fortioResult, error) {
	r.fortioN++
	name := fmt.Sprintf("fortio-%03d-%s-%s-%s", r.fortioN, s.name, proxy, what)
	jsonPath := filepath.Join(r.work, "fortio", name+".json")
	args := fortioArgs(r.o, s, r.o.loadTarget(s, proxy), r.o.rate(s), d, jsonPath)
	return r.runFortio(ctx, name, args, jsonPath)
}

// proxyName is how proxy is shown in the report: a waypoint variant by
// its GOMAXPROCS.
func (r *runner) proxyName(proxy string) string {
	if v, ok := r.o.variant(proxy); ok {
		return v.name(r.unsetProcs)
	}
	return proxy
}

// problem records something that went wrong, for the report's end.
func (r *runner) problem(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	r.problems = append(r.problems, msg)
	fmt.Println("  problem:", firstLine(msg))
}

func firstLine(v any) string {
	s := fmt.Sprint(v)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i] + " ..."
	}
	return s
}
