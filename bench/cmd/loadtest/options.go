package main

import (
	"flag"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
)

// allScenarios and allProxies, in the order they run and are reported.
var (
	allScenarios = []string{"http1", "http1-max", "h2c", "grpc", "hbone-http1", "hbone-grpc", "bulk", "idle"}
	allProxies   = []string{"waypoint", "nginx", "haproxy", "caddy"}
)

// options are the harness's flags.
type options struct {
	scenarios   []string
	proxies     []string
	proxySet    map[string]bool
	rounds      int
	duration    time.Duration
	warmup      time.Duration
	qps         float64
	hboneQPS    float64
	conns       int
	uniform     bool
	size        int
	variants    []variant // the waypoint's -gomaxprocs variants, in the flag's order
	gogc        string
	gomemlimit  string
	bulkStreams []int
	idleStreams int
	quick       bool
	out         string
	binDir      string
	fortio      string
	keep        bool
	logLevel    string
	net         string
}

// Quick mode, for a developer's loop: what -quick sets unless the flag is
// given too.
const (
	quickRounds      = 2
	quickDuration    = 4 * time.Second
	quickWarmup      = time.Second
	quickIdleStreams = 2000
)

func parseOptions(args []string) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("loadtest", flag.ContinueOnError)
	scen := fs.String("scenarios", strings.Join(allScenarios, ","), "comma-separated scenarios to run: "+strings.Join(allScenarios, ", "))
	prox := fs.String("proxies", strings.Join(allProxies, ","), "comma-separated proxies to measure: "+strings.Join(allProxies, ", ")+" (waypoint: each of its -gomaxprocs variants; hbone-* scenarios compare the waypoint with an nginx TLS chain; bulk and idle measure the waypoint alone)")
	fs.IntVar(&o.rounds, "rounds", 3, "rounds; the proxies are interleaved within each round (order reversed every other round) and medians are reported")
	fs.DurationVar(&o.duration, "duration", 5*time.Second, "measured window of each run")
	fs.DurationVar(&o.warmup, "warmup", 2*time.Second, "unmeasured load on each proxy before a scenario's first round")
	fs.Float64Var(&o.qps, "qps", 3000, "fixed request rate of the http1, h2c and grpc scenarios")
	fs.Float64Var(&o.hboneQPS, "hbone-qps", 1000, "fixed request rate of the hbone-http1 and hbone-grpc scenarios")
	fs.IntVar(&o.conns, "c", 16, "client connections (fortio -c)")
	fs.BoolVar(&o.uniform, "uniform", true, "at a fixed rate, spread the connections' requests evenly (fortio -uniform); with false they fire together in bursts, which batches work and lowers every proxy's CPU per request")
	fs.IntVar(&o.size, "size", 1024, "payload bytes: the HTTP response (fortio's echo ?size=) and the gRPC ping payload")
	gmp := fs.String("gomaxprocs", "1,2,unset", fmt.Sprintf("comma-separated GOMAXPROCS values of the waypoint, each measured as a proxy of its own (at most %d): a number, or unset for none in its environment, as in a pod (Go takes the cgroup's CPU limit, else the cores), either with the suffix -fixed for a waypoint run with --scale-procs=false (all its Ps from the start); 1 is one core, as nginx (1 worker) and HAProxy (nbthread 1) are given", maxVariants))
	fs.StringVar(&o.gogc, "gogc", "", "GOGC of the waypoint process (default: unset, Go's default of 100)")
	fs.StringVar(&o.gomemlimit, "gomemlimit", "", "GOMEMLIMIT of the waypoint process (default: unset)")
	bulk := fs.String("bulk-streams", "1,16", "parallel streams of each bulk TCP run")
	fs.IntVar(&o.idleStreams, "idle-streams", 10000, "idle HBONE streams held open by the idle scenario")
	fs.BoolVar(&o.quick, "quick", false, fmt.Sprintf("a developer's quick look: -rounds %d -duration %s -warmup %s -idle-streams %d unless those flags are given", quickRounds, quickDuration, quickWarmup, quickIdleStreams))
	fs.StringVar(&o.out, "out", "", "directory of the result files (default: bench/results in the repository)")
	fs.StringVar(&o.binDir, "bin", "", "directory with prebuilt waypoint and hbone binaries (default: build them from the repository into the work directory)")
	fs.StringVar(&o.fortio, "fortio", "", "fortio binary (default: bin/tools/fortio, installed there when missing)")
	fs.StringVar(&o.logLevel, "log-level", "warn", "--log-level of the waypoint and the hbone stand-ins (their logs stay in the work directory with -keep)")
	fs.BoolVar(&o.keep, "keep", false, "keep the work directory (configs, certificates, process logs, fortio JSON) instead of removing it")
	fs.StringVar(&o.net, "net", "127.0.40", "the /24 of 127.0.0.0/8 the harness puts its pieces in (three octets), so that two harnesses can run side by side")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if o.quick {
		if !set["rounds"] {
			o.rounds = quickRounds
		}
		if !set["duration"] {
			o.duration = quickDuration
		}
		if !set["warmup"] {
			o.warmup = quickWarmup
		}
		if !set["idle-streams"] {
			o.idleStreams = quickIdleStreams
		}
	}
	var err error
	if a, perr := netip.ParseAddr(o.net + ".1"); perr != nil || !a.Is4() || !a.IsLoopback() {
		return nil, fmt.Errorf("-net %q: want three octets of 127.0.0.0/8, such as 127.0.40", o.net)
	}
	if o.scenarios, err = pickList("-scenarios", *scen, allScenarios); err != nil {
		return nil, err
	}
	if o.proxies, err = pickList("-proxies", *prox, allProxies); err != nil {
		return nil, err
	}
	o.proxySet = map[string]bool{}
	for _, p := range o.proxies {
		o.proxySet[p] = true
	}
	if o.variants, err = parseVariants(*gmp); err != nil {
		return nil, err
	}
	for _, f := range strings.Split(*bulk, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || n > 1000 {
			return nil, fmt.Errorf("-bulk-streams: %q is not a stream count from 1 to 1000", f)
		}
		o.bulkStreams = append(o.bulkStreams, n)
	}
	switch {
	case o.rounds < 1:
		return nil, fmt.Errorf("-rounds %d: want at least 1", o.rounds)
	case o.duration < time.Second:
		return nil, fmt.Errorf("-duration %s: want at least 1s (CPU time is read in 10 ms ticks)", o.duration)
	case o.warmup < 0:
		return nil, fmt.Errorf("-warmup %s: want 0 or more", o.warmup)
	case o.qps <= 0 || o.hboneQPS <= 0:
		return nil, fmt.Errorf("-qps and -hbone-qps: want a positive rate (http1-max is the closed-loop run)")
	case o.conns < 1 || o.conns > 1024:
		return nil, fmt.Errorf("-c %d: want 1 to 1024 connections", o.conns)
	case o.size < 0 || o.size > 256*1024:
		return nil, fmt.Errorf("-size %d: want 0 to 262144 bytes (fortio's echo limit)", o.size)
	case o.idleStreams < 1 || o.idleStreams > 100000:
		return nil, fmt.Errorf("-idle-streams %d: want 1 to 100000", o.idleStreams)
	}
	if !o.proxySet["waypoint"] && (slices.Contains(o.scenarios, "bulk") || slices.Contains(o.scenarios, "idle")) {
		return nil, fmt.Errorf("the bulk and idle scenarios measure the waypoint: add it to -proxies or drop them from -scenarios")
	}
	return o, nil
}

