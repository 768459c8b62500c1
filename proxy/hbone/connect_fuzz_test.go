package hbone

import (
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"testing"
	"time"

	xhttp2 "golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/gowaypoint/waypoint/protocols/http2"
	"github.com/gowaypoint/waypoint/protocols/spiffe"
)

// fuzzBound bounds each wait of a fuzz iteration; only a hang reaches it.
const fuzzBound = 10 * time.Second

// FuzzConnectStream sends a CONNECT request with fuzzed pseudo-headers
// (empty means absent), extra fields (extra: name NUL value NUL ...) and
// a body on stream 1, then a valid CONNECT on stream 3, to the server's
// stream handler (serveStream, as serveConn runs it after the TLS
// handshake) on a net.Pipe; the handler accepts every stream it is given
// and echoes it. Nothing may panic; stream 1 is answered 200 only if it
// is a CONNECT to an ip:port that reached the handler with that target,
// else it is refused or reset; stream 3 always tunnels; the connection
// ends with every goroutine once the client closes. The seed corpus is
// real CONNECTs (ztunnel's: authority ip:port, baggage, traceparent,
// forwarded) and testdata/fuzz/FuzzConnectStream.
func FuzzConnectStream(f *testing.F) {
	f.Add("CONNECT", "10.0.0.1:8080", "", "", "", []byte("baggage\x00k8s.namespace.name=ns1\x00traceparent\x0000-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\x00"), []byte("GET / HTTP/1.1\r\n\r\n"))
	f.Add("CONNECT", "[fd00::1]:15008", "", "", "", []byte("forwarded\x00for=10.0.0.2\x00"), []byte{})
	f.Add("CONNECT", "[::ffff:10.0.0.1]:80", "", "", "", []byte{}, []byte("x"))
	f.Add("CONNECT", "10.0.0.1:0", "", "", "", []byte{}, []byte{})
	f.Add("CONNECT", "svc.ns.svc.cluster.local:80", "", "", "", []byte{}, []byte{})
	f.Add("CONNECT", "10.0.0.1:8080", "websocket", "http", "/", []byte{}, []byte{})
	f.Add("GET", "10.0.0.1:8080", "", "http", "/", []byte{}, []byte{})
	f.Add("CONNECT", "10.0.0.1:8080", "", "", "", []byte("Upper\x00x\x00connection\x00close\x00"), []byte{})
	f.Add("CONNECT", "", "", "", "", []byte("host\x0010.0.0.1:80\x00"), []byte{})

	var mu sync.Mutex
	seen := map[uint32]netip.AddrPort{} // stream id: the target the handler saw
	srv, err := NewServer(ServerConfig{
		TLS:          &tls.Config{},
		PeerIdentity: func(tls.ConnectionState) (spiffe.ID, error) { return clientID, nil },
		Logger:       quiet(),
		Handler: HandlerFunc(func(ctx context.Context, st *ServerStream) {
			mu.Lock()
			seen[st.st.ID()] = st.Target
			mu.Unlock()
			c, err := st.Accept()
			if err != nil {
				return
			}
			io.Copy(c, c)
			c.Close()
		}),
	})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, method, authority, protocol, scheme, path string, extra, body []byte) {
		mu.Lock()
		clear(seen)
		mu.Unlock()
		base := runtime.NumGoroutine()
		cli, sc := net.Pipe()
		served := make(chan error, 1)
		go func() {
			pc := srv.acquirePeer(clientID)
			defer srv.releasePeer(clientID, pc)
			ctx, drain := context.WithCancel(srv.ctx)
			defer drain()
			ci := &connInfo{peer: clientID, pc: pc, drain: drain}
			served <- http2.ServeConn(ctx, sc, srv.h2, http2.HandlerFunc(func(st *http2.ServerStream) { srv.serveStream(ci, st) }))
		}()

		var block bytes.Buffer
		enc := hpack.NewEncoder(&block)
		for _, p := range [][2]string{{":method", method}, {":scheme", scheme}, {":authority", authority}, {":path", path}, {":protocol", protocol}} {
			if p[1] != "" {
				enc.WriteField(hpack.HeaderField{Name: p[0], Value: p[1]})
			}
		}
		fields := bytes.Split(extra, []byte{0})
		for i := 0; i+1 < len(fields); i += 2 {
			enc.WriteField(hpack.HeaderField{Name: string(fields[i]), Value: string(fields[i+1])})
		}
		fuzzed := append([]byte(nil), block.Bytes()...)
		block.Reset()
		enc.WriteField(hpack.HeaderField{Name: ":method", Value: "CONNECT"})
		enc.WriteField(hpack.HeaderField{Name: ":authority", Value: "10.1.2.3:9090"})
		valid := block.Bytes()
		if len(body) > 8192 {
			body = body[:8192]
		}

		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			fr := xhttp2.NewFramer(cli, nil)
			if _, err := io.WriteString(cli, xhttp2.ClientPreface); err != nil {
				return
			}
			_ = fr.WriteSettings()
			_ = fr.WriteHeaders(xhttp2.HeadersFrameParam{StreamID: 1, BlockFragment: fuzzed, EndHeaders: true})
			_ = fr.WriteData(1, true, body)
			_ = fr.WriteHeaders(xhttp2.HeadersFrameParam{StreamID: 3, BlockFragment: valid, EndHeaders: true})
			_ = fr.WriteData(3, true, []byte("ping"))
		}()

		// Read until both streams have ended (or the connection).
		type result struct {
			status   string
			data     []byte
			ended    bool
			reset    bool
			trailers bool
		}
		res := map[uint32]*result{1: {}, 3: {}}
		var goAway *xhttp2.GoAwayFrame
		watchdog := time.AfterFunc(fuzzBound, func() { cli.Close() })
		dec := hpack.NewDecoder(4096, nil)
		fr := xhttp2.NewFramer(nil, cli)
		fr.ReadMetaHeaders = dec
		for !(res[1].ended && res[3].ended) && goAway == nil {
			f, err := fr.ReadFrame()
			if err != nil {
				break
			}
			r := res[f.Header().StreamID]
			switch f := f.(type) {
			case *xhttp2.MetaHeadersFrame:
				if r == nil {
					t.Fatalf("HEADERS on stream %d", f.StreamID)
				}
				if r.status == "" {
					r.status = f.PseudoValue("status")
				}
				r.ended = r.ended || f.StreamEnded()
			case *xhttp2.DataFrame:
				if r != nil {
					r.data = append(r.data, f.Data()...)
					r.ended = r.ended || f.StreamEnded()
				}
			case *xhttp2.RSTStreamFrame:
				if r != nil {
					r.reset, r.ended = true, true
				}
			case *xhttp2.GoAwayFrame:
				goAway = f
			}
		}
		cli.Close()
		if !watchdog.Stop() {
			t.Fatalf("the streams did not end within %v: %+v %+v", fuzzBound, *res[1], *res[3])
		}
		wg.Wait()
		select {
		case <-served:
		case <-time.After(fuzzBound):
			buf := make([]byte, 1<<20)
			t.Fatalf("ServeConn did not return after the client closed:\n%s", buf[:runtime.Stack(buf, true)])
		}
		for deadline := time.Now().Add(fuzzBound); runtime.NumGoroutine() > base; time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				t.Fatalf("goroutines left over:\n%s", buf[:runtime.Stack(buf, true)])
			}
		}

		if goAway != nil {
			t.Fatalf("connection closed (GOAWAY %v %q) over one bad stream", goAway.ErrCode, goAway.DebugData())
		}
		if r := res[3]; r.status != "200" || string(r.data) != "ping" || r.reset {
			t.Fatalf("the valid CONNECT after it: status %q data %q reset %v", r.status, r.data, r.reset)
		}
		mu.Lock()
		target, handled := seen[1]
		mu.Unlock()
		r := res[1]
		switch r.status {
		case "200":
			eff := authority // the engine takes a host field for an absent :authority
			for i := 0; eff == "" && i+1 < len(fields); i += 2 {
				if string(fields[i]) == "host" {
					eff = string(fields[i+1])
				}
			}
			want, err := netip.ParseAddrPort(eff)
			if !handled || method != "CONNECT" || protocol != "" || err != nil || want.Port() == 0 ||
				target != netip.AddrPortFrom(want.Addr().Unmap(), want.Port()) {
				t.Fatalf("200 for %s %q (protocol %q): handler saw %v (%v)", method, authority, protocol, target, handled)
			}
			if !r.reset && string(r.data) != string(body) {
				t.Fatalf("the tunnel echoed %d bytes of %d", len(r.data), len(body))
			}
		case "":
			if !r.reset {
				t.Fatalf("stream 1 neither answered nor reset")
			}
		default:
			if handled {
				t.Fatalf("status %s for a stream the handler accepted", r.status)
			}
		}
	})
}
