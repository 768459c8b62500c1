package dubboconn

// Addresses of this package's tests: 127.0.50.0/24 (the waypoint's
// listener on 127.0.50.5, providers on 127.0.50.11 to .19); those of
// telemetry_test.go and drain_test.go 127.0.95.0/24 (the same layout).

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"testing"
	"text/template"
	"time"

	hessian "github.com/apache/dubbo-go-hessian2"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/proto"

	"github.com/gowaypoint/waypoint/filters"
	_ "github.com/gowaypoint/waypoint/filters/all"
	"github.com/gowaypoint/waypoint/protocols/spiffe"
	"github.com/gowaypoint/waypoint/proxy/downstream"
	"github.com/gowaypoint/waypoint/proxy/dubboconn/dubbotest"
	"github.com/gowaypoint/waypoint/proxy/upstream"
	"github.com/gowaypoint/waypoint/telemetry/stats"
	"github.com/gowaypoint/waypoint/xds"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const (
	waypointIP = "127.0.50.5"
	podA       = "127.0.50.11:20880"
	podB       = "127.0.50.12:20880"
)

// configTemplate is the waypoint's config in these tests: one Dubbo
// chain, with the fault filter (aborts asked for by an attachment) and
// tagFilter before the router.
const configTemplate = `
static_resources:
  listeners:
  - name: dubbo
    address: {socket_address: {address: 127.0.50.5, port_value: 1}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.dubbo_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.dubbo_proxy.v3.DubboProxy
          stat_prefix: dubbo
          multiple_route_config:
            route_config:
            - interface: com.example.Greeter
              routes:
              - match: {method: {name: {exact: toA}}}
                route: {cluster: a}
              - match: {method: {name: {exact: toEmpty}}}
                route: {cluster: empty}
              - match: {method: {name: {exact: hello}}, headers: [{name: x-pod, string_match: {exact: b}}]}
                route: {cluster: b}
              - match: {method: {name: {safe_regex: {regex: ".*"}}}}
                route: {cluster: ab}
            - interface: "*"
              routes:
              - match: {}
                route: {cluster: ab}
          dubbo_filters:
          - name: envoy.filters.http.fault
            config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault
              abort: {header_abort: {}, percentage: {numerator: 100}}
          - name: test.tag
            config: {"@type": type.googleapis.com/xds.type.v3.TypedStruct, type_url: type.googleapis.com/test.Tag}
          - name: test.deny
            config: {"@type": type.googleapis.com/xds.type.v3.TypedStruct, type_url: type.googleapis.com/test.Deny}
          - name: envoy.filters.dubbo.router
  clusters:
{{- range .Clusters}}
  - name: {{.Name}}
    connect_timeout: 1s
    transport_socket:
      name: envoy.transport_sockets.raw_buffer
      typed_config: {"@type": type.googleapis.com/envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer}
    load_assignment:
      cluster_name: {{.Name}}
{{- if .Endpoints}}
      endpoints:
      - lb_endpoints:
{{- range .Endpoints}}
        - endpoint: {address: {socket_address: {address: {{.Addr}}, port_value: {{.Port}}}}}
{{- end}}
{{- end}}
{{- end}}
`

type clusterT struct {
	Name      string
	Endpoints []netip.AddrPort
}

// env is a waypoint's Dubbo path in process: the config, the upstream
// pools, and a listener whose connections Serve runs.
type env struct {
	t      *testing.T
	store  xds.Store
	ups    *Upstreams
	denv   *Env
	ln     net.Listener
	wg     sync.WaitGroup
	closed chan struct{}
	dir    string // the config template's Dir
	opts   envOptions
}

type envOptions struct {
	upstream UpstreamConfig
	env      *Env // a new Env when nil; Log and Upstreams are set
	clusters []clusterT
	// config is the config template (configTemplate when empty), run
	// with Clusters and Dir (the test's temporary directory); its
	// listener is named "dubbo". listenIP is the waypoint's address
	// (waypointIP when empty).
	config   string
	listenIP string
	// peer and baggage describe every downstream connection (none by
	// default), as the HBONE inbound does.
	peer    spiffe.ID
	baggage string
}

func defaultClusters() []clusterT {
	a, b := netip.MustParseAddrPort(podA), netip.MustParseAddrPort(podB)
	return []clusterT{{"a", []netip.AddrPort{a}}, {"b", []netip.AddrPort{b}}, {"ab", []netip.AddrPort{a, b}}, {"empty", nil}}
}

