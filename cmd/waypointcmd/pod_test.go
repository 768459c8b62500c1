package waypointcmd

import (
	"flag"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
)

// templateArgs are the args of istiod's waypoint Deployment, as the
// pinned Istio's waypoint.yaml renders them (the kubelet has not expanded
// $(POD_NAMESPACE)).
var templateArgs = []string{"waypoint", "--domain", "$(POD_NAMESPACE).svc.cluster.local", "--serviceCluster", "waypoint.$(POD_NAMESPACE)",
	"--proxyLogLevel", "warning", "--proxyComponentLogLevel", "misc:error", "--log_output_level", "default:info"}

// templateEnv is the environment the template gives, the downward API's
// values filled in.
var templateEnv = []string{"POD_NAME=waypoint-7d9f", "POD_NAMESPACE=ns1", "INSTANCE_IP=10.244.0.5", "SERVICE_ACCOUNT=waypoint",
	"HOST_IP=172.18.0.2", "ISTIO_META_SERVICE_ACCOUNT=waypoint", "ISTIO_META_NODE_NAME=node-1", "PILOT_CERT_PROVIDER=istiod",
	"CA_ADDR=istiod.istio-system.svc:15012", "ISTIO_CPU_LIMIT=2", "GOMEMLIMIT=1073741824", "GOMAXPROCS=2",
	"ISTIO_META_CLUSTER_ID=Kubernetes", "ISTIO_META_INTERCEPTION_MODE=REDIRECT", "ISTIO_META_WORKLOAD_NAME=waypoint",
	"ISTIO_META_OWNER=kubernetes://apis/apps/v1/namespaces/ns1/deployments/waypoint", "ISTIO_META_MESH_ID=cluster.local",
	"TRUST_DOMAIN=cluster.local",
	`PROXY_CONFIG={"configPath":"./etc/istio/proxy","binaryPath":"/usr/local/bin/envoy","serviceCluster":"istio-proxy","drainDuration":"45s","discoveryAddress":"istiod.istio-system.svc:15012","proxyAdminPort":15000,"controlPlaneAuthPolicy":"MUTUAL_TLS","statNameLength":189,"statusPort":15020,"terminationDrainDuration":"5s","proxyMetadata":{"DNS_AGENT":""},"holdApplicationUntilProxyStarts":false}`,
}

