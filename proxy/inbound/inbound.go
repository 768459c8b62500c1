// Package inbound is the waypoint's HBONE entry: every CONNECT stream the
// HBONE server accepts is one downstream connection to its :authority,
// served by the filter chain of the main_internal listener that matches
// that destination, as istiod lays a waypoint out.
package inbound

import (
	"context"
	"fmt"
	"time"

	"github.com/gowaypoint/waypoint/filters"
	"github.com/gowaypoint/waypoint/protocols/status"
	"github.com/gowaypoint/waypoint/proxy/downstream"
	"github.com/gowaypoint/waypoint/proxy/filterchain"
	"github.com/gowaypoint/waypoint/proxy/hbone"
	"github.com/gowaypoint/waypoint/telemetry/accesslog"
	"github.com/gowaypoint/waypoint/telemetry/metrics"
	"github.com/gowaypoint/waypoint/xds"
)

// MainInternal is the name of the internal listener HBONE streams enter.
const MainInternal = "main_internal"

// noChainMatch is main_internal's no_filter_chain_match: streams no
// filter chain takes (answered 503, flag NR; the HBONE server counts and
// logs the refusal, and closes a connection that keeps sending them).
var noChainMatch = metrics.NoFilterChainMatch(MainInternal)

// Handler serves HBONE streams from the current config. Its fields are set
// before the first stream and read-only afterwards; safe for concurrent
// use. Each stream reads the snapshot once and keeps it to its end.
type Handler struct {
	// Chains serves the chain a stream matches; its Store is the config.
	Chains *filterchain.Server
	// Logs writes the listener's access_log for the streams no filter
	// chain takes (nil: none written).
	Logs *accesslog.Sinks
	// Drain is the drain context: when it is done, the connections the
	// streams carry finish what is in flight and end (HTTP/2 GOAWAY,
	// HTTP/1.1 after its response), while the HBONE server drains the
	// tunnels around them. nil: never. A drain.Context, whose
	// registrations (one per idle stream) leave nothing behind once the
	// stream ends; a context.WithCancel would keep its children map's
	// buckets after a burst.
	Drain context.Context
}

var _ hbone.Handler = (*Handler)(nil)

// ServeHBONE implements hbone.Handler. ctx is the stream's: it ends when
// the stream is reset.
func (h *Handler) ServeHBONE(ctx context.Context, st *hbone.ServerStream) {
	ls := metrics.Listener(MainInternal)
	ls.Connections.Inc()
	ls.Active.Inc()
	a := &stream{st: st, active: ls.Active}
	defer a.handlerDone()
	c := downstream.NewPending(ctx, a, downstreamOf(st))
	c.Target = st.Target
	snap := h.Chains.Store.Load()
	if snap == nil {
		c.Refuse(status.New(status.NoRoute, fmt.Errorf("no config loaded")))
		return
	}
	name := targetListener(snap)
	l := snap.Listener(name)
	if l == nil {
		c.Refuse(status.New(status.NoRoute, fmt.Errorf("no %s listener in config", name)))
		return
	}
	in := xds.MatchInput{Destination: st.Target, Source: st.PeerAddr}
	if l.Sniffs(st.Target) {
		// http_inspector: the stream is answered and read first (sniffed.go).
		p, ok := sniffProtocol(c)
		if !ok {
			return
		}
		in.AppProtocol = p
	}
	fc := l.Match(in)
	if fc == nil {
		noChainMatch.Inc()
		h.noChain(l, st, &c.Info)
		// A stream answered for sniffing is reset.
		c.Refuse(status.New(status.NoRoute, fmt.Errorf("no service or workload matches %s", st.Target)))
		return
	}
	h.Chains.Serve(h.drain(), c, filterchain.Match{Snapshot: snap, Listener: name, Input: in, Chain: fc})
}

func (h *Handler) drain() context.Context {
	if h.Drain != nil {
		return h.Drain
	}
	return context.Background()
}

// noChain writes the listener's access_log for a stream no filter chain
// takes, with Envoy's response flag NR.
func (h *Handler) noChain(l *xds.Listener, st *hbone.ServerStream, info *filters.Downstream) {
	if h.Logs == nil || len(l.AccessLog) == 0 {
		return
	}
	h.Logs.Emit(l.AccessLog, &accesslog.Record{Start: st.Start, Duration: time.Since(st.Start), Downstream: info,
		Flags: filters.FlagNR, Termination: "filter_chain_not_found"})
}

// downstreamOf describes an HBONE stream's downstream connection: the
// peer's identity, the addresses, the :authority, and the baggage header
// the source ztunnel sent (its workload's metadata, for telemetry).
func downstreamOf(st *hbone.ServerStream) filters.Downstream {
	d := filters.Downstream{
		Peer: st.Peer, RemoteAddr: st.PeerAddr, LocalAddr: st.LocalAddr, Destination: st.Target,
		Authority: st.Authority,
	}
	if !st.Peer.IsZero() {
		d.PeerURI = st.Peer.String()
	}
	if st.Header != nil {
		if b, ok := st.Header.Get("baggage"); ok {
			d.Baggage = string(b)
		}
	}
	return d
}

// stream answers an HBONE server stream for a downstream.Conn, and ends
// the stream's count in main_internal's active connections: when the
// handler returns or, for a stream handed on (Detach: an event-driven
// relay, an HTTP connection waiting for its first bytes), when its new
// owner is done with it. Owned by the handler's goroutine.
type stream struct {
	st       *hbone.ServerStream
	active   interface{ Dec() }
	detached bool
}

// Accept answers 200.
func (s *stream) Accept() (downstream.Transport, error) {
	conn, err := s.st.Accept()
	if err != nil {
		return nil, err // not a nil *StreamConn in an interface
	}
	return tunnel{conn, s}, nil
}

func (s *stream) handlerDone() {
	if !s.detached {
		s.active.Dec()
	}
}

// tunnel is an accepted stream: the StreamConn with all it can do
// (event-driven reads, chunks, Detach), its Detach moving the end of the
// active count to the detached stream's end.
type tunnel struct {
	*hbone.StreamConn
	s *stream
}

// Detach implements tcpproxy.Detacher.
func (t tunnel) Detach() (finish func()) {
	f := t.StreamConn.Detach()
	t.s.detached = true
	return func() { f(); t.s.active.Dec() }
}

// Refuse answers err's HBONE status; hbone logs the refusal.
func (s *stream) Refuse(err error) {
	k := status.KindOf(err)
	s.st.RefuseFlag(k.HBONEStatus(), k.ResponseFlag(), err.Error())
}
