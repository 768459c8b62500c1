package hbone

import (
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/gowaypoint/waypoint/protocols/http2"
	"github.com/gowaypoint/waypoint/protocols/l7"
	"github.com/gowaypoint/waypoint/protocols/spiffe"
)

// ServerStream is one CONNECT stream offered to a Handler. Its exported
// fields are read-only and valid until the handler returns. A handler
// answers it once: Refuse, or Accept and then relay bytes through the
// returned StreamConn.
type ServerStream struct {
	// Peer is the verified identity of the HBONE client.
	Peer spiffe.ID
	// PeerAddr and LocalAddr are the two ends of the HBONE TCP connection.
	PeerAddr, LocalAddr netip.AddrPort
	// Authority is the raw :authority; Target is its parsed ip:port.
	Authority string
	Target    netip.AddrPort
	// Header holds the CONNECT request's other fields (baggage, forwarded,
	// traceparent), lower-case.
	Header *l7.Header
	// Start is when the stream's request arrived.
	Start time.Time

	srv      *Server
	ci       *connInfo // nil for a stream made up by a test
	st       *http2.ServerStream
	answered bool
	conn     *StreamConn
	// pc (the peer's count, nil when uncapped) and untrack (the overload
	// manager's tracking, nil when untracked) are released once by
	// release: when the handler returns or, for a detached stream, when
	// its relay finishes.
	pc       *peerCount
	untrack  func()
	detached bool
}

// connInfo is what every stream of one connection shares. Read-only after
// the handshake.
type connInfo struct {
	peer   spiffe.ID
	remote netip.AddrPort
	local  netip.AddrPort
	// Streams refused for the peer's fault and accepted, and whether the
	// connection is being closed for the former (MaxRefusedStreams).
	refused, accepted atomic.Int64
	closing           atomic.Bool
	// pc is the peer's count (limits.go); drain starts the connection's
	// graceful close (GOAWAY; disable_http_keepalive). Nil in tests'
	// made-up streams.
	pc    *peerCount
	drain func()
}

// Refuse answers the stream with an error status, counts it and logs the
// peer, the authority and the reason (at INFO at most once a second per
// kind of refusal, else at debug).
func (st *ServerStream) Refuse(status int, reason string) { st.RefuseFlag(status, "", reason) }

// RefuseFlag is Refuse with the Envoy response flag that describes the
// refusal ("NR", "UF"...; "" for none), for the server's OnRefuse.
func (st *ServerStream) RefuseFlag(status int, flag, reason string) {
	if st.answered {
		return
	}
	st.answered = true
	st.st.WriteHeaders(&l7.Response{Status: status}, true)
	st.srv.refusedStream(st, status, flag, reason)
	if f := st.srv.cfg.OnRefuse; f != nil {
		f(st, status, flag, reason)
	}
}

// Accept answers 200 and returns the stream as a byte stream. Call it only
// once the upstream is up, as ztunnel does.
func (st *ServerStream) Accept() (*StreamConn, error) {
	if st.answered {
		return nil, fmt.Errorf("hbone: stream to %s already answered", st.Authority)
	}
	st.answered = true
	if st.ci != nil {
		st.ci.accepted.Add(1)
	}
	if err := st.st.WriteHeaders(&l7.Response{Status: http.StatusOK}, false); err != nil {
		return nil, err
	}
	st.conn = &StreamConn{st: st.st, owner: st}
	if srv := st.srv; srv.cfg.Overload != nil {
		st.untrack = srv.cfg.Overload.Track(trackedStream{st.st})
		if st.ci != nil && st.ci.drain != nil && srv.rq.DisableKeepAlive() {
			st.ci.drain() // GOAWAY: this stream and the others finish, no new ones
		}
	}
	return st.conn, nil
}

// StreamConn is an accepted CONNECT stream seen as a byte stream: reads
// return what the client sends, writes go to the client. One goroutine may
// read while another writes. Either side can end its half on its own.
type StreamConn struct {
	st *http2.ServerStream
	// readEOF and wroteEnd are set when the client's side reached its
	// end and ours was ended: then Close has nothing to cut.
	readEOF, wroteEnd atomic.Bool
	owner             *ServerStream // nil for a test's
}

// Read reads what the client sent; io.EOF after its END_STREAM.
func (c *StreamConn) Read(p []byte) (int, error) {
	b := c.st.Request().Body
	if b == nil {
		c.readEOF.Store(true)
		return 0, io.EOF
	}
	n, err := b.Read(p)
	if err == io.EOF {
		c.readEOF.Store(true)
	}
	return n, err
}

// WaitRead blocks until Read would not block (relay.ReadWaiter).
func (c *StreamConn) WaitRead() error { return c.st.WaitRead() }

