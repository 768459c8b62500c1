// Package httpconn is the HTTP connection manager: it runs one downstream
// connection (an HBONE tunnel's byte stream, or a TCP connection of a
// plaintext listener) through an HttpConnectionManager's config. It picks
// the codec (HTTP/1.1, or HTTP/2 by its preface), applies the manager's
// request handling (path normalization, x-request-id, x-forwarded-*), runs
// each request through the filter chain, renders local replies in the
// request's protocol, writes the response and relays upgraded streams.
package httpconn

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/gowaypoint/waypoint/filters"
	"github.com/gowaypoint/waypoint/protocols/l7"
	"github.com/gowaypoint/waypoint/protocols/sniff"
	"github.com/gowaypoint/waypoint/protocols/spiffe"
	"github.com/gowaypoint/waypoint/proxy/downstream"
	"github.com/gowaypoint/waypoint/proxy/overload"
	"github.com/gowaypoint/waypoint/xds"
)

// Env is what every HTTP connection shares. Its exported fields are set
// before the first connection and read-only afterwards; safe for
// concurrent use.
type Env struct {
	Log *slog.Logger
	// Telemetry receives every stream's metrics, access log and spans;
	// nil reports nothing.
	Telemetry *Telemetry
	// Resets, when set, is told of each HTTP/2 request the downstream
	// reset before its response, with the peer's identity
	// (proxy/peerbudget.Budget; docs/hardening.md, "Amplification").
	Resets ResetReporter
	// Overload, when set, refuses requests (stop_accepting_requests: 503
	// with retry-after, flag OM) and ends connections after their
	// response (disable_http_keepalive: HTTP/1.1 "connection: close",
	// HTTP/2 GOAWAY), counted per stat_prefix as Envoy does. The caller
	// owns it; set before the first connection.
	Overload *overload.Manager

	// gates holds the overload request gate of each stat_prefix seen.
	gatesMu sync.RWMutex
	gates   map[string]*overload.RequestGate
}

// gate returns the overload request gate of the connection manager with
// prefix; nil (a gate that refuses nothing) without an overload manager.
// Allocation-free once the prefix has been seen.
func (e *Env) gate(prefix string) *overload.RequestGate {
	if e.Overload == nil {
		return nil
	}
	e.gatesMu.RLock()
	g := e.gates[prefix]
	e.gatesMu.RUnlock()
	if g != nil {
		return g
	}
	e.gatesMu.Lock()
	defer e.gatesMu.Unlock()
	if g = e.gates[prefix]; g == nil {
		if e.gates == nil {
			e.gates = make(map[string]*overload.RequestGate)
		}
		g = e.Overload.HCM(prefix)
		e.gates[prefix] = g
	}
	return g
}

// ResetReporter takes note of a request reset by the downstream before its
// response. Called on the stream's goroutine; must not block.
type ResetReporter interface {
	Reset(peer spiffe.ID) (overdrawn bool)
}

// conn is one downstream connection's state, owned by its goroutine.
type conn struct {
	env  *Env
	src  *Source
	hcm  *xds.HTTPConnectionManager // at accept: codec settings and limits
	rw   *downstream.Conn
	down *filters.Downstream // &rw.Info
	ctx  context.Context     // the drain context

	// idle says whether an HTTP/1.1 connection waits for its next
	// request, for the drain (http1.go): shared with the drain's callback.
	idle atomic.Int32
	// drainH2 starts an HTTP/2 connection's graceful close (GOAWAY);
	// set before its streams start when there is an overload manager.
	drainH2   context.CancelFunc
	h2Drained atomic.Bool // drainH2 was called for disable_http_keepalive
	// draining is set when max_connection_duration passed on an HTTP/1.1
	// connection: its next response is its last (timers.go).
	draining atomic.Bool
	// preface holds the bytes read to tell HTTP/2 under AUTO, replayed
	// from here.
	preface [len(sniff.Preface)]byte
}

