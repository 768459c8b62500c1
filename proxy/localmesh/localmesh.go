// Package localmesh runs a whole small ambient mesh on loopback, in one
// process: the demo behind `waypoint demo` / `make demo`.
//
// What each piece stands for in a cluster:
//
//	127.0.0.5:15008    the waypoint (a Deployment for a service account, spawned by
//	                   a Gateway of class istio-waypoint), identity default/waypoint
//	127.0.0.11:8080    pod echo-a, a sample HTTP backend
//	127.0.0.11:15008   the ztunnel in front of pod echo-a (hbone serve), presenting
//	                   echo-a's identity as ztunnel does for its pods
//	127.0.0.12:8080    pod echo-b, and 127.0.0.12:15008 its ztunnel
//	127.0.0.1:1808x    the client's ztunnel (hbone connect): what a client pod's
//	                   traffic to a service VIP becomes, an HBONE CONNECT to the
//	                   waypoint with :authority VIP:port
//	127.10.0.1:80      service echo-a's VIP; 127.10.0.2:80 service echo-b's
//	127.0.0.1:15000    the waypoint's admin (/healthz/ready, /config_dump)
//	127.0.0.1:15010    the control plane (istiod in a cluster): `waypoint xds
//	                   serve`'s server, serving the resource files of DIR/xds over
//	                   ADS and pushing every edit
//
// The waypoint starts from a bootstrap with dynamic_resources (DIR/waypoint.yaml)
// and takes its listeners and clusters over ADS. The resources are those of
// mesh.yaml (a static bootstrap, kept as the readable source), written as
// DIR/xds/listeners.json and clusters.json.
package localmesh

import (
	"context"
	_ "embed"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"github.com/gowaypoint/waypoint/protocols/spiffe"
	"github.com/gowaypoint/waypoint/proxy/certs"
	"github.com/gowaypoint/waypoint/proxy/hbone"
	"github.com/gowaypoint/waypoint/proxy/waypoint"
	"github.com/gowaypoint/waypoint/proxy/ztunnel"
	"github.com/gowaypoint/waypoint/xds"
	"github.com/gowaypoint/waypoint/xds/xdsserver"
)

// Config is the waypoint's bootstrap in the demo.
//
//go:embed mesh.yaml
var Config []byte

// The demo's fixed addresses.
const (
	WaypointHBONE = "127.0.0.5:15008"
	AdminAddr     = "127.0.0.1:15000"
	MetricsAddr   = "127.0.0.1:15020"
	PlaintextAddr = "127.0.0.1:18090"
	XDSAddr       = "127.0.0.1:15010"
)

// dynamicBootstrap is the waypoint's bootstrap: everything over ADS from
// the demo's control plane (plaintext, as a local xDS server).
const dynamicBootstrap = `# The demo waypoint's bootstrap: listeners and clusters over ADS.
node: {id: "waypoint~127.0.0.5~waypoint-demo.default~default.svc.cluster.local", cluster: Kubernetes}
admin:
  address: {socket_address: {address: 127.0.0.1, port_value: 15000}}
dynamic_resources:
  lds_config: {ads: {}, resource_api_version: V3}
  cds_config: {ads: {}, resource_api_version: V3}
  ads_config: {api_type: GRPC, transport_api_version: V3, grpc_services: [{envoy_grpc: {cluster_name: xds-grpc}}]}
static_resources:
  clusters:
  - name: xds-grpc
    type: STATIC
    connect_timeout: 1s
    load_assignment: {cluster_name: xds-grpc, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: 15010}}}}]}]}
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: {http2_protocol_options: {}}
`

// Pod is a sample workload: an HTTP backend and its ztunnel.
type Pod struct {
	Name string
	IP   string
}

// Pods of the demo.
var Pods = []Pod{{"echo-a", "127.0.0.11"}, {"echo-b", "127.0.0.12"}}

// Entry is a client ztunnel listener and where it sends.
type Entry struct {
	Listen, Authority, What string
}

// Entries of the demo, each an `hbone connect`.
var Entries = []Entry{
	{"127.0.0.1:18080", "127.10.0.1:80", "service echo-a (VIP 127.10.0.1:80), HTTP routes"},
	{"127.0.0.1:18081", "127.10.0.2:80", "service echo-b (VIP 127.10.0.2:80), TCP"},
	{"127.0.0.1:18082", "127.0.0.12:8080", "pod echo-b addressed directly, TCP"},
}

const trustDomain = "cluster.local"

func id(sa string) spiffe.ID {
	return spiffe.ID{TrustDomain: trustDomain, Namespace: "default", ServiceAccount: sa}
}

// Options configure the demo. The zero value is ready to use.
type Options struct {
	// Dir holds certificates and the config; a temporary directory,
	// removed at the end, when empty.
	Dir          string
	Logger       *slog.Logger  // default slog.Default()
	Out          io.Writer     // where instructions are printed; default io.Discard
	DrainTimeout time.Duration // default 2 s
}

