package waypointcmd

import (
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/gowaypoint/waypoint/cmd/internal/cli"
	"github.com/gowaypoint/waypoint/protocols/spiffe"
	"github.com/gowaypoint/waypoint/proxy/certs"
	"github.com/gowaypoint/waypoint/proxy/certs/istioca"
	"github.com/gowaypoint/waypoint/proxy/waypoint"
	"github.com/gowaypoint/waypoint/xds"
	"github.com/gowaypoint/waypoint/xds/adsclient"
	"github.com/gowaypoint/waypoint/xds/istiod"
	"github.com/gowaypoint/waypoint/xds/xdsserver"
)

// adsFlagSet are run's xDS flags, and those of the node it describes
// itself with (istiod.BuildNode reads the rest from the environment and
// the pod's downward API files).
type adsFlagSet struct {
	addr, ip, pod, ns, sa, cluster *string
	domain, serviceCluster         *string
	istioVersion, podInfoDir       *string
	ips                            *string
	labels                         labelFlags
	rootCert, serverName, token    *string
	delta                          *bool
	// extraEnv is read after the process's environment when the node is
	// built (the pod mode's ProxyConfig proxyMetadata, as Istio's agent
	// reads it).
	extraEnv []string
}

// nodeDefaults name the waypoint when neither a flag nor the environment
// does (outside Kubernetes: the demo's waypoint, tests).
var nodeDefaults = istiod.NodeFlags{IP: "127.0.0.5", PodName: "waypoint", Namespace: "default", ServiceAccount: "waypoint",
	ClusterID: "Kubernetes"}

func adsFlags(fs *flag.FlagSet) *adsFlagSet {
	f := &adsFlagSet{
		addr:           fs.String("xds", "", "xDS server (ADS over gRPC) to take the config from, instead of --config; e.g. "+istiod.DefaultAddr),
		delta:          fs.Bool("xds-delta", false, "use incremental (delta) ADS"),
		rootCert:       fs.String("xds-root-cert", "", "with --xds: talk TLS to the xDS server, verified against this root (istiod's: "+istiod.DefaultRootCertFile+"); plaintext when empty"),
		serverName:     fs.String("xds-server-name", istiod.DefaultServerName, "with --xds-root-cert: the name the xDS server's certificate is checked against"),
		token:          fs.String("xds-token-file", "", "service account token sent to the xDS server on every call, over TLS only (istiod's: "+istiod.DefaultTokenFile+")"),
		ip:             fs.String("node-ip", "", "the waypoint's IP in its node id and INSTANCE_IPS (default $INSTANCE_IP, else "+nodeDefaults.IP+")"),
		ips:            fs.String("node-ips", "", "the pod's IPs, comma-separated, in INSTANCE_IPS after --node-ip (default $INSTANCE_IPS, e.g. the downward API's status.podIPs); their families choose the default listen wildcards: 0.0.0.0, [::] or both"),
		pod:            fs.String("node-pod", "", "the pod name in the node id and NAME (default $POD_NAME, else "+nodeDefaults.PodName+")"),
		ns:             fs.String("node-namespace", "", "the namespace in the node id and NAMESPACE (default $POD_NAMESPACE, else "+nodeDefaults.Namespace+")"),
		sa:             fs.String("node-service-account", "", "SERVICE_ACCOUNT node metadata (default $SERVICE_ACCOUNT, else "+nodeDefaults.ServiceAccount+")"),
		cluster:        fs.String("node-cluster-id", "", "CLUSTER_ID node metadata (default $ISTIO_META_CLUSTER_ID, else "+nodeDefaults.ClusterID+")"),
		domain:         fs.String("domain", "", "the DNS domain in the node id, as pilot-agent's --domain (default <namespace>.svc.cluster.local)"),
		serviceCluster: fs.String("service-cluster", "", "node.cluster, as pilot-agent's --serviceCluster (default <service account>.<namespace>, as istiod's waypoint Deployment sets it)"),
		istioVersion:   fs.String("istio-version", "", "ISTIO_VERSION node metadata (default $ISTIO_META_ISTIO_VERSION, else the version of the istio.io/api module the binary was built with)"),
		podInfoDir:     fs.String("pod-info-dir", istiod.DefaultPodInfoDir, "directory of the pod's downward API files labels and annotations (LABELS and ANNOTATIONS node metadata); a missing one is skipped"),
	}
	fs.Var(&f.labels, "node-label", "a LABELS node metadata entry k=v, over the pod's labels (repeatable; e.g. gateway.networking.k8s.io/gateway-name=NAME outside Kubernetes)")
	return f
}

// labelFlags are repeated k=v flags.
type labelFlags map[string]string

func (l *labelFlags) String() string {
	if l == nil || len(*l) == 0 {
		return ""
	}
	kv := make([]string, 0, len(*l))
	for k, v := range *l {
		kv = append(kv, k+"="+v)
	}
	sort.Strings(kv)
	return strings.Join(kv, ",")
}

func (l *labelFlags) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return fmt.Errorf("want k=v, got %q", s)
	}
	if *l == nil {
		*l = labelFlags{}
	}
	(*l)[k] = v
	return nil
}

// nodeConfig is the waypoint's node: the flags over the environment and
// the pod's files, as Istio's agent reads them.
func (f *adsFlagSet) nodeConfig() (adsclient.NodeConfig, error) {
	return istiod.BuildNode(istiod.NodeSource{
		Flags: istiod.NodeFlags{IP: *f.ip, IPs: *f.ips, PodName: *f.pod, Namespace: *f.ns, ServiceAccount: *f.sa, ClusterID: *f.cluster,
			DNSDomain: *f.domain, ServiceCluster: *f.serviceCluster, IstioVersion: *f.istioVersion, Labels: f.labels},
		Defaults:   nodeDefaults,
		Environ:    append(os.Environ(), f.extraEnv...),
		PodInfoDir: *f.podInfoDir,
	})
}