// pickList parses a comma-separated subset of all, kept in all's order.
func pickList(flagName, v string, all []string) ([]string, error) {
	want := map[string]bool{}
	for _, f := range strings.Split(v, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if !slices.Contains(all, f) {
			return nil, fmt.Errorf("%s: unknown %q; want some of %s", flagName, f, strings.Join(all, ","))
		}
		want[f] = true
	}
	var out []string
	for _, a := range all {
		if want[a] {
			out = append(out, a)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: empty", flagName)
	}
	return out, nil
}

// usesPlaintext reports whether a plaintext proxy scenario is selected.
func (o *options) usesPlaintext() bool {
	for _, s := range o.scenarios {
		if scenarioByName(s).plaintext {
			return true
		}
	}
	return false
}

// variant is one runtime setting of the waypoint, measured as a proxy of
// its own in every scenario the waypoint takes part in.
type variant struct {
	id         string // the proxy's name in cells, directories and process names: waypoint-1, waypoint-unset
	gomaxprocs int    // 0: unset
	fixed      bool   // --scale-procs=false: every P from the start (the waypoint's default follows the load)
	index      int    // its place in -gomaxprocs, which picks its addresses (topology.go)
}

// maxVariants bounds -gomaxprocs: the addresses of the plan.
const maxVariants = 8

// parseVariants parses -gomaxprocs: positive numbers and unset, each once,
// any of them with the suffix -fixed (the waypoint run with
// --scale-procs=false).
func parseVariants(v string) ([]variant, error) {
	var out []variant
	seen := map[string]bool{}
	for _, f := range strings.Split(v, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		procs, fixed := strings.CutSuffix(f, "-fixed")
		n := 0
		if procs != "unset" {
			var err error
			if n, err = strconv.Atoi(procs); err != nil || n < 1 || n > 1024 {
				return nil, fmt.Errorf("-gomaxprocs: %q is neither a GOMAXPROCS from 1 to 1024 nor unset (either may end in -fixed)", f)
			}
		}
		id := "waypoint-" + procs
		if fixed {
			id += "-fixed"
		}
		if seen[id] {
			return nil, fmt.Errorf("-gomaxprocs: %q given twice", f)
		}
		seen[id] = true
		out = append(out, variant{id: id, gomaxprocs: n, fixed: fixed, index: len(out)})
	}
	switch {
	case len(out) == 0:
		return nil, fmt.Errorf("-gomaxprocs: empty")
	case len(out) > maxVariants:
		return nil, fmt.Errorf("-gomaxprocs: %d values, at most %d", len(out), maxVariants)
	}
	return out, nil
}

// variant returns the waypoint variant named id, or false for another proxy.
func (o *options) variant(id string) (variant, bool) {
	for _, v := range o.variants {
		if v.id == id {
			return v, true
		}
	}
	return variant{}, false
}

// variantWith returns the id of the variant at GOMAXPROCS n (0: unset)
// with the waypoint's default --scale-procs, or "".
func (o *options) variantWith(n int) string {
	for _, v := range o.variants {
		if v.gomaxprocs == n && !v.fixed {
			return v.id
		}
	}
	return ""
}

// isWaypoint reports whether proxy is one of the waypoint's variants.
func isWaypoint(proxy string) bool { return strings.HasPrefix(proxy, "waypoint-") }

// name is how the variant is shown in tables: unset names the GOMAXPROCS
// Go chose (procs; 0 when it is not known).
func (v variant) name(procs int) string {
	fixed := ""
	if v.fixed {
		fixed = ", --scale-procs=false"
	}
	switch {
	case v.gomaxprocs > 0:
		return fmt.Sprintf("waypoint (GOMAXPROCS=%d%s)", v.gomaxprocs, fixed)
	case procs > 0:
		return fmt.Sprintf("waypoint (GOMAXPROCS unset = %d%s)", procs, fixed)
	default:
		return fmt.Sprintf("waypoint (GOMAXPROCS unset%s)", fixed)
	}
}

// flags are v's waypoint flags beyond the harness's own.
func (v variant) flags() []string {
	if v.fixed {
		return []string{"--scale-procs=false"}
	}
	return nil
}

// waypointEnv is the environment v's waypoint runs with: GOMAXPROCS, or
// none at all for unset (a bare name removes it from the harness's
// environment, supervisor.start), and GOGC and GOMEMLIMIT when given.
func (o *options) waypointEnv(v variant) []string {
	env := []string{"GOMAXPROCS"}
	if v.gomaxprocs > 0 {
		env = []string{"GOMAXPROCS=" + strconv.Itoa(v.gomaxprocs)}
	}
	if o.gogc != "" {
		env = append(env, "GOGC="+o.gogc)
	}
	if o.gomemlimit != "" {
		env = append(env, "GOMEMLIMIT="+o.gomemlimit)
	}
	return env
}

// runtimeSettings describes the waypoint's runtime settings for the report.
func (o *options) runtimeSettings() string {
	gogc, limit := o.gogc, o.gomemlimit
	if gogc == "" {
		gogc = "unset (100)"
	}
	if limit == "" {
		limit = "unset"
	}
	var procs []string
	for _, v := range o.variants {
		procs = append(procs, strings.TrimPrefix(v.id, "waypoint-"))
	}
	return fmt.Sprintf("GOMAXPROCS=%s (one waypoint each, measured side by side), GOGC=%s, GOMEMLIMIT=%s", strings.Join(procs, ", "), gogc, limit)
}