// Serve runs dc through the HttpConnectionManager src gives until the
// connection ends. Each request takes the config current when it starts
// and keeps it to its end; when the config no longer has an HTTP chain for
// this connection, the connection is closed after the request in flight.
//
// ctx is the drain context. Once it is done, an HTTP/2 connection sends
// GOAWAY and ends when its streams have (http2.ServeConn's graceful
// shutdown), and an HTTP/1.1 connection ends after the response in flight,
// or at once if it is waiting for its next request. Requests never see it:
// their contexts carry its values only.
//
// The caller owns dc and closes it after Serve returns; Serve may close it
// before (HTTP/2 closes its connection when it ends, a drain closes an
// idle HTTP/1.1 one).
func Serve(ctx context.Context, dc *downstream.Conn, src *Source, env *Env) {
	b := src.current()
	if b.hcm == nil {
		return
	}
	c := &conn{env: env, src: src, hcm: b.hcm, rw: dc, down: &dc.Info, ctx: ctx}
	switch c.hcm.Codec {
	case xds.CodecHTTP1:
		c.serveHTTP1()
	case xds.CodecHTTP2:
		c.serveHTTP2()
	default:
		isH2, prefix, err := detectPreface(dc, c.preface[:])
		if err != nil && len(prefix) == 0 {
			return
		}
		dc.Unread(prefix)
		if isH2 {
			c.serveHTTP2()
		} else {
			c.serveHTTP1()
		}
	}
}

// detectPreface reads into buf (len(sniff.Preface) bytes) until the bytes
// differ from the HTTP/2 preface or complete it; it returns what it read
// for replay.
func detectPreface(r io.Reader, buf []byte) (bool, []byte, error) {
	n := 0
	for n < len(buf) {
		m, err := r.Read(buf[n:])
		n += m
		if string(buf[:n]) != sniff.Preface[:n] {
			return false, buf[:n], nil
		}
		if err != nil {
			return false, buf[:n], err
		}
	}
	return true, buf, nil
}

// prepare applies the connection manager's request handling before the
// filters run; false when the request must be refused with 400.
func (c *conn) prepare(hcm *xds.HTTPConnectionManager, s *filters.Stream, req *l7.Request) bool {
	if !normalizePath(req, hcm) {
		return false
	}
	h := &req.Header
	if hcm.GenerateRequestID {
		if !h.Has("x-request-id") || (hcm.UseRemoteAddress && !hcm.PreserveExternalRequestID) {
			var id [36]byte
			h.SetBytes("x-request-id", newUUID(&id))
		}
	}
	if !hcm.UseRemoteAddress {
		s.RemoteAddr = trustedXFF(h, hcm.XFFNumTrustedHops)
	}
	if hcm.UseRemoteAddress {
		if !hcm.SkipXFFAppend && c.down.RemoteAddr.IsValid() {
			appendXFF(h, c.down.RemoteAddr.Addr().String())
		}
		h.Set("x-forwarded-proto", "http")
	} else if !h.Has("x-forwarded-proto") {
		h.Add("x-forwarded-proto", "http")
	}
	return true
}

// trustedXFF is the downstream address Envoy trusts when
// use_remote_address is false: the address xff_num_trusted_hops from the
// right end of the last x-forwarded-for (zero when there is none, or it is
// not an IP address: then the connection's peer is the remote address).
func trustedXFF(h *l7.Header, trustedHops uint32) netip.AddrPort {
	var v []byte
	for _, f := range h.Fields() {
		if string(f.Name) == "x-forwarded-for" {
			v = f.Value
		}
	}
	if len(v) == 0 {
		return netip.AddrPort{}
	}
	skip := int(trustedHops)
	end := len(v)
	for i := len(v) - 1; i >= -1; i-- {
		if i >= 0 && v[i] != ',' {
			continue
		}
		if skip == 0 {
			a, err := netip.ParseAddr(string(bytes.TrimSpace(v[i+1 : end])))
			if err != nil {
				return netip.AddrPort{}
			}
			return netip.AddrPortFrom(a.Unmap(), 0)
		}
		skip--
		end = i
	}
	return netip.AddrPort{}
}

