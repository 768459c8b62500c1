package waypointcmd

import (
	"cmp"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	meshconfig "istio.io/api/mesh/v1alpha1"

	"github.com/gowaypoint/waypoint/proxy/listener"
	"github.com/gowaypoint/waypoint/proxy/waypoint"
	"github.com/gowaypoint/waypoint/xds/istiod"
)

// The pod mode: `waypoint proxy waypoint ...` is what istiod's waypoint
// Deployment (manifests/charts/istio-control/istio-discovery/files/
// waypoint.yaml) runs in the container istio-proxy, Envoy's agent
// pilot-agent's command line. The waypoint takes that command line, the
// environment and the mounted files the template gives the pod as the
// defaults of run's flags; run's flags, given after `proxy waypoint`,
// still win. See docs/kubernetes.md.

// The environment of the pod mode that is the waypoint's own, for tests.
const (
	// PodRootEnv, when set, is prefixed to every absolute path the pod
	// mode reads (the token, the root certificate, the pod info files):
	// a pod's files materialised under a directory, for tests.
	PodRootEnv = "WAYPOINT_POD_ROOT"
	// PodBindInstanceIPEnv=true binds the pod's listeners (HBONE 15008,
	// admin 15000, metrics 15020 and 15090, status 15021) to INSTANCE_IP
	// instead of the wildcard address: in a pod both reach the same
	// place; on one loopback a wildcard :15008 would collide with other
	// pods' stand-ins.
	PodBindInstanceIPEnv = "WAYPOINT_BIND_INSTANCE_IP"
)

// The ports of istiod's waypoint Deployment.
const (
	podStatusPort    = 15021 // status-port: /healthz/ready (ENVOY_STATUS_PORT)
	podEnvoyPromPort = 15090 // http-envoy-prom: the same metrics as 15020
	podAdminPort     = 15000 // ProxyConfig.proxyAdminPort
)

// podKubeCAFile is the root of PILOT_CERT_PROVIDER=kubernetes: istiod's
// serving certificate is signed by the cluster's CA.
const podKubeCAFile = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"

// agentFlag is one flag of pilot-agent's `proxy` command (and of Istio's
// logging options, which every Istio command takes).
type agentFlag struct {
	isBool bool
	// use says what the waypoint does with it; "" is ignored.
	use string
}

// agentFlags are the flags of pilot-agent's `proxy` command. Those with
// no use are accepted and ignored (docs/kubernetes.md lists them).
var agentFlags = map[string]agentFlag{
	"domain":                 {use: "--domain"},
	"serviceCluster":         {use: "--service-cluster"},
	"proxyLogLevel":          {use: "--log-level"},
	"concurrency":            {use: "--concurrency"},
	"log_as_json":            {isBool: true, use: "--log-format json"},
	"proxyComponentLogLevel": {},
	"log_output_level":       {},
	"outlierLogPath":         {},
	"meshConfig":             {},
	"stsPort":                {},
	"tokenManagerPlugin":     {},
	"templateFile":           {},
	"profiling":              {isBool: true},
	"log_target":             {},
	"log_stacktrace_level":   {},
	"log_caller":             {},
	"log_rotate":             {},
	"log_rotate_max_age":     {},
	"log_rotate_max_size":    {},
	"log_rotate_max_backups": {},
}

// podArgs are the command line of the pod mode, split: pilot-agent's
// flags (by name, the last of repeated ones), run's flags (to parse with
// run's flag set), and the flags neither knows (ignored, as pilot-agent
// ignores them).
type podArgs struct {
	agent   map[string]string
	run     []string
	unknown []string
}

