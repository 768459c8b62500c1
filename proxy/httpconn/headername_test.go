package httpconn

import (
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"

	"golang.org/x/net/http2"
	"google.golang.org/protobuf/proto"

	"github.com/gowaypoint/waypoint/filters"
)

// setHeaderFactory, "test.set_header", builds a filter that sets the
// request header named by its config's "name" (as given: a filter may
// write "X-Caller") to "productpage".
type setHeaderFactory struct{}

type setHeaderConfig struct {
	Name string `json:"name"`
}

type setHeader struct{ name string }

func (setHeaderFactory) Names() []string    { return []string{"test.set_header"} }
func (setHeaderFactory) TypeURLs() []string { return []string{"type.googleapis.com/test.SetHeader"} }
func (setHeaderFactory) New(_ filters.BuildContext, cfg proto.Message) (setHeader, error) {
	var c setHeaderConfig
	err := filters.DecodeTypedStruct(cfg, &c)
	return setHeader{c.Name}, err
}

func (f setHeader) OnRequest(s *filters.Stream) filters.Status {
	s.Request.Header.Set(f.name, "productpage")
	return filters.Continue
}

func init() { filters.Register(setHeaderFactory{}) }

// h2Config: a listener whose chain sets header NAME, routing to cluster c,
// which speaks HTTP/2 (prior knowledge, plaintext) to the backend.
const h2Config = `
static_resources:
  listeners:
  - name: l
    address: {socket_address: {address: 127.0.24.1, port_value: 1}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: t
          http_filters:
          - {name: test.set_header, typed_config: {"@type": type.googleapis.com/xds.type.v3.TypedStruct, type_url: type.googleapis.com/test.SetHeader, value: {name: "NAME"}}}
          - {name: envoy.filters.http.router, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}
          route_config: {virtual_hosts: [{name: all, domains: ["*"], routes: [{match: {prefix: /}, route: {cluster: c}}]}]}
  clusters:
  - name: c
    transport_socket: {name: raw, typed_config: {"@type": type.googleapis.com/envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer}}
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: {http2_protocol_options: {}}
    load_assignment: {cluster_name: c, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.24.3, port_value: BACKEND_PORT}}}}]}]}
`

// h2Backend serves HTTP/2 with prior knowledge with golang.org/x/net's
// server, which refuses a message with an upper-case field name as
// malformed (RFC 9113 §8.2.1: a stream error), and answers with the
// X-Caller it got.
func h2Backend(t *testing.T) (port string, requests func() int) {
	ln, err := net.Listen("tcp", "127.0.24.3:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	n := 0
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		n++
		mu.Unlock()
		io.WriteString(w, "caller="+r.Header.Get("X-Caller"))
	})
	srv := &http2.Server{}
	acceptAll(t, ln, func(c net.Conn) { srv.ServeConn(c, &http2.ServeConnOpts{Handler: h}) })
	_, port, _ = net.SplitHostPort(ln.Addr().String())
	return port, func() int { mu.Lock(); defer mu.Unlock(); return n }
}

// TestFilterHeaderNamesAtTheCodecEdge: a header a filter sets as
// "X-Caller" reaches a real HTTP/2 backend, which would refuse it
// upper-case, lower-cased; one whose name is not a token is answered 500
// through protocols/status, naming it, and never sent.
func TestFilterHeaderNamesAtTheCodecEdge(t *testing.T) {
	cases := []struct {
		name, header string
		status       int
		body         string
		sent         bool
	}{
		{"upper-case name lower-cased", "X-Caller", 200, "caller=productpage", true},
		{"lower-case name as is", "x-caller", 200, "caller=productpage", true},
		{"name that is not a token", "X Caller", 500, `invalid header: http2: request header field name "X Caller" is not a token`, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			port, requests := h2Backend(t)
			config := strings.NewReplacer("BACKEND_PORT", port, `"NAME"`, `"`+c.header+`"`).Replace(h2Config)
			addr := serveConfig(t, config)
			tr := &http.Transport{}
			defer tr.CloseIdleConnections()
			resp, err := (&http.Client{Transport: tr}).Get("http://" + addr + "/")
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != c.status || !strings.Contains(string(body), c.body) {
				t.Errorf("got %d %q, want %d %q", resp.StatusCode, body, c.status, c.body)
			}
			if got := requests() > 0; got != c.sent {
				t.Errorf("the backend saw the request: %v, want %v", got, c.sent)
			}
		})
	}
}
