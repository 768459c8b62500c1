package e2e

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gowaypoint/waypoint/protocols/spiffe"
	"github.com/gowaypoint/waypoint/proxy/certs"
)

// The out-of-tree filter of TestCustomBuild, in a module of its own: it
// answers GET /custom/hello itself and marks every other request and its
// response with x-custom-filter. It is written against the filters API of
// the day; when that API changes, this is the one place to change.
const customFilterSource = `package hello

import (
	"google.golang.org/protobuf/proto"

	"github.com/gowaypoint/waypoint/filters"
)

func init() { filters.Register(factory{}) }

type factory struct{}

func (factory) Names() []string    { return []string{"example.hello"} }
func (factory) TypeURLs() []string { return []string{"type.googleapis.com/example.hello.v1.Config"} }

func (factory) New(filters.BuildContext, proto.Message) (hello, error) { return hello{}, nil }

type hello struct{}

func (hello) OnRequest(s *filters.Stream) filters.Status {
	if string(s.Request.Path) == "/custom/hello" {
		return s.SendLocalReply(200, "hello from a custom build", 0)
	}
	s.Request.Header.Set("x-custom-filter", "request")
	return filters.Continue
}

func (hello) OnResponse(s *filters.Stream) filters.Status {
	if s.Response != nil {
		s.Response.Header.Set("x-custom-filter", "response")
	}
	return filters.Continue
}
`

// customMainSource is the whole main package of a custom build, as
// docs/filters.md shows it.
const customMainSource = `package main

import (
	waypointcmd "github.com/gowaypoint/waypoint/cmd/waypointcmd"
	_ "example.com/custom/hello"
)

func main() { waypointcmd.Main() }
`

// customConfig serves plaintext HTTP on 127.79.0.5:8080 through the
// custom filter and the router, to a backend on 127.79.0.11:8080.
const customConfig = `
static_resources:
  listeners:
  - name: front
    address: {socket_address: {address: 127.79.0.5, port_value: 8080}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: front
          http_filters:
          - name: example.hello
            typed_config:
              "@type": type.googleapis.com/xds.type.v3.TypedStruct
              type_url: type.googleapis.com/example.hello.v1.Config
          - {name: envoy.filters.http.router, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}
          route_config:
            virtual_hosts:
            - {name: all, domains: ["*"], routes: [{match: {prefix: /}, route: {cluster: backend}}]}
  clusters:
  - name: backend
    connect_timeout: 2s
    transport_socket: {name: raw, typed_config: {"@type": type.googleapis.com/envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer}}
    load_assignment:
      cluster_name: backend
      endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.79.0.11, port_value: 8080}}}}]}]
`

// TestCustomBuild builds a waypoint with a filter of its own, as
// docs/filters.md says to: a module outside this one (its go.mod requires
// the waypoint, replaced by this checkout; its go.sum is this module's, so
// the module cache serves the build) whose main package is six lines
// around waypointcmd.Main. The binary runs on loopback and the filter
// acts: it answers one path itself, and marks the request the backend
// sees and the response the client gets.
func TestCustomBuild(t *testing.T) {
	t.Parallel()
	root, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}").Output()
	if err != nil {
		t.Fatalf("finding the module root: %v", err)
	}
	repo := strings.TrimSpace(string(root))
	mod := t.TempDir()
	sum, err := os.ReadFile(filepath.Join(repo, "go.sum"))
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"go.mod": "module example.com/custom\n\ngo 1.26.0\n\nrequire github.com/gowaypoint/waypoint v0.0.0\n\n" +
			"replace github.com/gowaypoint/waypoint => " + repo + "\n",
		"go.sum":         string(sum),
		"main.go":        customMainSource,
		"hello/hello.go": customFilterSource,
	}
	for name, content := range files {
		path := filepath.Join(mod, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	bin := filepath.Join(t.TempDir(), "custom-waypoint")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, ".")
	build.Dir = mod
	// -mod=mod lets the go command complete go.mod's requirements from
	// the waypoint's own; GOWORK=off keeps any workspace out.
	build.Env = append(os.Environ(), "GOFLAGS="+strings.TrimSpace(os.Getenv("GOFLAGS")+" -mod=mod"), "GOWORK=off")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build of the custom waypoint: %v\n%s", err, out)
	}

	backend := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("x-backend-saw", r.Header.Get("x-custom-filter"))
		io.WriteString(w, "from the backend")
	})}
	ln, err := net.Listen("tcp", "127.79.0.11:8080")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan struct{})
	go func() { defer close(served); backend.Serve(ln) }()
	t.Cleanup(func() { backend.Close(); <-served })

	dir := t.TempDir()
	id := spiffe.ID{TrustDomain: trustDomain, Namespace: "default", ServiceAccount: "waypoint"}
	if err := certs.WriteMesh(certs.MeshOptions{Dir: dir, TrustDomain: trustDomain, IDs: []spiffe.ID{id}}); err != nil {
		t.Fatal(err)
	}
	config := filepath.Join(dir, "waypoint.yaml")
	if err := os.WriteFile(config, []byte(customConfig), 0o644); err != nil {
		t.Fatal(err)
	}
	startProc(t, "custom-waypoint", bin, "run", "--config", config, "--cert-dir", certs.IdentityDir(dir, id),
		"--hbone-addr", "127.79.0.5:15008", "--admin-addr", "127.79.0.5:15000", "--metrics-addr", "off")
	waitHTTP200(t, "http://127.79.0.5:15000/healthz/ready")

	c := httpClient()
	resp, body := getResp(t, c, "http://127.79.0.5:8080/custom/hello")
	if resp.StatusCode != 200 || body != "hello from a custom build" {
		t.Errorf("GET /custom/hello: %d %q, want the filter's own answer, 200 %q", resp.StatusCode, body, "hello from a custom build")
	}
	resp, body = getResp(t, c, "http://127.79.0.5:8080/anything")
	if resp.StatusCode != 200 || body != "from the backend" {
		t.Errorf("GET /anything: %d %q, want the backend's answer", resp.StatusCode, body)
	}
	if got := resp.Header.Get("x-backend-saw"); got != "request" {
		t.Errorf("the backend saw x-custom-filter %q, want %q (set by the filter on the request)", got, "request")
	}
	if got := resp.Header.Get("x-custom-filter"); got != "response" {
		t.Errorf("the response has x-custom-filter %q, want %q (set by the filter on the response)", got, "response")
	}
}
