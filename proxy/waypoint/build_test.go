package waypoint

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/gowaypoint/waypoint/filters"
	"github.com/gowaypoint/waypoint/protocols/l7"
	"github.com/gowaypoint/waypoint/protocols/status"
)

// ownerFactory, "test.owner", builds filters that own something: each
// records its build context and, when closed, its config's id.
type ownerFactory struct{}

var owners struct {
	sync.Mutex
	closed []string
	ctx    map[string]filters.BuildContext // by id
}

func (ownerFactory) Names() []string    { return []string{"test.owner"} }
func (ownerFactory) TypeURLs() []string { return []string{"type.googleapis.com/test.Owner"} }

func (ownerFactory) New(ctx filters.BuildContext, cfg proto.Message) (*ownerFilter, error) {
	id := cfg.(*structpb.Struct).GetFields()["id"].GetStringValue()
	owners.Lock()
	defer owners.Unlock()
	if owners.ctx == nil {
		owners.ctx = map[string]filters.BuildContext{}
	}
	owners.ctx[id] = ctx
	return &ownerFilter{id: id}, nil
}

type ownerFilter struct{ id string }

func (*ownerFilter) OnRequest(*filters.Stream) filters.Status { return filters.Continue }

func (f *ownerFilter) Close() error {
	owners.Lock()
	defer owners.Unlock()
	owners.closed = append(owners.closed, f.id)
	return nil
}

func init() { filters.Register(ownerFactory{}) }

func takeClosedOwners() []string {
	owners.Lock()
	defer owners.Unlock()
	c := owners.closed
	owners.closed = nil
	return c
}

// ownerConfig is an HTTP listener on listenAddr whose chain has a
// test.owner filter with id, routing to an HTTP/1.1 backend.
func ownerConfig(listenAddr, id, backend string) string {
	host, port, _ := net.SplitHostPort(listenAddr)
	bhost, bport, _ := net.SplitHostPort(backend)
	return fmt.Sprintf(`
static_resources:
  listeners:
  - name: front
    address: {socket_address: {address: %s, port_value: %s}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: front
          http_filters:
          - {name: test.owner, typed_config: {"@type": type.googleapis.com/xds.type.v3.TypedStruct, type_url: type.googleapis.com/test.Owner, value: {id: %q}}}
          - {name: envoy.filters.http.router, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}
          route_config: {name: r, virtual_hosts: [{name: vh, domains: ["*"], routes: [{match: {prefix: /}, route: {cluster: backend}}]}]}
  clusters:
  - name: backend
    connect_timeout: 1s
    transport_socket: {name: raw, typed_config: {"@type": type.googleapis.com/envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer}}
    load_assignment:
      cluster_name: backend
      endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: %s, port_value: %s}}}}]}]
`, host, port, id, bhost, bport)
}

// httpBackend serves "backend" on addr.
func httpBackend(t *testing.T, addr string) {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "backend") })}
	done := make(chan struct{})
	go func() { defer close(done); srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close(); <-done })
}

// TestReloadClosesReplacedFilters: the filters of a config are closed when
// a reload replaces it, those of a refused config at once, and those of
// the config in force at shutdown; never those in force.
func TestReloadClosesReplacedFilters(t *testing.T) {
	httpBackend(t, "127.0.8.31:8080")
	takeClosedOwners()
	w, file := startWaypoint(t, ownerConfig("127.0.8.6:7200", "first", "127.0.8.31:8080"))
	if got := takeClosedOwners(); len(got) != 0 {
		t.Fatalf("closed at start: %v", got)
	}

	os.WriteFile(file, []byte(ownerConfig("127.0.8.6:7200", "second", "127.0.8.31:8080")), 0o644)
	if err := w.Reload(); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"first"}, takeClosedOwners()); diff != "" {
		t.Errorf("closed by the reload (-want +got):\n%s", diff)
	}

	// A config the listeners cannot take (its address is in use) is
	// refused; its filters are closed, the serving ones are not.
	busy, err := net.Listen("tcp", "127.0.8.6:7201")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	os.WriteFile(file, []byte(ownerConfig("127.0.8.6:7201", "refused", "127.0.8.31:8080")), 0o644)
	if err := w.Reload(); err == nil {
		t.Fatal("a config on a busy address was applied")
	}
	if diff := cmp.Diff([]string{"refused"}, takeClosedOwners()); diff != "" {
		t.Errorf("closed by the refused reload (-want +got):\n%s", diff)
	}

	w.Shutdown(context.Background())
	if diff := cmp.Diff([]string{"second"}, takeClosedOwners()); diff != "" {
		t.Errorf("closed at shutdown (-want +got):\n%s", diff)
	}
}

// TestFilterBuildContext: a filter the waypoint builds gets a logger, and
// an Upstream that reaches the clusters of the config in force.
func TestFilterBuildContext(t *testing.T) {
	httpBackend(t, "127.0.8.32:8080")
	startWaypoint(t, ownerConfig("127.0.8.7:7200", "ctx", "127.0.8.32:8080"))
	owners.Lock()
	ctx := owners.ctx["ctx"]
	owners.Unlock()
	if ctx.Name != "test.owner" || ctx.Logger == nil || ctx.Upstream == nil {
		t.Fatalf("build context %+v: want the filter's name, a logger and an upstream", ctx)
	}
	req := &l7.Request{Method: "GET", Scheme: "http", Authority: []byte("backend"), Path: []byte("/"), Proto: l7.HTTP11}
	resp, err := ctx.Upstream.RoundTrip(context.Background(), &filters.UpstreamRequest{Cluster: "backend", Request: req})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.Status != 200 || string(body) != "backend" {
		t.Errorf("got %d %q, want 200 backend", resp.Status, body)
	}
	_, err = ctx.Upstream.RoundTrip(context.Background(), &filters.UpstreamRequest{Cluster: "nowhere", Request: req})
	if status.KindOf(err) != status.NoCluster {
		t.Errorf("an unknown cluster: %v, want NoCluster", err)
	}

	var none filterUpstream // before the first config
	if _, err := none.RoundTrip(context.Background(), &filters.UpstreamRequest{Cluster: "backend", Request: req}); status.KindOf(err) != status.NoCluster ||
		!strings.Contains(err.Error(), "no config in force") {
		t.Errorf("without config: %v, want NoCluster", err)
	}
}
