// Package waypointcmd is the waypoint command, as a package: Main parses
// the command line and runs the command it names, as cmd/waypoint does.
// It is public so that a waypoint with filters of your own needs no fork:
// a custom build is a main package that imports this package and, for
// their init functions, the packages of your filters.
//
//	package main
//
//	import (
//		waypointcmd "github.com/gowaypoint/waypoint/cmd/waypointcmd"
//		_ "example.com/you/yourfilter"
//	)
//
//	func main() { waypointcmd.Main() }
//
// The built-in filters (filters/all) are linked by this package; a filter
// registered by an imported package is found by its name and type URL in
// any config (see docs/filters.md). The commands:
//
//	waypoint run --config FILE --cert-dir DIR    serve an Envoy v3 bootstrap
//	waypoint validate --config FILE              check a bootstrap without serving
//	waypoint certs --out DIR [--trust-domain TD] ns/sa...
//	                                             write a dev mesh CA and identities
//	waypoint demo                                run a whole local mesh on loopback
//	waypoint xds serve --dir DIR --addr ADDR     serve Envoy resources over ADS
//	waypoint proxy waypoint [flags]              the pod mode: what istiod's waypoint
//	                                             Deployment gives Envoy's agent
//	waypoint apply -n NS [--class C] [--image I] write a waypoint Gateway to the API
//	                                             server, as istioctl waypoint apply
//	waypoint generate [-n NS] [flags]            print that Gateway as YAML
package waypointcmd

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"time"

	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/gowaypoint/waypoint/cmd/internal/cli"
	_ "github.com/gowaypoint/waypoint/filters/all" // the built-in HTTP filters
	"github.com/gowaypoint/waypoint/internal/rss"
	"github.com/gowaypoint/waypoint/protocols/dubbo"
	"github.com/gowaypoint/waypoint/protocols/spiffe"
	"github.com/gowaypoint/waypoint/proxy/admin"
	"github.com/gowaypoint/waypoint/proxy/certs"
	"github.com/gowaypoint/waypoint/proxy/certs/istioca"
	"github.com/gowaypoint/waypoint/proxy/localmesh"
	"github.com/gowaypoint/waypoint/proxy/overload"
	"github.com/gowaypoint/waypoint/proxy/procs"
	"github.com/gowaypoint/waypoint/proxy/waypoint"
	"github.com/gowaypoint/waypoint/xds"
	"github.com/gowaypoint/waypoint/xds/istiod"
)

const usage = `usage: waypoint <command> [flags]

commands:
  run       serve an Envoy v3 bootstrap (--config FILE --cert-dir DIR)
  validate  check a bootstrap file without serving (--config FILE)
  certs     write a dev mesh CA and workload identities (--out DIR ns/sa...)
  demo      run a whole local mesh on loopback until Ctrl-C
  xds serve serve Envoy resources from files over ADS (--dir DIR --addr ADDR)
  proxy waypoint
            the pod mode: istiod's waypoint Deployment's command line, env
            and files, as Envoy's agent takes them (docs/kubernetes.md)
  apply     write a waypoint Gateway to the cluster, as istioctl waypoint apply
            (-n NS [--class istio-waypoint|istio-mesh] [--image REF]
            [--enroll-namespace] [--for T] [--wait])
  generate  print that Gateway as YAML, as istioctl waypoint generate

Run 'waypoint <command> -h' for a command's flags.
`

// Main runs the waypoint command named by os.Args[1] with the flags that
// follow, and exits the process when the command fails (status 1) or the
// command line is wrong (status 2). It returns when a command ends
// cleanly, run and demo after SIGTERM or SIGINT.
func Main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	args := os.Args[2:]
	var err error
	switch os.Args[1] {
	case "run":
		err = run(args)
	case "validate":
		err = validate(args)
	case "certs":
		err = writeCerts(args)
	case "demo":
		err = demo(args)
	case "xds":
		err = xdsCommand(args)
	case "proxy":
		err = proxyCommand(args)
	case "apply":
		err = apply(args)
	case "generate":
		err = generate(args, os.Stdout)
	case "-h", "-help", "--help", "help":
		fmt.Print(usage)
		return
	default:
		fmt.Fprintf(os.Stderr, "waypoint: unknown command %q\n\n%s", os.Args[1], usage)
		os.Exit(2)
	}
	if err != nil {
		cli.Fatal(err)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("run", flag.ExitOnError)
	r := newRunFlags(fs)
	fs.Parse(args)
	return r.run(fs)
}