// splitPodArgs splits the arguments after `proxy waypoint`. A flag is
// -name or --name, its value after = or in the next argument (not for
// boolean flags, nor, for an unknown flag, when the next argument is a
// flag itself).
func splitPodArgs(args []string, fs *flag.FlagSet) (podArgs, error) {
	p := podArgs{agent: map[string]string{}}
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			break
		}
		if !strings.HasPrefix(a, "-") || a == "-" {
			return p, fmt.Errorf("proxy waypoint: unexpected argument %q", a)
		}
		name, val, hasVal := strings.Cut(strings.TrimLeft(a, "-"), "=")
		isBool := func(f *flag.Flag) bool {
			b, ok := f.Value.(interface{ IsBoolFlag() bool })
			return ok && b.IsBoolFlag()
		}
		if af, ok := agentFlags[name]; ok {
			if !hasVal && !af.isBool {
				if i+1 == len(args) {
					return p, fmt.Errorf("proxy waypoint: flag --%s needs a value", name)
				}
				i++
				val = args[i]
			} else if !hasVal {
				val = "true"
			}
			p.agent[name] = val
			continue
		}
		if f := fs.Lookup(name); f != nil {
			p.run = append(p.run, a)
			if !hasVal && !isBool(f) && i+1 < len(args) {
				i++
				p.run = append(p.run, args[i])
			}
			continue
		}
		p.unknown = append(p.unknown, name)
		if !hasVal && i+1 < len(args) && !strings.HasPrefix(args[i+1], "-") {
			i++
		}
	}
	return p, nil
}

// podConfig is what the pod mode reads besides the command line.
type podConfig struct {
	Environ []string // os.Environ's form
}

// podDefaults are the values of run's flags that the pod's command line,
// environment and files give, by flag name, and the environment entries
// the node is described with besides the process's (ProxyConfig's
// proxyMetadata).
type podDefaults struct {
	flags   map[string]string
	nodeEnv []string
}

// proxyLogLevels map Envoy's log levels (pilot-agent's --proxyLogLevel)
// to the waypoint's.
var proxyLogLevels = map[string]string{
	"trace": "debug", "debug": "debug", "info": "info", "warning": "warn", "warn": "warn",
	"error": "error", "critical": "error", "off": "error",
}

