package inbound

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/gowaypoint/waypoint/protocols/spiffe"
	"github.com/gowaypoint/waypoint/proxy/certs"
	"github.com/gowaypoint/waypoint/proxy/filterchain/chaintest"
	"github.com/gowaypoint/waypoint/proxy/hbone"
	"github.com/gowaypoint/waypoint/proxy/hbone/hbonetest"
)

// Addresses of this package's tests: 127.78.2.0/24.

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// internalConfig is main_internal alone: every stream's HTTP is answered
// by the router.
const internalConfig = `
static_resources:
  listeners:
  - name: main_internal
    internal_listener: {}
    filter_chains:
    - name: answer
      filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: inbound
          route_config: {virtual_hosts: [{name: any, domains: ["*"], routes: [{match: {prefix: /}, direct_response: {status: 200, body: {inline_string: hi}}}]}]}
          http_filters: [{name: envoy.filters.http.router, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}]
`

// TestDrainReachesTunnelledConnections: the Handler's drain context
// reaches the connections the HBONE streams carry, as it reaches a
// plaintext listener's: a keep-alive HTTP/1.1 connection in a tunnel,
// idle between requests, is ended when the drain begins, so the tunnel
// ends (END_STREAM) and the HBONE server's drain need not wait for it.
func TestDrainReachesTunnelledConnections(t *testing.T) {
	dir := t.TempDir()
	client := spiffe.ID{TrustDomain: "cluster.local", Namespace: "ns", ServiceAccount: "client"}
	waypoint := spiffe.ID{TrustDomain: "cluster.local", Namespace: "ns", ServiceAccount: "waypoint"}
	if err := certs.WriteMesh(certs.MeshOptions{Dir: dir, IDs: []spiffe.ID{client, waypoint}}); err != nil {
		t.Fatal(err)
	}
	source := func(id spiffe.ID) *certs.Source {
		s, err := certs.NewSource(filepath.Join(dir, id.Namespace, id.ServiceAccount), certs.SourceOptions{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}

	chains, _ := chaintest.Server(t, internalConfig)
	drain, startDrain := context.WithCancel(context.Background())
	defer startDrain()
	h := &Handler{Chains: chains, Drain: drain}
	srv, err := hbone.NewServer(hbone.ServerConfig{TLS: source(waypoint).ServerTLSConfig(), PeerIdentity: certs.PeerIdentity,
		Handler: h, Logger: chains.Log})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.78.2.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan struct{})
	go func() { defer close(served); srv.Serve(ln) }()
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		<-served
	}()

	// One keep-alive HTTP/1.1 exchange in a tunnel, which then stays open.
	cc := hbonetest.ClientConn(t, ln.Addr().String(), source(client).ClientTLSConfig(certs.PeerExpectation{ID: waypoint}))
	pr, pw := io.Pipe()
	defer pw.Close()
	tunnel, err := cc.RoundTrip(hbonetest.Connect("10.1.0.1:8080", pr))
	if err != nil || tunnel.StatusCode != 200 {
		t.Fatalf("CONNECT: %v %v", tunnel, err)
	}
	defer tunnel.Body.Close()
	io.WriteString(pw, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	r := bufio.NewReader(tunnel.Body)
	resp, err := http.ReadResponse(r, nil)
	if err != nil || resp.StatusCode != 200 || resp.Close {
		t.Fatalf("request in the tunnel: %v %v", resp, err)
	}
	io.Copy(io.Discard, resp.Body)

	startDrain()
	ended := make(chan error, 1)
	go func() {
		_, err := r.ReadByte()
		ended <- err
	}()
	select {
	case err := <-ended:
		if err != io.EOF {
			t.Errorf("tunnel after the drain began: %v, want its end (EOF)", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the idle connection in the tunnel was not ended by the drain")
	}
}