// Mesh is a running demo mesh.
type Mesh struct {
	Dir      string
	Waypoint *waypoint.Waypoint

	log      *slog.Logger
	tempDir  bool
	stops    []func(context.Context) // in start order
	draining time.Duration
}

// Start brings the whole mesh up and returns once every piece is ready.
func Start(opts Options) (m *Mesh, err error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.DrainTimeout == 0 {
		opts.DrainTimeout = 2 * time.Second
	}
	mesh := &Mesh{Dir: opts.Dir, log: opts.Logger, draining: opts.DrainTimeout}
	m = mesh
	if m.Dir == "" {
		if m.Dir, err = os.MkdirTemp("", "waypoint-demo-"); err != nil {
			return nil, err
		}
		m.tempDir = true
	}
	defer func() {
		if err != nil {
			mesh.Close(context.Background()) // m itself is nil by now
		}
	}()

	ids := []spiffe.ID{id("waypoint"), id("client")}
	for _, p := range Pods {
		ids = append(ids, id(p.Name))
	}
	if err := certs.WriteMesh(certs.MeshOptions{Dir: m.Dir, TrustDomain: trustDomain, IDs: ids}); err != nil {
		return nil, err
	}
	if err := m.startControlPlane(); err != nil {
		return nil, err
	}
	configFile := filepath.Join(m.Dir, "waypoint.yaml")
	if err := os.WriteFile(configFile, []byte(dynamicBootstrap), 0o644); err != nil {
		return nil, err
	}
	for _, p := range Pods {
		if err := m.startPod(p); err != nil {
			return nil, err
		}
	}
	w, err := waypoint.Start(waypoint.Options{
		ConfigFile:   configFile,
		CertDir:      certs.IdentityDir(m.Dir, id("waypoint")),
		HBONEAddr:    WaypointHBONE,
		MetricsAddr:  MetricsAddr,
		DrainTimeout: opts.DrainTimeout,
		Logger:       m.log.With("component", "waypoint"),
	})
	if err != nil {
		return nil, err
	}
	m.Waypoint = w
	m.stops = append(m.stops, func(ctx context.Context) { w.Shutdown(ctx) })
	if err := m.startClient(); err != nil {
		return nil, err
	}
	return m, nil
}

// XDSDir is where the demo's control plane reads its resource files.
func (m *Mesh) XDSDir() string { return filepath.Join(m.Dir, "xds") }