// defaults computes the pod mode's defaults from p and the environment.
func (p podArgs) defaults(c podConfig) (podDefaults, error) {
	env := map[string]string{}
	for _, kv := range c.Environ {
		if k, v, ok := strings.Cut(kv, "="); ok {
			if _, dup := env[k]; !dup {
				env[k] = v
			}
		}
	}
	d := podDefaults{flags: map[string]string{}}
	set := func(name, v string) {
		if v != "" {
			d.flags[name] = v
		}
	}
	root := env[PodRootEnv]
	path := func(p string) string {
		if root == "" {
			return p
		}
		return filepath.Join(root, p)
	}

	pc := &meshconfig.ProxyConfig{}
	if s := strings.TrimSpace(env["PROXY_CONFIG"]); s != "" {
		// Fields a newer istiod adds are skipped, not refused: the
		// template renders every field its ProxyConfig has.
		if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal([]byte(s), pc); err != nil {
			return d, fmt.Errorf("PROXY_CONFIG: want the JSON of Istio's ProxyConfig: %v", err)
		}
	}
	discovery := cmp.Or(pc.GetDiscoveryAddress(), istiod.DefaultAddr)
	host, _, err := net.SplitHostPort(discovery)
	if err != nil {
		return d, fmt.Errorf("PROXY_CONFIG: discoveryAddress %q: want host:port", discovery)
	}
	set("xds", discovery)
	set("ca-addr", cmp.Or(env["CA_ADDR"], discovery))
	// Istio's agent checks istiod's certificate for the discovery
	// address's host, or ISTIOD_SAN.
	set("xds-server-name", cmp.Or(env["ISTIOD_SAN"], host))
	switch prov := cmp.Or(env["PILOT_CERT_PROVIDER"], "istiod"); prov {
	case "istiod":
		set("xds-root-cert", path(istiod.DefaultRootCertFile))
	case "kubernetes":
		set("xds-root-cert", path(podKubeCAFile))
	default:
		return d, fmt.Errorf("PILOT_CERT_PROVIDER %q: want istiod or kubernetes", prov)
	}
	set("xds-token-file", path(istiod.DefaultTokenFile))
	set("pod-info-dir", path(istiod.DefaultPodInfoDir))
	if td := pc.GetTerminationDrainDuration(); td != nil {
		if err := td.CheckValid(); err != nil || td.AsDuration() <= 0 {
			return d, fmt.Errorf("PROXY_CONFIG: terminationDrainDuration %v: want a positive duration", td)
		}
		set("drain-timeout", td.AsDuration().String())
		set("drain-delay", td.AsDuration().String())
	} else {
		set("drain-timeout", waypoint.DefaultDrainTimeout.String())
		set("drain-delay", waypoint.DefaultDrainTimeout.String())
	}
	if n := pc.GetConcurrency(); n != nil && n.GetValue() > 0 {
		set("concurrency", strconv.Itoa(int(n.GetValue())))
	}
	for k, v := range pc.GetProxyMetadata() {
		d.nodeEnv = append(d.nodeEnv, k+"="+v)
	}
	slices.Sort(d.nodeEnv)

	// pilot-agent's flags.
	if v, ok := p.agent["domain"]; ok {
		set("domain", expandEnv(v, env))
	}
	if v, ok := p.agent["serviceCluster"]; ok {
		set("service-cluster", expandEnv(v, env))
	}
	if v, ok := p.agent["proxyLogLevel"]; ok {
		// Envoy's level may carry per-logger levels after it:
		// "info,misc:error"; the first level without a logger is the
		// waypoint's.
		level := "warning" // pilot-agent's default
		for _, f := range strings.Split(v, ",") {
			if f = strings.TrimSpace(f); f != "" && !strings.Contains(f, ":") {
				level = f
				break
			}
		}
		l, ok := proxyLogLevels[strings.ToLower(level)]
		if !ok {
			return d, fmt.Errorf("--proxyLogLevel %q: want trace, debug, info, warning, error, critical or off", v)
		}
		set("log-level", l)
	}
	if v, ok := p.agent["concurrency"]; ok {
		set("concurrency", v)
	}
	if v, ok := p.agent["log_as_json"]; ok {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return d, fmt.Errorf("--log_as_json=%q: want true or false", v)
		}
		if b {
			set("log-format", "json")
		}
	}

	// The listeners: the wildcards of the pod's families, or INSTANCE_IP.
	// Their ports are Istio's: Envoy's status port ENVOY_STATUS_PORT
	// (15021, the probes'), Envoy's Prometheus port ENVOY_PROMETHEUS_PORT
	// (15090), the agent's status port ProxyConfig.statusPort (15020, the
	// metrics Prometheus scrapes), Envoy's admin ProxyConfig.proxyAdminPort
	// (15000, on localhost).
	port := func(what string, v int64, def uint16) (uint16, error) {
		if v == 0 {
			return def, nil
		}
		if v < 0 || v > 65535 {
			return 0, fmt.Errorf("%s %d: want a port", what, v)
		}
		return uint16(v), nil
	}
	envPort := func(name string, def uint16) (uint16, error) {
		s := env[name]
		if s == "" {
			return def, nil
		}
		n, err := strconv.ParseUint(s, 10, 16)
		if err != nil || n == 0 {
			return 0, fmt.Errorf("%s=%q: want a port", name, s)
		}
		return uint16(n), nil
	}
	statusPort, err := envPort("ENVOY_STATUS_PORT", podStatusPort)
	if err != nil {
		return d, err
	}
	promPort, err := envPort("ENVOY_PROMETHEUS_PORT", podEnvoyPromPort)
	if err != nil {
		return d, err
	}
	metricsPort, err := port("PROXY_CONFIG: statusPort", int64(pc.GetStatusPort()), waypoint.DefaultMetricsPort)
	if err != nil {
		return d, err
	}
	adminPort, err := port("PROXY_CONFIG: proxyAdminPort", int64(pc.GetProxyAdminPort()), podAdminPort)
	if err != nil {
		return d, err
	}
	var ips []netip.Addr
	for _, s := range strings.Split(cmp.Or(env["INSTANCE_IPS"], env["INSTANCE_IP"]), ",") {
		if a, err := netip.ParseAddr(strings.TrimSpace(s)); err == nil {
			ips = append(ips, a)
		}
	}
	if bind := env[PodBindInstanceIPEnv]; bind != "" {
		b, err := strconv.ParseBool(bind)
		if err != nil {
			return d, fmt.Errorf("%s=%q: want true or false", PodBindInstanceIPEnv, bind)
		}
		if b {
			ip, err := netip.ParseAddr(env["INSTANCE_IP"])
			if err != nil {
				return d, fmt.Errorf("%s: INSTANCE_IP %q: want the pod's IP", PodBindInstanceIPEnv, env["INSTANCE_IP"])
			}
			at := func(port uint16) string { return netip.AddrPortFrom(ip, port).String() }
			set("hbone-addr", at(waypoint.DefaultHBONEPort))
			set("admin-addr", at(adminPort))
			set("metrics-addr", at(metricsPort)+","+at(promPort))
			set("status-addr", at(statusPort))
			return d, nil
		}
	}
	wild := func(port uint16) string { return waypoint.JoinAddrs(waypoint.Wildcards(ips, port)) }
	set("metrics-addr", wild(metricsPort)+","+wild(promPort))
	set("status-addr", wild(statusPort))
	if adminPort != podAdminPort {
		set("admin-addr", netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), adminPort).String())
	}
	return d, nil
}

