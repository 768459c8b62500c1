package hbone

import (
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gowaypoint/waypoint/internal/lograte"
	"github.com/gowaypoint/waypoint/protocols/http2"
	"github.com/gowaypoint/waypoint/protocols/l7"
	"github.com/gowaypoint/waypoint/protocols/spiffe"
	"github.com/gowaypoint/waypoint/proxy/overload"
	"github.com/gowaypoint/waypoint/telemetry/metrics"
)

// Per-peer caps: a ztunnel multiplexes many CONNECT streams over few
// connections (one pool per destination and identity), so the defaults
// allow a generous number of streams and fewer connections per source
// identity. A connection past the cap is closed after its handshake
// (counted as waypoint_hbone_refused_connections_total{reason=
// "peer_connection_limit"}); a stream past it is refused 503 and counted
// as waypoint_hbone_refused_streams_total{reason="peer_stream_limit"}.
const (
	DefaultMaxConnectionsPerPeer = 128
	DefaultMaxStreamsPerPeer     = 10000
)

// peerCount is what one source identity holds. Guarded by atomics; the
// entry lives in Server.peers while conns > 0.
type peerCount struct {
	conns   int          // guarded by Server.peersMu
	streams atomic.Int64 // streams open (answered or not, until they end)
}

// peerLimits are a Server's per-peer state and counters.
type peerLimits struct {
	peersMu       sync.Mutex
	peers         map[spiffe.ID]*peerCount // guarded by peersMu
	connRefused   prometheus.Counter
	peerConnLog   lograte.Reason
	peerStreamLog lograte.Reason
	gate          *overload.ConnGate
	rq            *overload.RequestGate
	overloadLog   lograte.Reason
	overloadCount prometheus.Counter
	// peerStreamRefused counts streams past MaxStreamsPerPeer.
	peerStreamRefused prometheus.Counter
}

func (s *Server) initLimits() {
	s.peers = map[spiffe.ID]*peerCount{}
	s.connRefused = metrics.RefusedConnection("peer_connection_limit")
	s.overloadCount = metrics.RefusedStream("overload")
	s.peerStreamRefused = metrics.RefusedStream("peer_stream_limit")
	s.gate = s.cfg.Overload.Listener(s.cfg.StatName)
	s.rq = s.cfg.Overload.HCM(s.cfg.StatName)
}

// acquirePeer counts a connection of peer; nil when the peer is at its
// cap (the connection is then refused).
func (s *Server) acquirePeer(peer spiffe.ID) *peerCount {
	s.peersMu.Lock()
	defer s.peersMu.Unlock()
	pc := s.peers[peer]
	if pc == nil {
		pc = &peerCount{}
		s.peers[peer] = pc
	}
	if s.cfg.MaxConnectionsPerPeer > 0 && pc.conns >= s.cfg.MaxConnectionsPerPeer {
		if pc.conns == 0 {
			delete(s.peers, peer)
		}
		return nil
	}
	pc.conns++
	return pc
}

func (s *Server) releasePeer(peer spiffe.ID, pc *peerCount) {
	s.peersMu.Lock()
	defer s.peersMu.Unlock()
	if pc.conns--; pc.conns == 0 {
		delete(s.peers, peer)
	}
}

// PeerConnections returns how many connections peer holds (for tests and
// the admin).
func (s *Server) PeerConnections(peer spiffe.ID) int {
	s.peersMu.Lock()
	defer s.peersMu.Unlock()
	if pc := s.peers[peer]; pc != nil {
		return pc.conns
	}
	return 0
}

// refuseOverloaded answers a stream 503 with retry-after while the
// overload manager stops accepting requests, as Envoy's local reply.
func (st *ServerStream) refuseOverloaded() {
	st.answered = true
	resp := &l7.Response{Status: http.StatusServiceUnavailable}
	resp.Header.Set("retry-after", overload.RetryAfter)
	st.st.WriteHeaders(resp, true)
	srv := st.srv
	srv.overloadCount.Inc()
	if ok, n := srv.overloadLog.Allow(); ok {
		srv.logRefusal(slog.LevelInfo, st.Peer, st.PeerAddr, st.Authority, http.StatusServiceUnavailable, refusedUnavailable,
			"overloaded (stop_accepting_requests)", n)
	}
	if f := srv.cfg.OnRefuse; f != nil {
		f(st, http.StatusServiceUnavailable, "OL", "overloaded")
	}
}

// trackedStream lets the overload manager reset an accepted tunnel that
// holds the most received bytes.
type trackedStream struct{ st *http2.ServerStream }

func (t trackedStream) BufferedBytes() int { return t.st.Buffered() }
func (t trackedStream) Reset()             { t.st.Reset(http2.ErrCodeCancel) }

// refusePeerStream refuses a stream past its peer's stream cap: 503,
// counted as peer_stream_limit, not towards MaxRefusedStreams (the peer
// may be a ztunnel with many legitimate clients).
func (s *Server) refusePeerStream(st *ServerStream) {
	st.answered = true
	st.st.WriteHeaders(&l7.Response{Status: http.StatusServiceUnavailable}, true)
	s.peerStreamRefused.Inc()
	if ok, n := s.peerStreamLog.Allow(); ok {
		s.logRefusal(slog.LevelInfo, st.Peer, st.PeerAddr, st.Authority, http.StatusServiceUnavailable, refusedUnavailable,
			"per-peer stream limit", n)
	}
	if f := s.cfg.OnRefuse; f != nil {
		f(st, http.StatusServiceUnavailable, "UO", "per-peer stream limit")
	}
}
