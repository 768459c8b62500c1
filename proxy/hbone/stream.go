package hbone

import (
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"sync/atomic"

	"github.com/gowaypoint/waypoint/protocols/spiffe"
)

// ServerStream is one CONNECT stream offered to a Handler. Its exported
// fields are read-only. A handler answers it once: Refuse, or Accept and
// then relay bytes through the returned StreamConn.
type ServerStream struct {
	// Peer is the verified identity of the HBONE client.
	Peer spiffe.ID
	// PeerAddr and LocalAddr are the two ends of the HBONE TCP connection.
	PeerAddr, LocalAddr netip.AddrPort
	// Authority is the raw :authority; Target is its parsed ip:port.
	Authority string
	Target    netip.AddrPort
	// Header holds the CONNECT request's other headers (baggage,
	// forwarded, traceparent).
	Header http.Header

	srv      *Server
	w        http.ResponseWriter
	body     io.ReadCloser
	answered bool
	conn     *StreamConn
}

// Refuse answers the stream with an error status and logs the peer, the
// authority and the reason, as every refusal must.
func (st *ServerStream) Refuse(status int, reason string) {
	if st.answered {
		return
	}
	st.answered = true
	st.srv.logRefusal(st.Peer, st.PeerAddr, st.Authority, status, reason)
	st.w.WriteHeader(status)
}

// Accept answers 200 and returns the stream as a byte stream. Call it only
// once the upstream is up, as ztunnel does.
func (st *ServerStream) Accept() (*StreamConn, error) {
	if st.answered {
		return nil, fmt.Errorf("hbone: stream to %s already answered", st.Authority)
	}
	st.answered = true
	st.w.WriteHeader(http.StatusOK)
	f, ok := st.w.(http.Flusher)
	if !ok {
		return nil, fmt.Errorf("hbone: response writer cannot flush")
	}
	f.Flush()
	st.conn = &StreamConn{w: st.w, f: f, body: st.body}
	return st.conn, nil
}

// StreamConn is an accepted CONNECT stream seen as a byte stream: reads
// return what the client sends, writes go to the client. One goroutine may
// read while another writes. It ends when the Handler returns: cleanly, or
// with RST_STREAM after Abort.
type StreamConn struct {
	w       http.ResponseWriter
	f       http.Flusher
	body    io.ReadCloser
	aborted atomic.Bool
}

// Read reads what the client sent; io.EOF after its END_STREAM.
func (c *StreamConn) Read(p []byte) (int, error) { return c.body.Read(p) }

// Write sends p to the client in DATA frames, flushed before it returns.
func (c *StreamConn) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	if err != nil {
		return n, err
	}
	c.f.Flush()
	return n, nil
}

// CloseWrite notes the end of our side. x/net/http2's server sends
// END_STREAM only when the handler returns, which the handler does once both
// directions are done.
func (c *StreamConn) CloseWrite() error { return nil }

// Close stops reading the client's data; the stream ends when the handler
// returns.
func (c *StreamConn) Close() error { return c.body.Close() }

// Abort makes the stream end with RST_STREAM instead of END_STREAM, so the
// client sees a reset, not a truncated success.
func (c *StreamConn) Abort() {
	c.aborted.Store(true)
	c.body.Close()
}

func (s *Server) logRefusal(peer spiffe.ID, remote netip.AddrPort, authority string, status int, reason string) {
	s.log.Info("hbone: refused stream", "peer", peer.String(), "remote", remote, "authority", authority, "status", status, "reason", reason)
}

// serveStream is the http.Handler for every stream: it checks the method
// and authority as ztunnel does, then hands the stream to the Handler.
func (s *Server) serveStream(w http.ResponseWriter, r *http.Request) {
	ci, _ := r.Context().Value(connInfoKey{}).(*connInfo)
	if ci == nil {
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	s.streams.Add(1)
	defer s.streams.Done()

	st := &ServerStream{
		Peer:      ci.peer,
		PeerAddr:  ci.remote,
		LocalAddr: ci.local,
		Authority: r.Host,
		Header:    r.Header,
		srv:       s,
		w:         w,
		body:      r.Body,
	}
	if r.Method != http.MethodConnect {
		st.Refuse(http.StatusBadRequest, "method "+r.Method+", want CONNECT")
		return
	}
	target, err := netip.ParseAddrPort(r.Host)
	if err != nil || target.Port() == 0 {
		st.Refuse(http.StatusBadRequest, "authority is not ip:port")
		return
	}
	st.Target = netip.AddrPortFrom(target.Addr().Unmap(), target.Port())
	s.cfg.Handler.ServeHBONE(r.Context(), st)
	if !st.answered {
		st.Refuse(http.StatusServiceUnavailable, "handler returned without answering")
	}
	if st.conn != nil && st.conn.aborted.Load() {
		// x/net/http2 turns this panic into RST_STREAM without logging it.
		panic(http.ErrAbortHandler)
	}
}
