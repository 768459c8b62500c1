// Package peerbudget keeps, per downstream peer (the SPIFFE identity of
// an HBONE client), a budget of requests reset before their response: a
// token bucket of Rate resets a second with a burst of Burst. A peer that
// overdraws it has its HBONE connections closed (GOAWAY, then closed after
// a grace) and new ones refused for Penalty. It bounds what a client that
// cancels every request (HTTP/2 rapid reset inside tunnels, reconnecting
// as fast as it can) makes the waypoint do upstream, which the per
// connection rapid-reset defence of protocols/http2 does not: that one
// closes a connection, and the client opens the next.
//
// The connection manager (proxy/httpconn) reports each reset (Reset); the
// HBONE server (proxy/hbone, ServerConfig.PeerGate) admits each connection
// (Admit) and gives the means to close it. Counters (Prometheus, at
// /stats/prometheus):
//
//	waypoint_downstream_rq_reset_before_response_total   requests reset by the downstream before their response
//	waypoint_peer_reset_budget_exceeded_total            times a peer overdrew its budget (its connections closed, new ones refused)
//	waypoint_peer_reset_budget_closed_connections_total  HBONE connections closed because their peer overdrew
//	waypoint_peer_reset_budget_refused_connections_total HBONE connections refused during a peer's penalty
//
// Each overdraft and each refusal is logged at debug; at INFO at most one
// line a second of each, with the count held back (internal/lograte).
package peerbudget

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gowaypoint/waypoint/internal/lograte"
	"github.com/gowaypoint/waypoint/protocols/spiffe"
	"github.com/gowaypoint/waypoint/telemetry/stats"
)

// Defaults of Config. A ztunnel carries every client of a node under the
// client's own identity; 200 resets a second, 1,000 at once, is far above
// what clients that cancel for their own reasons (timeouts, users
// leaving) do, and far below a flood's tens of thousands.
const (
	DefaultRate    = 200
	DefaultBurst   = 1000
	DefaultPenalty = 10 * time.Second
	// sweepAbove is the number of peers kept past which Admit forgets the
	// ones with no connection, no penalty and a full bucket.
	sweepAbove = 4096
)

var (
	resetsTotal   = stats.NewCounter(prometheus.CounterOpts{Name: "waypoint_downstream_rq_reset_before_response_total", Help: "Requests reset by the downstream before their response."})
	exceededTotal = stats.NewCounter(prometheus.CounterOpts{Name: "waypoint_peer_reset_budget_exceeded_total", Help: "Times a peer overdrew its budget of requests reset before their response."})
	closedTotal   = stats.NewCounter(prometheus.CounterOpts{Name: "waypoint_peer_reset_budget_closed_connections_total", Help: "HBONE connections closed because their peer overdrew its reset budget."})
	refusedTotal  = stats.NewCounter(prometheus.CounterOpts{Name: "waypoint_peer_reset_budget_refused_connections_total", Help: "HBONE connections refused during their peer's reset-budget penalty."})
)

// Config configures a Budget; zero fields take the defaults above.
type Config struct {
	Rate    float64       // resets per second a peer may make; default DefaultRate
	Burst   int           // resets a peer may make at once; default DefaultBurst
	Penalty time.Duration // how long an overdrawn peer's connections are refused; default DefaultPenalty
	Logger  *slog.Logger  // default slog.Default()
}

// Budget is the per-peer reset budget. Safe for concurrent use; its state
// is a map of the peers seen, each a few words and its open connections,
// forgotten once idle (past sweepAbove peers).
type Budget struct {
	cfg Config
	now func() time.Time // time.Now; tests set it

	mu    sync.Mutex
	peers map[spiffe.ID]*peer

	overLog, refusedLog lograte.Reason
}

type peer struct {
	tokens float64
	last   time.Time // when tokens was last brought up to date
	until  time.Time // end of the penalty; zero: none
	conns  map[*conn]struct{}
}

// conn is one admitted connection.
type conn struct{ close func() }