// runFlags are run's flags, registered on a flag set by newRunFlags; the
// pod mode (`waypoint proxy waypoint`, pod.go) registers the same and
// sets its defaults on those the command line leaves unset.
type runFlags struct {
	o                   waypoint.Options
	caAddr, trustDomain *string
	statusAddr          *string
	drainDelay          *time.Duration
	unknownFlags        []string // the pod mode's, ignored as pilot-agent ignores them
	xdsFlags            *adsFlagSet
	stats               *bool
	dubboOnTCP          *bool
	concurrency         *int
	scaleProcs          *bool
	limits              overload.Limits
	logger              func() (*slog.Logger, *slog.LevelVar, error)
}

func newRunFlags(fs *flag.FlagSet) *runFlags {
	r := &runFlags{}
	o := &r.o
	fs.StringVar(&o.ConfigFile, "config", "", "Envoy v3 bootstrap file, YAML or JSON; re-read on SIGHUP and when it changes (one with dynamic_resources takes the config over ADS)")
	fs.StringVar(&o.CertDir, "cert-dir", "", "directory with cert-chain.pem, key.pem and root-cert.pem (or --ca-addr); reloaded when they change")
	r.caAddr = fs.String("ca-addr", "", "get the workload certificate from istiod's CA at this address (e.g. "+istiod.DefaultAddr+") instead of --cert-dir, over the TLS and token of --xds-root-cert, --xds-server-name, --xds-token-file; rotated at half its life")
	r.trustDomain = fs.String("trust-domain", "", "with --ca-addr: the trust domain of the identity asked for, spiffe://TD/ns/--node-namespace/sa/--node-service-account (default $TRUST_DOMAIN, else "+certs.DefaultTrustDomain+")")
	fs.StringVar(&o.HBONEAddr, "hbone-addr", "", "HBONE listen address, or several separated by commas (default: the config's HBONE listener, connect_terminate, with its additional_addresses, else "+waypoint.DefaultHBONEAddr+", [::]:15008 or both, by the families of the node's IPs)")
	r.xdsFlags = adsFlags(fs)
	fs.StringVar(&o.AdminAddr, "admin-addr", "", `admin listen address (default: the bootstrap's admin address, else `+waypoint.DefaultAdminAddr+`; "off" disables it)`)
	fs.StringVar(&o.MetricsAddr, "metrics-addr", "", `Prometheus metrics listen address, or several separated by commas, serving /stats/prometheus (default `+waypoint.DefaultMetricsAddr+`, [::]:15020 or both, by the families of the node's IPs; "off" disables it)`)
	r.statusAddr = fs.String("status-addr", "", `Istio's status port: /healthz/ready answers 200 once the config and the certificate are in, 503 before and from SIGTERM on (listen address, or several separated by commas; default off; the pod mode's is 15021)`)
	r.stats = fs.Bool("stats", true, "record Istio's standard metrics and the Envoy-style counters (false only to measure their cost)")
	fs.StringVar(&o.DNSResolver, "dns-resolver", os.Getenv("WAYPOINT_DNS_RESOLVER"), "name server ip:port of DNS clusters (STRICT_DNS, LOGICAL_DNS) (default $WAYPOINT_DNS_RESOLVER, else the first nameserver of /etc/resolv.conf)")
	fs.DurationVar(&o.DrainTimeout, "drain-timeout", waypoint.DefaultDrainTimeout, "how long SIGTERM waits for streams to finish")
	r.drainDelay = fs.Duration("drain-delay", 0, "after SIGTERM, keep serving and accepting this long, not ready (--status-addr, the admin's /ready), before draining for at most --drain-timeout: the time a pod's clients take to learn it is leaving (the pod mode's default: PROXY_CONFIG's terminationDrainDuration)")
	fs.IntVar(&o.DubboMaxBodyBytes, "dubbo-max-body-bytes", dubbo.DefaultMaxBodyBytes, "largest Dubbo frame body accepted (Dubbo's payload limit)")
	fs.IntVar(&o.DubboMaxInFlight, "dubbo-max-in-flight", dubbo.DefaultMaxInFlight, "Dubbo calls in flight per downstream connection; past it a call is answered 100")
	r.dubboOnTCP = fs.Bool("dubbo-on-tcp", os.Getenv("WAYPOINT_DUBBO_ON_TCP") != "false", "serve per call, as Dubbo, the connections of tcp_proxy chains whose first bytes are Dubbo's (false: L4 only; per cluster: metadata filter_metadata.waypoint.dubbo_on_tcp) (default $WAYPOINT_DUBBO_ON_TCP, else true)")
	fs.Int64Var(&r.limits.MaxDownstreamConnections, "max-downstream-connections", 0, fmt.Sprintf("global limit of downstream connections over all listeners, as the bootstrap's global_downstream_max_connections (0: %d; negative: none); used when the bootstrap has no overload_manager", overload.DefaultMaxDownstreamConnections))
	fs.Uint64Var(&r.limits.MaxHeapBytes, "max-heap-bytes", 0, fmt.Sprintf("the overload manager's memory limit in bytes, as fixed_heap's max_heap_size_bytes (0: GOMEMLIMIT, else %.0f%% of the container's memory limit); keep-alive is disabled from 85%%, the biggest streams reset from 90%%, requests and connections refused at 95%% (docs/hardening.md); used when the bootstrap has no overload_manager", 100*overload.DefaultCgroupShare))
	r.concurrency = fs.Int("concurrency", 0, "worker threads (GOMAXPROCS), as Envoy's --concurrency; 0 keeps Go's default: the container's CPU limit, else the cores")
	r.scaleProcs = fs.Bool("scale-procs", true, "run on as many of the --concurrency Ps (GOMAXPROCS) as the load needs, from one up, so that an idle core costs no CPU per request (false: all of them always)")
	r.logger = cli.LogFlagsLevel(fs)
	return r
}

