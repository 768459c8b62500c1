package inbound

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/gowaypoint/waypoint/protocols/spiffe"
	"github.com/gowaypoint/waypoint/proxy/certs"
	"github.com/gowaypoint/waypoint/proxy/filterchain/chaintest"
	"github.com/gowaypoint/waypoint/proxy/hbone"
	"github.com/gowaypoint/waypoint/proxy/hbone/hbonetest"
	"github.com/gowaypoint/waypoint/telemetry/metrics"
)

// activeStreams is main_internal's envoy_listener_downstream_cx_active.
func activeStreams(t *testing.T) float64 {
	var m dto.Metric
	if err := metrics.Listener(MainInternal).Active.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetGauge().GetValue()
}

// TestStreamWaitingForItsFirstBytes: a CONNECT stream on an HTTP chain
// that has sent nothing waits without a goroutine (httpconn.Start); its
// first bytes, its reset and the drain each end the wait, and the
// listener's active count ends with the stream, not with the handler.
func TestStreamWaitingForItsFirstBytes(t *testing.T) {
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
	tests := []struct {
		name string
		// act does something to the waiting stream (w writes to it, reset
		// resets it, drain starts the drain) and checks the outcome on r.
		act func(t *testing.T, w io.Writer, r *bufio.Reader, reset, drain func())
	}{
		{"request", func(t *testing.T, w io.Writer, r *bufio.Reader, reset, drain func()) {
			io.WriteString(w, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
			resp, err := http.ReadResponse(r, nil)
			if err != nil || resp.StatusCode != 200 {
				t.Fatalf("request after the wait: %v %v", resp, err)
			}
			io.Copy(io.Discard, resp.Body)
		}},
		{"h2c preface", func(t *testing.T, w io.Writer, r *bufio.Reader, reset, drain func()) {
			io.WriteString(w, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
			// The server's SETTINGS frame: 9 bytes of header, type 4.
			var hdr [9]byte
			if _, err := io.ReadFull(r, hdr[:]); err != nil || hdr[3] != 4 {
				t.Fatalf("h2c after the wait: % x %v, want a SETTINGS frame", hdr, err)
			}
		}},
		{"reset", func(t *testing.T, w io.Writer, r *bufio.Reader, reset, drain func()) {
			reset()
			if _, err := r.ReadByte(); err == nil || err == io.EOF {
				t.Errorf("reset stream: %v, want an error", err)
			}
		}},
		{"drain", func(t *testing.T, w io.Writer, r *bufio.Reader, reset, drain func()) {
			drain()
			if _, err := r.ReadByte(); err != io.EOF {
				t.Errorf("waiting stream after the drain began: %v, want its end (EOF)", err)
			}
		}},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			chains, _ := chaintest.Server(t, internalConfig)
			drain, startDrain := context.WithCancel(context.Background())
			defer startDrain()
			srv, err := hbone.NewServer(hbone.ServerConfig{TLS: source(waypoint).ServerTLSConfig(), PeerIdentity: certs.PeerIdentity,
				Handler: &Handler{Chains: chains, Drain: drain}, Logger: chains.Log})
			if err != nil {
				t.Fatal(err)
			}
			ln, err := net.Listen("tcp", net.JoinHostPort("127.78.2."+string(rune('2'+i)), "0"))
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
			before := activeStreams(t)
			cc := hbonetest.ClientConn(t, ln.Addr().String(), source(client).ClientTLSConfig(certs.PeerExpectation{ID: waypoint}))
			pr, pw := io.Pipe()
			defer pw.Close()
			tunnel, err := cc.RoundTrip(hbonetest.Connect("10.1.0.1:8080", pr))
			if err != nil || tunnel.StatusCode != 200 {
				t.Fatalf("CONNECT: %v %v", tunnel, err)
			}
			defer tunnel.Body.Close()
			if got := activeStreams(t); got != before+1 {
				t.Errorf("active streams while waiting: %v, want %v", got, before+1)
			}
			// A request body that fails is reset (RST_STREAM CANCEL).
			reset := func() { pw.CloseWithError(errors.New("client gone")) }
			tc.act(t, pw, bufio.NewReader(tunnel.Body), reset, startDrain)
			reset()
			// The stream's end is the server's, after the client's: wait for it.
			deadline := time.Now().Add(10 * time.Second)
			for activeStreams(t) != before && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			if got := activeStreams(t); got != before {
				t.Errorf("active streams after the stream ended: %v, want %v", got, before)
			}
		})
	}
}