// New returns a Budget of cfg.
func New(cfg Config) *Budget {
	if cfg.Rate <= 0 {
		cfg.Rate = DefaultRate
	}
	if cfg.Burst <= 0 {
		cfg.Burst = DefaultBurst
	}
	if cfg.Penalty <= 0 {
		cfg.Penalty = DefaultPenalty
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Budget{cfg: cfg, now: time.Now, peers: make(map[spiffe.ID]*peer)}
}

// peerLocked returns id's state, made with a full bucket. b.mu is held.
func (b *Budget) peerLocked(id spiffe.ID, now time.Time) *peer {
	p := b.peers[id]
	if p == nil {
		p = &peer{tokens: float64(b.cfg.Burst), last: now}
		b.peers[id] = p
	}
	return p
}

// refillLocked brings p's tokens up to now. b.mu is held.
func (b *Budget) refillLocked(p *peer, now time.Time) {
	if d := now.Sub(p.last); d > 0 {
		p.tokens = min(float64(b.cfg.Burst), p.tokens+d.Seconds()*b.cfg.Rate)
		p.last = now
	}
}

// Reset takes note that a request of peer id was reset by the downstream
// before its response. When that overdraws the peer's budget, its
// connections are closed and new ones refused for the penalty; Reset
// returns true then (only for the reset that overdrew). A zero id (a
// plaintext listener's connection) is not budgeted.
func (b *Budget) Reset(id spiffe.ID) (overdrawn bool) {
	resetsTotal.Inc()
	if id.IsZero() {
		return false
	}
	now := b.now()
	b.mu.Lock()
	p := b.peerLocked(id, now)
	b.refillLocked(p, now)
	if now.Before(p.until) {
		b.mu.Unlock()
		return false // already penalized: its connections are closing
	}
	if p.tokens >= 1 {
		p.tokens--
		b.mu.Unlock()
		return false
	}
	p.until = now.Add(b.cfg.Penalty)
	var closes []func()
	for c := range p.conns {
		closes = append(closes, c.close)
	}
	clear(p.conns)
	b.mu.Unlock()
	exceededTotal.Inc()
	closedTotal.Add(float64(len(closes)))
	b.logf(&b.overLog, "peerbudget: peer overdrew its budget of requests reset before their response; its connections are closed",
		id, slog.Int("connections", len(closes)), slog.Duration("penalty", b.cfg.Penalty))
	for _, close := range closes {
		close()
	}
	return true
}

// Admit admits a new connection of peer id after its handshake, or
// refuses it (false) while the peer serves a penalty. closeConn closes the
// connection (the HBONE server sends GOAWAY and closes it after a grace);
// it is called at most once, on the goroutine of the Reset that overdrew,
// and must not block. The caller calls release when the connection ends.
// Admit implements proxy/hbone's PeerGate.
func (b *Budget) Admit(id spiffe.ID, closeConn func()) (release func(), ok bool) {
	now := b.now()
	b.mu.Lock()
	if len(b.peers) > sweepAbove {
		b.sweepLocked(now)
	}
	p := b.peerLocked(id, now)
	if now.Before(p.until) {
		left := p.until.Sub(now)
		b.mu.Unlock()
		refusedTotal.Inc()
		b.logf(&b.refusedLog, "peerbudget: connection refused: its peer overdrew its budget of requests reset before their response",
			id, slog.Duration("penalty_left", left))
		return nil, false
	}
	c := &conn{close: closeConn}
	if p.conns == nil {
		p.conns = make(map[*conn]struct{})
	}
	p.conns[c] = struct{}{}
	b.mu.Unlock()
	return func() {
		b.mu.Lock()
		delete(p.conns, c)
		b.mu.Unlock()
	}, true
}

// sweepLocked forgets the peers with no connection whose bucket is full
// and whose penalty is over. b.mu is held.
func (b *Budget) sweepLocked(now time.Time) {
	for id, p := range b.peers {
		b.refillLocked(p, now)
		if len(p.conns) == 0 && !now.Before(p.until) && p.tokens >= float64(b.cfg.Burst) {
			delete(b.peers, id)
		}
	}
}

// Penalized reports whether peer id serves a penalty now.
func (b *Budget) Penalized(id spiffe.ID) bool {
	now := b.now()
	b.mu.Lock()
	defer b.mu.Unlock()
	p := b.peers[id]
	return p != nil && now.Before(p.until)
}

// logf writes a line at debug, and at INFO when r allows it, with the
// count held back.
func (b *Budget) logf(r *lograte.Reason, msg string, id spiffe.ID, attrs ...slog.Attr) {
	log := b.cfg.Logger
	if ok, suppressed := r.Allow(); ok {
		args := []any{slog.String("peer", id.String()), slog.Uint64("suppressed", suppressed)}
		for _, a := range attrs {
			args = append(args, a)
		}
		log.Info(msg, args...)
		return
	}
	if log.Enabled(context.Background(), slog.LevelDebug) {
		args := []any{slog.String("peer", id.String())}
		for _, a := range attrs {
			args = append(args, a)
		}
		log.Debug(msg, args...)
	}
}