// run starts the waypoint of the parsed flags and serves until SIGTERM.
func (r *runFlags) run(fs *flag.FlagSet) error {
	o, caAddr, trustDomain, xdsFlags, concurrency := &r.o, r.caAddr, r.trustDomain, r.xdsFlags, r.concurrency
	o.NoStats = !*r.stats
	o.Overload = overload.Synthesise(r.limits, debug.SetMemoryLimit(-1), overload.CgroupMemoryMax())
	if v := os.Getenv("WAYPOINT_DUBBO_ON_TCP"); v != "" && v != "true" && v != "false" {
		return fmt.Errorf("WAYPOINT_DUBBO_ON_TCP=%q: want true or false", v)
	}
	o.NoDubboOnTCP = !*r.dubboOnTCP
	if *concurrency < 0 {
		return fmt.Errorf("run: --concurrency %d: want 0 or more", *concurrency)
	}
	if *concurrency > 0 {
		runtime.GOMAXPROCS(*concurrency)
	}
	ceiling := runtime.GOMAXPROCS(0)
	if *r.scaleProcs {
		stopScaling := runScaler(procs.New(ceiling, procs.Options{}))
		defer stopScaling()
	}
	if *trustDomain == "" {
		*trustDomain = cmp.Or(os.Getenv("TRUST_DOMAIN"), certs.DefaultTrustDomain)
	}
	if (o.ConfigFile == "") == (*xdsFlags.addr == "") || (o.CertDir == "") == (*caAddr == "") {
		return fmt.Errorf("run: one of --cert-dir or --ca-addr, and one of --config or --xds, are required")
	}
	log, level, err := r.logger()
	if err != nil {
		return err
	}
	o.Logger = log
	if len(r.unknownFlags) > 0 {
		log.Warn("flags unknown to pilot-agent and the waypoint, ignored", "flags", r.unknownFlags)
	}
	o.Loggers = admin.NewLoggers(map[string]*slog.LevelVar{"waypoint": level})
	o.CommandLine = &adminv3.CommandLineOptions{Concurrency: uint32(ceiling), LogLevel: admin.LevelName(level.Level()),
		LogFormat: logFormat(fs), DrainTime: durationpb.New(o.DrainTimeout)}
	node, err := xdsFlags.nodeConfig()
	if err != nil {
		return fmt.Errorf("run: %w", err)
	}
	o.Node = node.Node()
	for _, ip := range strings.Split(node.InstanceIPs(), ",") {
		if a, err := netip.ParseAddr(ip); err == nil {
			o.PodIPs = append(o.PodIPs, a)
		}
	}
	if o.MetricsAddr == "" {
		o.MetricsAddr = waypoint.JoinAddrs(waypoint.Wildcards(o.PodIPs, waypoint.DefaultMetricsPort))
	}
	if *xdsFlags.addr != "" {
		log.Info("xds node", "id", o.Node.GetId(), "cluster", o.Node.GetCluster(), "istio_version", node.IstioVersion,
			"gateway", node.Labels["gateway.networking.k8s.io/gateway-name"])
	}
	o.XDSTokenFile = *xdsFlags.token
	// Signals from here on: a SIGTERM while the waypoint still waits for its
	// certificate or first config ends it at once, with status 0.
	var current atomic.Pointer[waypoint.Waypoint]
	ctx := cli.Signals(context.Background(), func() {
		if w := current.Load(); w != nil {
			w.Reload()
		}
	})
	var ready atomic.Bool
	if *r.statusAddr != "" && *r.statusAddr != "off" {
		status, _, err := startStatus(*r.statusAddr, &ready, log)
		if err != nil {
			return err
		}
		defer status.Close()
	}
	if *caAddr != "" {
		ca, err := untilSignal(ctx, func() (*istioca.Client, error) { return xdsFlags.startCA(*caAddr, *trustDomain, node, log) })
		if errors.Is(err, errStopped) {
			log.Info("stopped while waiting for the workload certificate")
			return nil
		}
		if err != nil {
			return err
		}
		defer ca.Close()
		o.Certs = ca.Source()
	}
	if *xdsFlags.addr != "" {
		ads, closeConn, err := xdsFlags.options(o.Node)
		if err != nil {
			return err
		}
		defer closeConn()
		o.ADS = ads
	}
	w, err := untilSignal(ctx, func() (*waypoint.Waypoint, error) { return waypoint.Start(*o) })
	if errors.Is(err, errStopped) {
		log.Info("stopped before the first config was in force")
		return nil
	}
	if err != nil {
		return err
	}
	current.Store(w)
	ready.Store(true)
	rss.TrimBinary()
	select {
	case <-ctx.Done():
		ready.Store(false) // the status port answers 503 from now on
		if d := *r.drainDelay; d > 0 {
			w.MarkDraining()
			log.Info("not ready; serving on before draining", "drain_delay", d)
			time.Sleep(d)
		}
	case <-w.QuitRequested():
		log.Info("exit asked for by the admin's /quitquitquit")
	}
	ready.Store(false) // the status port answers 503 from now on, while the streams drain
	if err := w.Shutdown(context.Background()); err != nil {
		log.Warn("drain timeout passed; remaining streams were closed", "error", err)
	}
	log.Info("waypoint stopped")
	return nil
}