// controlPlane is the control plane at addr with the flags' TLS.
func (f *adsFlagSet) controlPlane(addr string) xds.ControlPlane {
	cp := xds.ControlPlane{Target: addr}
	if *f.rootCert != "" {
		cp.TLS = &xds.ControlPlaneTLS{RootCAFile: *f.rootCert, ServerName: *f.serverName}
	}
	return cp
}

// startCA gets the first workload certificate from the CA at addr (for at
// most a minute) and keeps it fresh.
func (f *adsFlagSet) startCA(addr, trustDomain string, node adsclient.NodeConfig, log *slog.Logger) (*istioca.Client, error) {
	conn, err := istiod.Dial(istiod.DialConfig{ControlPlane: f.controlPlane(addr), TokenFile: *f.token})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	id := spiffe.ID{TrustDomain: trustDomain, Namespace: node.Namespace, ServiceAccount: node.ServiceAccount}
	c, err := istioca.Start(ctx, istioca.ClientConfig{Conn: conn, ID: id, ClusterID: node.ClusterID, Logger: log})
	if err != nil {
		conn.Close()
		return nil, err
	}
	return c, nil
}

// options are the ADS options of --xds, with node.
func (f *adsFlagSet) options(node *corev3.Node) (*waypoint.ADSOptions, func(), error) {
	conn, err := istiod.Dial(istiod.DialConfig{ControlPlane: f.controlPlane(*f.addr), TokenFile: *f.token})
	if err != nil {
		return nil, nil, err
	}
	return &waypoint.ADSOptions{Client: adsclient.Config{Conn: conn, Node: node, Delta: *f.delta}}, func() { conn.Close() }, nil
}

// xdsCommand runs `waypoint xds serve`.
func xdsCommand(args []string) error {
	if len(args) == 0 || args[0] != "serve" {
		return fmt.Errorf("xds: usage: waypoint xds serve --dir DIR [--addr 127.0.0.1:15010]")
	}
	fs := flag.NewFlagSet("xds serve", flag.ExitOnError)
	dir := fs.String("dir", "", "directory of listeners.json, clusters.json, endpoints.json, routes.json (required); re-read when they change")
	addr := fs.String("addr", "127.0.0.1:15010", "gRPC listen address")
	poll := fs.Duration("poll", xdsserver.DefaultPollInterval, "how often the directory is checked for changes")
	tlsDir := fs.String("tls-cert-dir", "", "serve TLS with DIR/cert-chain.pem and DIR/key.pem (istiod's serving certificate); plaintext when empty")
	tokens := fs.String("tokens", "", `with --tls-cert-dir: refuse calls without a bearer token listed in this file ("TOKEN ns/sa" per line), as istiod checks service account tokens`)
	caDir := fs.String("ca-dir", "", "with --tokens: serve istiod's CA (IstioCertificateService) signing with the dev mesh CA in DIR (root-cert.pem, root-key.pem of waypoint certs)")
	trustDomain := fs.String("trust-domain", certs.DefaultTrustDomain, "with --ca-dir: the trust domain of the identities signed")
	logger := cli.LogFlags(fs)
	fs.Parse(args[1:])
	if *dir == "" {
		return fmt.Errorf("xds serve: --dir is required")
	}
	log, err := logger()
	if err != nil {
		return err
	}
	opts := xdsserver.Options{Logger: log}
	if *tlsDir != "" {
		cert, err := tls.LoadX509KeyPair(filepath.Join(*tlsDir, certs.CertChainFile), filepath.Join(*tlsDir, certs.KeyFile))
		if err != nil {
			return fmt.Errorf("xds serve: --tls-cert-dir: %w", err)
		}
		opts.GRPC = append(opts.GRPC, grpc.Creds(credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})))
	}
	if (*tokens != "" && *tlsDir == "") || (*caDir != "" && *tokens == "") {
		return fmt.Errorf("xds serve: --tokens needs --tls-cert-dir, and --ca-dir needs --tokens")
	}
	if *tokens != "" {
		table, err := readTokens(*tokens)
		if err != nil {
			return err
		}
		opts.GRPC = append(opts.GRPC, istiod.TokenAuth(istiod.StaticTokens(table))...)
	}
	srv, err := xdsserver.NewWithOptions(*dir, opts)
	if err != nil {
		return err
	}
	if *caDir != "" {
		ca, err := certs.LoadCA(filepath.Join(*caDir, certs.RootCertFile), filepath.Join(*caDir, certs.RootKeyFile))
		if err != nil {
			return err
		}
		(&istioca.Server{CA: ca, TrustDomain: *trustDomain, Logger: log}).Register(srv.GRPCServer())
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	ctx := cli.Signals(context.Background(), nil)
	go srv.Watch(ctx, *poll)
	go func() { <-ctx.Done(); srv.Close() }()
	log.Info("xds server listening", "addr", ln.Addr().String(), "dir", strings.TrimSpace(*dir), "version", srv.Version(),
		"tls", *tlsDir != "", "tokens", *tokens != "", "ca", *caDir != "")
	return srv.Serve(ln)
}

// readTokens reads "TOKEN ns/sa" lines; blank lines and # comments are
// skipped.
func readTokens(path string) (map[string]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		tok, who, ok := strings.Cut(line, " ")
		if _, _, err := certs.ParseNamespacedSA(strings.TrimSpace(who)); !ok || err != nil {
			return nil, fmt.Errorf("%s:%d: want \"TOKEN ns/sa\"", path, i+1)
		}
		out[tok] = strings.TrimSpace(who)
	}
	return out, nil
}
