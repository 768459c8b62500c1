package hbone

import (
	"context"
	"io"
	"testing"
	"time"

	xhttp2 "golang.org/x/net/http2"

	"github.com/gowaypoint/waypoint/protocols/http2"
	"github.com/gowaypoint/waypoint/proxy/certs"
)

// TestH2ConnectionErrorInsideTunnel: an HTTP/2 server running inside a
// tunnel ends its connection with GOAWAY; the client of the tunnel gets the
// GOAWAY, then a clean end of stream.
func TestH2ConnectionErrorInsideTunnel(t *testing.T) {
	m := newMesh(t)
	_, addr := startServer(t, m, "127.0.7.22", HandlerFunc(func(ctx context.Context, st *ServerStream) {
		c, err := st.Accept()
		if err != nil {
			return
		}
		http2.ServeConn(ctx, c, http2.Config{}, http2.HandlerFunc(func(*http2.ServerStream) {}))
	}), nil)
	p := newPool(t, nil)
	st, err := p.Connect(context.Background(), dest(m.source(t, clientID), addr, certs.PeerExpectation{ID: serverID}))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	st.Write([]byte(xhttp2.ClientPreface))
	fr := xhttp2.NewFramer(st, st)
	fr.WriteSettings()
	fr.WriteData(1, true, []byte("oops")) // DATA on an idle stream: a connection error
	deadline := time.Now().Add(10 * time.Second)
	sawGoAway := false
	for time.Now().Before(deadline) {
		f, err := fr.ReadFrame()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("after %v: %v", sawGoAway, err)
		}
		t.Logf("frame %v", f.Header())
		if _, ok := f.(*xhttp2.GoAwayFrame); ok {
			sawGoAway = true
		}
	}
	if !sawGoAway {
		t.Fatal("no GOAWAY before the end of the tunnel")
	}
}