func newPodFlags() (*flag.FlagSet, *runFlags) {
	fs := flag.NewFlagSet("proxy waypoint", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return fs, newRunFlags(fs)
}

func withEnv(base []string, kv ...string) []string {
	return append(slices.Clone(kv), base...) // the first of a name counts
}

func TestPodArgs(t *testing.T) {
	for _, tc := range []struct {
		name        string
		args        []string
		wantAgent   map[string]string
		wantRun     []string
		wantUnknown []string
		wantErr     string
	}{
		{name: "template", args: append(templateArgs[1:], "--log_as_json", "--outlierLogPath=/dev/stdout"),
			wantAgent: map[string]string{"domain": "$(POD_NAMESPACE).svc.cluster.local", "serviceCluster": "waypoint.$(POD_NAMESPACE)",
				"proxyLogLevel": "warning", "proxyComponentLogLevel": "misc:error", "log_output_level": "default:info",
				"log_as_json": "true", "outlierLogPath": "/dev/stdout"}},
		{name: "single dash and =", args: []string{"-proxyLogLevel=debug", "-profiling=false"},
			wantAgent: map[string]string{"proxyLogLevel": "debug", "profiling": "false"}},
		{name: "run's flags pass through", args: []string{"--domain", "d", "--xds", "127.0.0.1:15010", "--stats=false", "--drain-timeout", "2s"},
			wantAgent: map[string]string{"domain": "d"}, wantRun: []string{"--xds", "127.0.0.1:15010", "--stats=false", "--drain-timeout", "2s"}},
		{name: "unknown flags ignored", args: []string{"--futureFlag", "x", "--futureBool", "--other=1", "--proxyLogLevel", "info"},
			wantAgent: map[string]string{"proxyLogLevel": "info"}, wantUnknown: []string{"futureFlag", "futureBool", "other"}},
		{name: "missing value", args: []string{"--domain"}, wantErr: "--domain needs a value"},
		{name: "positional", args: []string{"extra"}, wantErr: `unexpected argument "extra"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs, _ := newPodFlags()
			p, err := splitPodArgs(tc.args, fs)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one with %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.wantAgent == nil {
				tc.wantAgent = map[string]string{}
			}
			if !maps.Equal(p.agent, tc.wantAgent) || !slices.Equal(p.run, tc.wantRun) || !slices.Equal(p.unknown, tc.wantUnknown) {
				t.Errorf("got agent %v run %q unknown %q\nwant agent %v run %q unknown %q", p.agent, p.run, p.unknown,
					tc.wantAgent, tc.wantRun, tc.wantUnknown)
			}
		})
	}
}

func TestPodDefaults(t *testing.T) {
	// base are the defaults of the template's command line and env.
	base := map[string]string{
		"xds": "istiod.istio-system.svc:15012", "ca-addr": "istiod.istio-system.svc:15012", "xds-server-name": "istiod.istio-system.svc",
		"xds-root-cert": "/var/run/secrets/istio/root-cert.pem", "xds-token-file": "/var/run/secrets/tokens/istio-token",
		"pod-info-dir": "/etc/istio/pod", "drain-timeout": "5s", "drain-delay": "5s", "domain": "ns1.svc.cluster.local", "service-cluster": "waypoint.ns1",
		"log-level": "warn", "metrics-addr": "0.0.0.0:15020,0.0.0.0:15090", "status-addr": "0.0.0.0:15021",
	}
	with := func(kv ...string) map[string]string {
		m := maps.Clone(base)
		for i := 0; i < len(kv); i += 2 {
			if kv[i+1] == "" {
				delete(m, kv[i])
			} else {
				m[kv[i]] = kv[i+1]
			}
		}
		return m
	}
	for _, tc := range []struct {
		name     string
		args     []string
		env      []string
		want     map[string]string
		wantNode []string
		wantErr  string
	}{
		{name: "template", args: templateArgs, env: templateEnv, want: base, wantNode: []string{"DNS_AGENT="}},
		{name: "no PROXY_CONFIG", args: templateArgs, env: withEnv(templateEnv, "PROXY_CONFIG="), want: base},
		{name: "ports moved", args: templateArgs,
			env:  withEnv(templateEnv, `PROXY_CONFIG={"statusPort":16020,"proxyAdminPort":16000}`, "ENVOY_STATUS_PORT=16021", "ENVOY_PROMETHEUS_PORT=16090"),
			want: with("metrics-addr", "0.0.0.0:16020,0.0.0.0:16090", "status-addr", "0.0.0.0:16021", "admin-addr", "127.0.0.1:16000")},
		{name: "bad port", args: templateArgs, env: withEnv(templateEnv, "ENVOY_STATUS_PORT=x"), wantErr: `ENVOY_STATUS_PORT="x": want a port`},
		{name: "discovery address, CA, SAN", args: templateArgs,
			env:  withEnv(templateEnv, `PROXY_CONFIG={"discoveryAddress":"127.33.1.2:15012","terminationDrainDuration":"2.5s","concurrency":3}`, "CA_ADDR=", "ISTIOD_SAN=istiod.istio-system.svc"),
			want: with("xds", "127.33.1.2:15012", "ca-addr", "127.33.1.2:15012", "drain-timeout", "2.5s", "drain-delay", "2.5s", "concurrency", "3")},
		{name: "relocated root and bound to INSTANCE_IP", args: append(slices.Clone(templateArgs), "--log_as_json", "--proxyLogLevel", "debug,misc:error"),
			env: withEnv(templateEnv, "WAYPOINT_POD_ROOT=/tmp/pod", "WAYPOINT_BIND_INSTANCE_IP=true", "PROXY_CONFIG={}"),
			want: with("xds-root-cert", "/tmp/pod/var/run/secrets/istio/root-cert.pem", "xds-token-file", "/tmp/pod/var/run/secrets/tokens/istio-token",
				"pod-info-dir", "/tmp/pod/etc/istio/pod", "log-format", "json", "log-level", "debug",
				"hbone-addr", "10.244.0.5:15008", "admin-addr", "10.244.0.5:15000", "metrics-addr", "10.244.0.5:15020,10.244.0.5:15090",
				"status-addr", "10.244.0.5:15021")},
		{name: "dual stack wildcards", args: templateArgs, env: withEnv(templateEnv, "INSTANCE_IPS=fd00::5,10.244.0.5", "PROXY_CONFIG={}"),
			want: with("metrics-addr", "[::]:15020,0.0.0.0:15020,[::]:15090,0.0.0.0:15090", "status-addr", "[::]:15021,0.0.0.0:15021")},
		{name: "kubernetes cert provider", args: templateArgs, env: withEnv(templateEnv, "PILOT_CERT_PROVIDER=kubernetes"),
			want: with("xds-root-cert", "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"), wantNode: []string{"DNS_AGENT="}},
		{name: "bad PROXY_CONFIG", args: templateArgs, env: withEnv(templateEnv, "PROXY_CONFIG={discoveryAddress: x"), wantErr: "PROXY_CONFIG: want the JSON of Istio's ProxyConfig"},
		{name: "PROXY_CONFIG of a wrong type", args: templateArgs, env: withEnv(templateEnv, `PROXY_CONFIG={"drainDuration":5}`), wantErr: "PROXY_CONFIG"},
		{name: "bad discovery address", args: templateArgs, env: withEnv(templateEnv, `PROXY_CONFIG={"discoveryAddress":"istiod"}`), wantErr: `discoveryAddress "istiod"`},
		{name: "negative drain", args: templateArgs, env: withEnv(templateEnv, `PROXY_CONFIG={"terminationDrainDuration":"-1s"}`), wantErr: "terminationDrainDuration"},
		{name: "unknown cert provider", args: templateArgs, env: withEnv(templateEnv, "PILOT_CERT_PROVIDER=custom"), wantErr: `PILOT_CERT_PROVIDER "custom"`},
		{name: "bad log level", args: []string{"waypoint", "--proxyLogLevel", "loud"}, env: templateEnv, wantErr: `--proxyLogLevel "loud"`},
		{name: "bad bind", args: templateArgs, env: withEnv(templateEnv, "WAYPOINT_BIND_INSTANCE_IP=yes please"), wantErr: "WAYPOINT_BIND_INSTANCE_IP"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs, _ := newPodFlags()
			p, err := splitPodArgs(tc.args[1:], fs)
			if err != nil {
				t.Fatal(err)
			}
			d, err := p.defaults(podConfig{Environ: tc.env})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one with %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !maps.Equal(d.flags, tc.want) {
				for k := range mapsUnion(d.flags, tc.want) {
					if d.flags[k] != tc.want[k] {
						t.Errorf("--%s: got %q, want %q", k, d.flags[k], tc.want[k])
					}
				}
			}
			if !slices.Equal(d.nodeEnv, tc.wantNode) {
				t.Errorf("node env %q, want %q", d.nodeEnv, tc.wantNode)
			}
			// Every default names a flag of run's, with a value it takes.
			fs2, _ := newPodFlags()
			if err := d.apply(fs2); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func mapsUnion(a, b map[string]string) map[string]bool {
	m := map[string]bool{}
	for k := range a {
		m[k] = true
	}
	for k := range b {
		m[k] = true
	}
	return m
}

// Explicit flags win over the pod's defaults.
func TestPodExplicitFlagsWin(t *testing.T) {
	fs, r := newPodFlags()
	p, err := splitPodArgs([]string{"--domain", "x", "--xds", "127.0.0.1:15010", "--drain-timeout", "9s"}, fs)
	if err != nil {
		t.Fatal(err)
	}
	if err := fs.Parse(p.run); err != nil {
		t.Fatal(err)
	}
	d, err := p.defaults(podConfig{Environ: templateEnv})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.apply(fs); err != nil {
		t.Fatal(err)
	}
	if *r.xdsFlags.addr != "127.0.0.1:15010" || r.o.DrainTimeout.String() != "9s" || *r.xdsFlags.domain != "x" || *r.caAddr != "istiod.istio-system.svc:15012" {
		t.Errorf("xds %q drain %v domain %q ca %q", *r.xdsFlags.addr, r.o.DrainTimeout, *r.xdsFlags.domain, *r.caAddr)
	}
}

// An explicit --config or --cert-dir replaces the pod's discovery
// address or CA.
func TestPodExclusiveFlags(t *testing.T) {
	fs, r := newPodFlags()
	p, err := splitPodArgs([]string{"--config", "/etc/waypoint.yaml", "--cert-dir", "/certs"}, fs)
	if err != nil {
		t.Fatal(err)
	}
	if err := fs.Parse(p.run); err != nil {
		t.Fatal(err)
	}
	d, err := p.defaults(podConfig{Environ: templateEnv})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.apply(fs); err != nil {
		t.Fatal(err)
	}
	if *r.xdsFlags.addr != "" || *r.caAddr != "" || r.o.ConfigFile != "/etc/waypoint.yaml" || r.o.CertDir != "/certs" {
		t.Errorf("xds %q ca %q config %q cert dir %q", *r.xdsFlags.addr, *r.caAddr, r.o.ConfigFile, r.o.CertDir)
	}
}

func TestExpandEnv(t *testing.T) {
	env := map[string]string{"POD_NAMESPACE": "ns1", "A": "a"}
	for in, want := range map[string]string{
		"$(POD_NAMESPACE).svc.cluster.local": "ns1.svc.cluster.local",
		"$(A)$(A).$(B)":                      "aa.$(B)",
		"plain":                              "plain",
		"$(open":                             "$(open",
	} {
		if got := expandEnv(in, env); got != want {
			t.Errorf("expandEnv(%q) = %q, want %q", in, got, want)
		}
	}
}

// The status port answers 503 until ready, 200 while ready, 503 again
// once not.
func TestStatusReady(t *testing.T) {
	var ready atomic.Bool
	srv, addr, err := startStatus("127.0.0.1:0", &ready, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	get := func() int {
		resp, err := http.Get("http://" + addr.String() + "/healthz/ready")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, step := range []struct {
		ready bool
		want  int
	}{{false, 503}, {true, 200}, {false, 503}} {
		ready.Store(step.ready)
		if got := get(); got != step.want {
			t.Errorf("ready %v: %d, want %d", step.ready, got, step.want)
		}
	}
}