// TryRead is Read without waiting: (0, nil) when nothing has arrived
// (relay.Evented).
func (c *StreamConn) TryRead(p []byte) (int, error) {
	n, err := c.st.TryRead(p)
	if err == io.EOF {
		c.readEOF.Store(true)
	}
	return n, err
}

// TryReadChunk is TryRead without a copy; the caller releases the chunk
// (relay.ChunkReader).
func (c *StreamConn) TryReadChunk() (http2.Chunk, error) {
	ch, err := c.st.TryReadChunk()
	if err == io.EOF {
		c.readEOF.Store(true)
	}
	return ch, err
}

// Failed reports whether the stream's reads fail for good (reset, or its
// connection lost) with nothing left to read (http2.ServerStream.Failed);
// safe from a read notification.
func (c *StreamConn) Failed() bool { return c.st.Failed() }

// SetReadNotify installs fn, called without locks each time input
// arrives or the stream ends or fails; fn must not block (relay.Evented).
func (c *StreamConn) SetReadNotify(fn func()) { c.st.SetReadNotify(fn) }

// Detach lets the Handler return while the stream is relayed on; the
// returned finish must be called once the relay is done with it.
func (c *StreamConn) Detach() (finish func()) {
	f := c.st.Detach()
	if c.owner == nil {
		return f
	}
	c.owner.detached = true
	owner := c.owner
	return func() { owner.release(); f() }
}

// release ends the stream's count against its peer's cap and its
// tracking by the overload manager.
func (st *ServerStream) release() {
	if st.pc != nil {
		st.pc.streams.Add(-1)
		st.pc = nil
	}
	if st.untrack != nil {
		st.untrack()
		st.untrack = nil
	}
}

// Write sends p to the client in DATA frames, blocking on its flow control
// windows.
func (c *StreamConn) Write(p []byte) (int, error) { return c.st.Write(p) }

// WriteVec writes the buffers of bufs in turn, together in one write to
// the connection when the flow control windows allow (relay.VecWriter).
func (c *StreamConn) WriteVec(bufs [][]byte) (int, error) { return c.st.WriteVec(bufs) }

// CloseWrite sends END_STREAM; the client may go on sending.
func (c *StreamConn) CloseWrite() error {
	c.wroteEnd.Store(true)
	return c.st.CloseWrite()
}

// Close ends the stream cleanly: our side with END_STREAM if it is still
// open, and reading stops (a reader blocked on it returns). The client
// sees the end of a tunnel, as a closed TCP connection; Abort is for a
// failed one.
func (c *StreamConn) Close() error {
	if !c.wroteEnd.Swap(true) {
		c.st.CloseWrite()
	}
	if !c.readEOF.Load() {
		c.st.CloseRead()
	}
	return nil
}

// Abort resets the stream, so the client sees a reset, not a truncated
// success.
func (c *StreamConn) Abort() { c.st.Reset(http2.ErrCodeCancel) }

// serveStream handles every stream: it checks the method and authority as
// ztunnel does, then hands the stream to the Handler.
func (s *Server) serveStream(ci *connInfo, hs *http2.ServerStream) {
	req := hs.Request()
	st := &ServerStream{
		Start:     time.Now(),
		Peer:      ci.peer,
		PeerAddr:  ci.remote,
		LocalAddr: ci.local,
		Authority: string(req.Authority),
		Header:    &req.Header,
		srv:       s,
		ci:        ci,
		st:        hs,
	}
	if req.Method != l7.MethodConnect || req.Protocol != "" {
		method := req.Method
		if req.Protocol != "" {
			method += " (" + strconv.Quote(req.Protocol) + ")"
		}
		st.Refuse(http.StatusBadRequest, "method "+method+", want CONNECT")
		return
	}
	target, err := netip.ParseAddrPort(st.Authority)
	if err != nil || target.Port() == 0 {
		st.Refuse(http.StatusBadRequest, "authority is not ip:port")
		return
	}
	st.Target = netip.AddrPortFrom(target.Addr().Unmap(), target.Port())
	if s.rq.Refuse() {
		st.refuseOverloaded()
		return
	}
	if pc := ci.pc; pc != nil && s.cfg.MaxStreamsPerPeer > 0 {
		if pc.streams.Add(1) > int64(s.cfg.MaxStreamsPerPeer) {
			pc.streams.Add(-1)
			s.refusePeerStream(st)
			return
		}
		st.pc = pc
	}
	s.cfg.Handler.ServeHBONE(hs.Context(), st)
	if !st.answered {
		st.Refuse(http.StatusServiceUnavailable, "handler returned without answering")
	}
	if !st.detached {
		st.release()
	}
}