// expandEnv replaces $(NAME), Kubernetes' reference to a variable of the
// container: the kubelet expands those of args before the process starts;
// a waypoint started otherwise (a test, a container runtime without
// Kubernetes) does it here. An unknown name stays as written, as
// Kubernetes leaves it.
func expandEnv(s string, env map[string]string) string {
	var b strings.Builder
	for {
		i := strings.Index(s, "$(")
		if i < 0 {
			break
		}
		j := strings.IndexByte(s[i:], ')')
		if j < 0 {
			break
		}
		b.WriteString(s[:i])
		if v, ok := env[s[i+2:i+j]]; ok {
			b.WriteString(v)
		} else {
			b.WriteString(s[i : i+j+1])
		}
		s = s[i+j+1:]
	}
	b.WriteString(s)
	return b.String()
}

// proxyCommand runs `waypoint proxy waypoint [flags]`: the pod mode.
func proxyCommand(args []string) error {
	if len(args) == 0 || args[0] != "waypoint" {
		return errors.New("proxy: usage: waypoint proxy waypoint [pilot-agent's flags] [run's flags]; only the waypoint proxy type is served (see docs/kubernetes.md)")
	}
	fs := flag.NewFlagSet("proxy waypoint", flag.ExitOnError)
	r := newRunFlags(fs)
	p, err := splitPodArgs(args[1:], fs)
	if err != nil {
		return err
	}
	fs.Parse(p.run)
	d, err := p.defaults(podConfig{Environ: os.Environ()})
	if err != nil {
		return err
	}
	if err := d.apply(fs); err != nil {
		return err
	}
	r.xdsFlags.extraEnv = d.nodeEnv
	r.unknownFlags = p.unknown
	return r.run(fs)
}

// podExclusive are run's flags that take the place of a pod default: an
// explicit --config stands for the discovery address, --cert-dir for the
// CA.
var podExclusive = map[string]string{"config": "xds", "cert-dir": "ca-addr"}

// apply sets d's values on the flags of fs the command line did not set
// (nor replaced: podExclusive).
func (d podDefaults) apply(fs *flag.FlagSet) error {
	explicit := map[string]bool{}
	fs.Visit(func(f *flag.Flag) {
		explicit[f.Name] = true
		if other, ok := podExclusive[f.Name]; ok {
			explicit[other] = true
		}
	})
	names := make([]string, 0, len(d.flags))
	for name := range d.flags {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		if explicit[name] {
			continue
		}
		if err := fs.Set(name, d.flags[name]); err != nil {
			return fmt.Errorf("proxy waypoint: --%s %q: %v", name, d.flags[name], err)
		}
	}
	return nil
}

// startStatus serves Istio's status port at addrs (comma-separated):
// /healthz/ready answers 200 while ready is true, 503 otherwise. It
// returns the server and its first bound address.
func startStatus(addrs string, ready *atomic.Bool, log *slog.Logger) (*http.Server, net.Addr, error) {
	aps, err := waypoint.ParseAddrs(addrs)
	if err != nil {
		return nil, nil, fmt.Errorf("--status-addr: %w", err)
	}
	lns, err := listener.ListenAll(aps)
	if err != nil {
		return nil, nil, fmt.Errorf("status listener: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz/ready", func(w http.ResponseWriter, _ *http.Request) {
		if ready.Load() {
			w.WriteHeader(http.StatusOK)
			return
		}
		w.WriteHeader(http.StatusServiceUnavailable)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	for _, ln := range lns {
		go func() {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("status server stopped", "error", err)
			}
		}()
	}
	log.Info("status port listening", "addr", addrs)
	return srv, lns[0].Addr(), nil
}