func newEnv(t *testing.T, o envOptions) *env {
	t.Helper()
	if o.clusters == nil {
		o.clusters = defaultClusters()
	}
	if o.config == "" {
		o.config = configTemplate
	}
	if o.listenIP == "" {
		o.listenIP = waypointIP
	}
	var cfg bytes.Buffer
	data := struct {
		Clusters []clusterT
		Dir      string
	}{o.clusters, t.TempDir()}
	if err := template.Must(template.New("").Parse(o.config)).Execute(&cfg, data); err != nil {
		t.Fatal(err)
	}
	// The filters count on the process's registry, as the waypoint's do.
	bs, err := xds.BuildOptions{Registry: stats.Registry}.ParseBootstrap(cfg.Bytes(), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, closed: make(chan struct{}), dir: data.Dir, opts: o}
	e.store.Store(bs.Snapshot)
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	clusters := upstream.NewClusters(upstream.NewDialer(nil, nil))
	clusters.Update(bs.Snapshot)
	e.ups = NewUpstreams(clusters, o.upstream, log)
	if o.env == nil {
		o.env = &Env{}
	}
	e.denv = o.env
	e.denv.Log, e.denv.Upstreams = log, e.ups
	if e.ln, err = net.Listen("tcp", o.listenIP+":0"); err != nil {
		t.Fatal(err)
	}
	e.wg.Add(1)
	go e.accept()
	t.Cleanup(func() {
		e.ln.Close()
		close(e.closed)
		e.wg.Wait()
		e.ups.Close()
		clusters.Close()
	})
	return e
}

func (e *env) accept() {
	defer e.wg.Done()
	var conns sync.WaitGroup
	defer conns.Wait()
	var mu sync.Mutex
	open := map[net.Conn]bool{}
	go func() {
		<-e.closed
		mu.Lock()
		for c := range open {
			c.Close()
		}
		mu.Unlock()
	}()
	for {
		c, err := e.ln.Accept()
		if err != nil {
			return
		}
		mu.Lock()
		open[c] = true
		mu.Unlock()
		conns.Add(1)
		go func() {
			defer conns.Done()
			defer func() {
				mu.Lock()
				delete(open, c)
				mu.Unlock()
				c.Close()
			}()
			snap := e.store.Load()
			dc := downstream.NewTCP(c.(*net.TCPConn))
			in := xds.MatchInput{Destination: dc.Info.LocalAddr, Source: dc.Info.RemoteAddr}
			fc := snap.Listener("dubbo").Match(in)
			dc.Info.Peer, dc.Info.Baggage = e.opts.peer, e.opts.baggage
			if !dc.Info.Peer.IsZero() {
				dc.Info.PeerURI = dc.Info.Peer.String()
			}
			Serve(dc, NewSource(&e.store, "dubbo", in, snap, fc.Dubbo), e.denv)
		}()
	}
}

// tagFilter, "test.tag", sets the attachment x-tagged to "yes" on calls
// that carry tag-me, so that their body is re-encoded.
type tagFilter struct{}

func (tagFilter) OnRequest(s *filters.Stream) filters.Status {
	if s.Request.Header.Has("tag-me") {
		s.Request.Header.Set("x-tagged", "yes")
	}
	return filters.Continue
}

type tagFactory struct{}

func (tagFactory) Names() []string    { return []string{"test.tag"} }
func (tagFactory) TypeURLs() []string { return []string{"type.googleapis.com/test.Tag"} }
func (tagFactory) New(filters.BuildContext, proto.Message) (tagFilter, error) {
	return tagFilter{}, nil
}

// denyFilter, "test.deny", denies calls that carry x-deny as an
// external authorization filter does: 403 with Envoy's flag UAEX.
type denyFilter struct{}

func (denyFilter) OnRequest(s *filters.Stream) filters.Status {
	if s.Request.Header.Has("x-deny") {
		return s.SendLocalReply(403, "RBAC: access denied", filters.FlagUAEX)
	}
	return filters.Continue
}

type denyFactory struct{}

func (denyFactory) Names() []string    { return []string{"test.deny"} }
func (denyFactory) TypeURLs() []string { return []string{"type.googleapis.com/test.Deny"} }
func (denyFactory) New(filters.BuildContext, proto.Message) (denyFilter, error) {
	return denyFilter{}, nil
}

func init() {
	filters.Register(tagFactory{})
	filters.Register(denyFactory{})
}

// consumer connects a reference consumer to the waypoint.
func (e *env) consumer() *dubbotest.Consumer {
	e.t.Helper()
	c, err := dubbotest.Dial(e.ln.Addr().String())
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { c.Close() })
	return c
}

// provider starts a reference provider, stopped at the end of the test.
func provider(t *testing.T, addr, name string, h dubbotest.Handler) *dubbotest.Provider {
	t.Helper()
	p, err := dubbotest.StartProvider(addr, name, h)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Kill)
	return p
}

func greeter(method string) hessian.Service {
	return hessian.Service{Path: "com.example.Greeter", Interface: "com.example.Greeter", Method: method, Version: "1.0.0"}
}

func ctxTimeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