// runScaler runs s until the returned stop is called; stop returns once
// s has given the process all its Ps back.
func runScaler(s *procs.Scaler) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); s.Run(ctx) }()
	return func() { cancel(); <-done }
}

// logFormat is the value of the --log-format flag.
func logFormat(fs *flag.FlagSet) string {
	if f := fs.Lookup("log-format"); f != nil {
		return f.Value.String()
	}
	return ""
}

func validate(args []string) error {
	fs := flag.NewFlagSet("validate", flag.ExitOnError)
	config := fs.String("config", "", "Envoy v3 bootstrap file, YAML or JSON (required)")
	fs.Parse(args)
	if *config == "" {
		return fmt.Errorf("validate: --config is required")
	}
	bs, err := xds.LoadBootstrapFile(*config)
	if err != nil {
		return err
	}
	if d := bs.Dynamic; d != nil {
		fmt.Printf("%s: valid (dynamic resources over ADS from cluster %q at %s, tls %v, delta %v)\n", *config,
			d.ControlPlane.Cluster, d.ControlPlane.Target, d.ControlPlane.TLS != nil, d.Delta)
		return nil
	}
	fmt.Printf("%s: valid (%d listeners, %d clusters)\n", *config, len(bs.Snapshot.Listeners), len(bs.Snapshot.Clusters))
	return nil
}