func appendXFF(h *l7.Header, ip string) {
	if v, ok := h.Get("x-forwarded-for"); ok {
		h.Set("x-forwarded-for", string(v)+", "+ip)
		return
	}
	h.Add("x-forwarded-for", ip)
}

// respond finishes a stream's response: the local reply rendered, or the
// upstream's response with the server header and request id set.
func (c *conn) respond(hcm *xds.HTTPConnectionManager, s *filters.Stream, local *l7.Response) *l7.Response {
	resp := s.Response
	if s.Local != nil || resp == nil {
		if s.Local == nil {
			s.SendLocalReply(503, "no response", 0)
		}
		renderLocal(s, local)
		resp = local
	}
	if !hcm.PassThroughServer || !resp.Header.Has("server") {
		resp.Header.Set("server", hcm.ServerName)
	}
	if hcm.AlwaysSetRequestIDInResponse {
		if id, ok := s.Request.Header.Get("x-request-id"); ok {
			resp.Header.Set("x-request-id", string(id))
		}
	}
	return resp
}

// run passes one request through the chain of the config now in force and
// returns the response to write. ctx ends with the stream; local is
// storage for a local reply; t the stream's telemetry, which finish
// reports once the response is written; tm the stream's timer (nil: none),
// begun by the caller, whose timeout before the response makes the
// response Envoy's local reply for it. ok is false when the config no
// longer serves this connection over HTTP: the request is answered 503
// and the connection should end. gate is the overload request gate of the
// connection manager that served it (nil: none).
func (c *conn) run(ctx context.Context, s *filters.Stream, req *l7.Request, local *l7.Response, t *streamTelemetry, tm *streamTimer) (resp *l7.Response, ok bool, gate *overload.RequestGate) {
	b := c.src.current()
	hcm := b.hcm
	t.reset(b, hcm, tm)
	if hcm == nil {
		hcm = c.hcm
		s.Init(ctx, req, c.down, nil)
		s.SendLocalReply(503, "the listener no longer serves this connection", filters.FlagNR)
		if tm != nil {
			tm.respond()
		}
		return c.respond(hcm, s, local), false, nil
	}
	s.Init(ctx, req, c.down, hcm.Routes)
	s.Upstream = b.up
	gate = c.env.gate(hcm.StatPrefix)
	overloaded := false
	switch {
	case gate.Refuse():
		// Envoy's local reply under stop_accepting_requests, counted in
		// http.<prefix>.downstream_rq_overload_close.
		overloaded = true
		s.SendLocalReply(503, overload.LocalReplyBody, filters.FlagOM)
	case !c.prepare(hcm, s, req):
		s.SendLocalReply(400, "Bad Request", filters.FlagDPE)
	case req.Protocol != "" && !hcm.Upgrades[strings.ToLower(req.Protocol)]:
		s.SendLocalReply(403, "upgrade not allowed: "+req.Protocol, 0)
	default:
		c.begin(hcm, s, t)
		hcm.Chain.Run(s)
	}
	if tm != nil {
		if r, reqDone := tm.respond(); r != timeoutNone {
			timeoutReply(s, r, reqDone)
		}
	}
	resp = c.respond(hcm, s, local)
	if overloaded {
		resp.Header.Set("retry-after", overload.RetryAfter)
	}
	t.countResponse(resp)
	return resp, true, gate
}

// closeBody releases a response body (its upstream connection).
func closeBody(resp *l7.Response) {
	if c, ok := resp.Body.(io.Closer); ok {
		c.Close()
	}
}

func (c *conn) logf(msg string, args ...any) {
	c.env.Log.Debug("http: "+msg, args...)
}

var errUpgradeBody = errors.New("httpconn: a 101 response without an upgraded stream")
