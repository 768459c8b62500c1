package live

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	datav3 "github.com/envoyproxy/go-control-plane/envoy/data/accesslog/v3"
	alsv3 "github.com/envoyproxy/go-control-plane/envoy/service/accesslog/v3"
	"google.golang.org/grpc"
)

// The gRPC access log service cases: meshConfig's envoyHttpAls and envoyTcpAls providers
// (envoy-als-http, envoy-als-tcp: als.istio-system:9001) enabled by a Telemetry.
func init() {
	catalogue = append(catalogue,
		compatCase{
			name: "telemetry-access-log-grpc-als",
			resources: "Service als.istio-system with a WorkloadEntry on the loopback (a gRPC AccessLogService receiver, plaintext); " +
				"Telemetry, targetRefs the Gateway: accessLogging providers `envoy-als-http` (envoyHttpAls, logName waypoint-http, " +
				"x-user logged) and `envoy-als-tcp` (envoyTcpAls, logName waypoint-tcp)",
			checks: "each stream's first message names the waypoint's node and its log name; an HTTP entry per request with its " +
				"method, path, status, x-user and upstream cluster; a TCP entry for a TCP connection with its bytes",
			yaml: alsService + `---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: logs, namespace: "{{NS}}"}
spec:
  targetRefs:
  - {kind: Gateway, group: gateway.networking.k8s.io, name: waypoint}
  accessLogging:
  - providers: [{name: envoy-als-http}, {name: envoy-als-tcp}]
`,
			check: alsCheck,
		},
	)
}

// alsService is the Service the envoyHttpAls and envoyTcpAls providers name, selecting
// app=als (alsReceiver's WorkloadEntries).
const alsService = `
apiVersion: v1
kind: Service
metadata: {name: als, namespace: istio-system}
spec:
  selector: {app: als}
  ports:
  - {name: grpc-als, port: 9001}
`

// alsServer is the package's gRPC access log service, shared by every world as secOTLP is
// (the Service is one for all namespaces): it keeps every stream's identifier and entries.
type alsServer struct {
	alsv3.UnimplementedAccessLogServiceServer
	mu      sync.Mutex
	streams []*alsStream
}

type alsStream struct {
	id   *alsv3.StreamAccessLogsMessage_Identifier
	http []*datav3.HTTPAccessLogEntry
	tcp  []*datav3.TCPAccessLogEntry
	bad  string // a later message with an identifier, or a first one without
}

func (a *alsServer) StreamAccessLogs(st grpc.ClientStreamingServer[alsv3.StreamAccessLogsMessage, alsv3.StreamAccessLogsResponse]) error {
	s := &alsStream{}
	a.mu.Lock()
	a.streams = append(a.streams, s)
	a.mu.Unlock()
	for first := true; ; first = false {
		m, err := st.Recv()
		if errors.Is(err, io.EOF) {
			return st.SendAndClose(&alsv3.StreamAccessLogsResponse{})
		}
		if err != nil {
			return err
		}
		a.mu.Lock()
		switch {
		case first && m.GetIdentifier() == nil:
			s.bad = "the first message has no identifier"
		case first:
			s.id = m.GetIdentifier()
		case m.GetIdentifier() != nil:
			s.bad = "a later message has an identifier"
		}
		s.http = append(s.http, m.GetHttpLogs().GetLogEntry()...)
		s.tcp = append(s.tcp, m.GetTcpLogs().GetLogEntry()...)
		a.mu.Unlock()
	}
}

// httpEntries returns the HTTP entries of streams named logName whose path starts with prefix.
func (a *alsServer) httpEntries(logName, prefix string) (out []*datav3.HTTPAccessLogEntry, streams []*alsStream) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, s := range a.streams {
		if s.id.GetLogName() != logName {
			continue
		}
		streams = append(streams, s)
		for _, e := range s.http {
			if strings.HasPrefix(e.GetRequest().GetPath(), prefix) {
				out = append(out, e)
			}
		}
	}
	return out, streams
}

var alsOnce struct {
	sync.Once
	r   *alsServer
	err error
}