// startControlPlane writes mesh.yaml's listeners and clusters as resource
// files and serves them over ADS, pushing every change (checked each
// 200 ms).
func (m *Mesh) startControlPlane() error {
	bs, err := xds.ParseBootstrap(Config, "mesh.yaml")
	if err != nil {
		return err
	}
	dir := m.XDSDir()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	sr := bs.Raw.GetStaticResources()
	ls, err := xds.MarshalResourceList(sr.GetListeners())
	if err != nil {
		return err
	}
	cs, err := xds.MarshalResourceList(sr.GetClusters())
	if err != nil {
		return err
	}
	for name, data := range map[string][]byte{xds.ListenersFile: ls, xds.ClustersFile: cs} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			return err
		}
	}
	srv, err := xdsserver.New(dir, m.log.With("component", "xds-server"))
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", XDSAddr)
	if err != nil {
		return fmt.Errorf("xds server: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{}, 2)
	go func() { srv.Serve(ln); done <- struct{}{} }()
	go func() { srv.Watch(ctx, 200*time.Millisecond); done <- struct{}{} }()
	m.stops = append(m.stops, func(context.Context) { cancel(); srv.Close(); <-done; <-done })
	return nil
}

// startPod starts a pod's HTTP backend and its destination ztunnel.
func (m *Mesh) startPod(p Pod) error {
	log := m.log.With("component", "pod/"+p.Name)
	ln, err := net.Listen("tcp", net.JoinHostPort(p.IP, "8080"))
	if err != nil {
		return fmt.Errorf("pod %s: %w", p.Name, err)
	}
	backend := &http.Server{Handler: Backend(p.Name), ReadHeaderTimeout: 10 * time.Second}
	go backend.Serve(ln)
	m.stops = append(m.stops, func(ctx context.Context) { backend.Shutdown(ctx) })

	src, err := certs.NewSource(certs.IdentityDir(m.Dir, id(p.Name)), certs.SourceOptions{Logger: log})
	if err != nil {
		return err
	}
	m.stops = append(m.stops, func(context.Context) { src.Close() })
	srv, err := hbone.NewServer(hbone.ServerConfig{
		TLS:          src.ServerTLSConfig(),
		PeerIdentity: certs.PeerIdentity,
		Handler:      &ztunnel.Destination{LocalIPs: []netip.Addr{netip.MustParseAddr(p.IP)}, Log: log},
		Logger:       log,
	})
	if err != nil {
		return err
	}
	zln, err := net.Listen("tcp", net.JoinHostPort(p.IP, "15008"))
	if err != nil {
		return fmt.Errorf("ztunnel of pod %s: %w", p.Name, err)
	}
	go srv.Serve(zln)
	m.stops = append(m.stops, func(ctx context.Context) { srv.Shutdown(ctx) })
	return nil
}

// startClient starts the client's source ztunnel listeners.
func (m *Mesh) startClient() error {
	log := m.log.With("component", "client-ztunnel")
	src, err := certs.NewSource(certs.IdentityDir(m.Dir, id("client")), certs.SourceOptions{Logger: log})
	if err != nil {
		return err
	}
	m.stops = append(m.stops, func(context.Context) { src.Close() })
	pool := hbone.NewPool(hbone.PoolConfig{Logger: log})
	m.stops = append(m.stops, func(context.Context) { pool.Close() })
	expect := certs.PeerExpectation{ID: id("waypoint")}
	tlsConf := src.ClientTLSConfig(expect)
	via := netip.MustParseAddrPort(WaypointHBONE)
	for _, e := range Entries {
		ln, err := net.Listen("tcp", e.Listen)
		if err != nil {
			return fmt.Errorf("client ztunnel: %w", err)
		}
		s := &ztunnel.Source{Pool: pool, Via: via, Authority: e.Authority, PeerKey: expect.ID.String(), TLS: tlsConf, Log: log}
		go s.Serve(ln)
		m.stops = append(m.stops, func(ctx context.Context) { s.Shutdown(ctx) })
	}
	return nil
}

// Close stops every piece, the last started first, draining each for up
// to the drain timeout, and removes a temporary directory.
func (m *Mesh) Close(ctx context.Context) {
	for i := len(m.stops) - 1; i >= 0; i-- {
		sctx, cancel := context.WithTimeout(ctx, m.draining)
		m.stops[i](sctx)
		cancel()
	}
	m.stops = nil
	if m.tempDir {
		os.RemoveAll(m.Dir)
	}
}

// Run starts the mesh, prints what to try to opts.Out, and serves until
// ctx is done.
func Run(ctx context.Context, opts Options) error {
	m, err := Start(opts)
	if err != nil {
		return err
	}
	out := opts.Out
	if out == nil {
		out = io.Discard
	}
	PrintGuide(out, m.Dir)
	<-ctx.Done()
	fmt.Fprintln(out, "\nstopping the mesh...")
	m.Close(context.Background())
	return nil
}

// PrintGuide writes what runs where and what to try.
func PrintGuide(w io.Writer, dir string) {
	fmt.Fprintf(w, `
waypoint demo: a local ambient mesh on loopback (files in %s)

  waypoint          %s  HBONE, identity spiffe://%s/ns/default/sa/waypoint
  waypoint admin    http://%s/healthz/ready  /config_dump  /debug/pprof/
`, dir, WaypointHBONE, trustDomain, AdminAddr)
	for _, p := range Pods {
		fmt.Fprintf(w, "  pod %-13s %s:8080 (HTTP backend), its ztunnel %s:15008\n", p.Name, p.IP, p.IP)
	}
	for _, e := range Entries {
		fmt.Fprintf(w, "  client ztunnel    %s -> HBONE CONNECT %s: %s\n", e.Listen, e.Authority, e.What)
	}
	fmt.Fprintf(w, "  plaintext         %s -> echo-a without HBONE\n\nTry:\n", PlaintextAddr)
	for _, e := range Entries {
		fmt.Fprintf(w, "  curl -s http://%s/             # %s\n", e.Listen, e.What)
	}
	fmt.Fprintf(w, "  curl -s http://%s/b/hello       # routed by path to pod echo-b, path rewritten to /hello\n", Entries[0].Listen)
	fmt.Fprintf(w, "  curl -s -H 'x-pod: b' http://%s/  # routed by header to pod echo-b\n", Entries[0].Listen)
	fmt.Fprintf(w, "  curl -si http://%s/teapot         # fault injection: 418\n", Entries[0].Listen)
	fmt.Fprintf(w, "  curl -s --data-binary @/etc/hostname http://%s/   # POST bodies are echoed\n", Entries[0].Listen)
	fmt.Fprintf(w, "  curl -s http://%s/config_dump | head\n", AdminAddr)
	fmt.Fprintf(w, "  edit %s/{listeners,clusters}.json: the xDS server (%s) pushes each change over ADS\n\nCtrl-C stops the mesh.\n",
		filepath.Join(dir, "xds"), XDSAddr)
}

// Backend is the sample HTTP app of a pod: GET answers with the pod's name,
// other methods echo the request body.
func Backend(name string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet || r.Method == http.MethodHead {
			fmt.Fprintf(w, "hello from %s (%s %s)\n", name, r.Method, r.URL.Path)
			return
		}
		io.Copy(w, r.Body)
	})
}