func writeCerts(args []string) error {
	fs := flag.NewFlagSet("certs", flag.ExitOnError)
	out := fs.String("out", "", "output directory (required); an existing CA there is reused")
	td := fs.String("trust-domain", certs.DefaultTrustDomain, "trust domain of the identities")
	validity := fs.Duration("validity", certs.DefaultLeafValidity, "lifetime of each workload certificate")
	servers := fs.String("server", "", "comma-separated DNS names (e.g. istiod.istio-system.svc) to write a serving certificate for, in DIR/servers/NAME")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: waypoint certs --out DIR [--trust-domain TD] ns/sa [ns/sa ...]")
		fs.PrintDefaults()
	}
	fs.Parse(args)
	var serverNames []string
	if *servers != "" {
		serverNames = strings.Split(*servers, ",")
	}
	if *out == "" || (fs.NArg() == 0 && len(serverNames) == 0) {
		fs.Usage()
		return fmt.Errorf("certs: --out and at least one ns/sa are required")
	}
	var ids []spiffe.ID
	for _, a := range fs.Args() {
		ns, sa, err := certs.ParseNamespacedSA(a)
		if err != nil {
			return err
		}
		ids = append(ids, spiffe.ID{TrustDomain: *td, Namespace: ns, ServiceAccount: sa})
	}
	if err := certs.WriteMesh(certs.MeshOptions{Dir: *out, TrustDomain: *td, IDs: ids, LeafValidity: *validity, ServerNames: serverNames}); err != nil {
		return err
	}
	for _, id := range ids {
		fmt.Printf("%s -> %s\n", id, certs.IdentityDir(*out, id))
	}
	for _, n := range serverNames {
		fmt.Printf("%s -> %s\n", n, certs.ServerDir(*out, n))
	}
	return nil
}

func demo(args []string) error {
	fs := flag.NewFlagSet("demo", flag.ExitOnError)
	dir := fs.String("dir", "", "directory for the demo's certificates and config (default: a temporary one)")
	logger := cli.LogFlags(fs)
	fs.Parse(args)
	log, err := logger()
	if err != nil {
		return err
	}
	ctx := cli.Signals(context.Background(), nil)
	return localmesh.Run(ctx, localmesh.Options{Dir: *dir, Logger: log, Out: os.Stdout, DrainTimeout: 2 * time.Second})
}

// errStopped is untilSignal's error when the signal came first.
var errStopped = errors.New("stopped by a signal")

// untilSignal runs start, which may wait long (for a certificate, for the
// first config), and returns its result, or errStopped as soon as ctx (the
// signals') ends first: the process is then on its way out, and start's
// goroutine ends with it.
func untilSignal[T any](ctx context.Context, start func() (T, error)) (T, error) {
	type result struct {
		v   T
		err error
	}
	done := make(chan result, 1)
	go func() {
		v, err := start()
		done <- result{v, err}
	}()
	select {
	case r := <-done:
		return r.v, r.err
	case <-ctx.Done():
		var zero T
		return zero, errStopped
	}
}