// alsReceiver starts the receiver on first use (liveNet.0.51:9001) and applies a
// WorkloadEntry for it, removed when the case ends.
func alsReceiver(t *testing.T, w *world) *alsServer {
	t.Helper()
	addr := liveNet + ".0.51"
	alsOnce.Do(func() {
		ln, err := net.Listen("tcp", net.JoinHostPort(addr, "9001"))
		if err != nil {
			alsOnce.err = err
			return
		}
		r := &alsServer{}
		srv := grpc.NewServer()
		alsv3.RegisterAccessLogServiceServer(srv, r)
		go srv.Serve(ln)
		alsOnce.r = r
	})
	if alsOnce.err != nil {
		t.Fatal(alsOnce.err)
	}
	entry := fmt.Sprintf(`
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: "als-{{NS}}", namespace: istio-system}
spec:
  address: %q
  labels: {app: als}
`, addr)
	w.applied(entry)
	t.Cleanup(func() { w.remove(entry) })
	return alsOnce.r
}

func alsCheck(t *testing.T, w *world, b *base) {
	als := alsReceiver(t, w)
	// The service's endpoint arrives with EDS: the first entries may be dropped before it does.
	warm := 0
	w.eventually(30*time.Second, "an HTTP entry at the service", func() error {
		warm++
		expect(t, w, b, "GET", fmt.Sprintf("/als-warm/%d", warm), nil, 200, "")
		time.Sleep(1200 * time.Millisecond) // a flush interval
		if es, _ := als.httpEntries("waypoint-http", "/als-warm/"); len(es) == 0 {
			return fmt.Errorf("no entry yet")
		}
		return nil
	})
	expect(t, w, b, "GET", "/als/ok", http.Header{"X-User": {"jason"}}, 200, "")
	expect(t, w, b, "GET", "/als/missing", http.Header{"X-Echo-Status": {"404"}}, 404, "")
	secTCP(t, w, "productpage", b.vip+":9300", nil, true)
	var ok, missing *datav3.HTTPAccessLogEntry
	w.eventually(10*time.Second, "the entries of the requests", func() error {
		es, streams := als.httpEntries("waypoint-http", "/als/")
		ok, missing = nil, nil
		for _, e := range es {
			switch e.GetRequest().GetPath() {
			case "/als/ok":
				if ok != nil {
					return permanent(fmt.Errorf("two entries for /als/ok"))
				}
				ok = e
			case "/als/missing":
				missing = e
			}
		}
		if ok == nil || missing == nil {
			return fmt.Errorf("entries: /als/ok %v, /als/missing %v", ok != nil, missing != nil)
		}
		for _, s := range streams {
			if s.bad != "" {
				return permanent(fmt.Errorf("stream %v: %s", s.id, s.bad))
			}
			if !strings.HasPrefix(s.id.GetNode().GetId(), "waypoint~") {
				return permanent(fmt.Errorf("identifier's node %v, want the waypoint's", s.id.GetNode()))
			}
		}
		return nil
	})
	if ok.GetResponse().GetResponseCode().GetValue() != 200 || missing.GetResponse().GetResponseCode().GetValue() != 404 ||
		ok.GetRequest().GetRequestMethod().String() != "GET" || ok.GetRequest().GetRequestHeaders()["x-user"] != "jason" ||
		!strings.Contains(ok.GetCommonProperties().GetUpstreamCluster(), "reviews") {
		t.Errorf("entries: /als/ok %v; /als/missing %v", ok, missing)
	}
	// The TCP connection: a TCP entry on the waypoint-tcp stream with the echo's bytes.
	w.eventually(10*time.Second, "a TCP entry for the connection", func() error {
		als.mu.Lock()
		defer als.mu.Unlock()
		for _, s := range als.streams {
			if s.id.GetLogName() != "waypoint-tcp" {
				continue
			}
			for _, e := range s.tcp {
				if strings.Contains(e.GetCommonProperties().GetUpstreamCluster(), "9300") && e.GetConnectionProperties().GetReceivedBytes() > 0 {
					return nil
				}
			}
		}
		return fmt.Errorf("no TCP entry for the connection to port 9300")
	})
}
