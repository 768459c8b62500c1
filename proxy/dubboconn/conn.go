// Package dubboconn is the Dubbo connection manager: it serves one
// downstream Dubbo 2 connection (an HBONE tunnel's byte stream, or a TCP
// connection of a plaintext listener) through a DubboProxy's config.
//
// Downstream, one goroutine reads frames (protocols/dubbo's Reader, with
// the body limit) and decodes each request's Hessian2 body as far as
// routing needs (the prefix and attachments; arguments are skipped, not
// decoded); every call then runs on a goroutine of its own through the
// dubbo_filters chain, its route and the Dubbo router, many calls in
// flight at once (bounded; past the bound a call is answered 100,
// threadpool exhausted), answered in whatever order their answers come,
// matched by request id. Heartbeats are answered here and never forwarded;
// a one-way call gets no answer, from the provider or from the proxy.
//
// A frame that cannot be read is never forwarded: a body over the limit
// or one that does not parse is answered 40 (bad request) with its request
// id and the connection goes on; bytes that are not a frame (a bad magic
// number) or a stream that ends inside a frame end the connection, after
// the calls in flight are answered. Local replies (no route, a denial, a
// timeout, a fault's abort) are Dubbo error responses whose status comes
// from protocols/status and whose message says what happened.
//
// Upstream, calls share connections to each endpoint across downstream
// connections (Upstreams), with request ids of their own.
//
// Each call is reported as an HTTP request is (telemetry.go): Istio's
// standard metrics, the Envoy-style cluster counters, and a line in the
// listener's access logs. Env.Drain, when the waypoint drains, sends every
// consumer the readonly event.
//
// Bodies are forwarded as they came; only a call whose attachments a
// filter changed is re-encoded (its prefix and arguments still copied as
// they came). A serialization other than Hessian2 is relayed by its header
// alone: the body is not read, and routing takes the service-level route.
package dubboconn

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/gowaypoint/waypoint/filters"
	"github.com/gowaypoint/waypoint/protocols/dubbo"
	"github.com/gowaypoint/waypoint/protocols/status"
	"github.com/gowaypoint/waypoint/proxy/downstream"
	"github.com/gowaypoint/waypoint/telemetry/accesslog"
	"github.com/gowaypoint/waypoint/telemetry/metrics"
)

// Env is what every Dubbo connection shares. Its fields are read-only
// after the first Serve; it also keeps the set of connections being
// served, for Drain (safe for concurrent use).
type Env struct {
	Log       *slog.Logger
	Upstreams *Upstreams
	// MaxBodyBytes bounds a request's body; default 8 MiB (Dubbo's and
	// Envoy's payload limit).
	MaxBodyBytes int
	// MaxInFlight bounds the calls in flight on one downstream connection;
	// default 1024 (dubbo.DefaultMaxInFlight).
	MaxInFlight int
	// Metrics records Istio's standard metrics and the Envoy-style
	// cluster counters of every call; nil records none. Logs writes the
	// access log lines of the listeners' access_log; nil writes none.
	// Both are shared and safe for concurrent use (telemetry.go).
	Metrics *metrics.Recorder
	Logs    *accesslog.Sinks

	mu       sync.Mutex
	conns    map[*conn]struct{} // the connections being served; guarded by mu
	draining bool               // guarded by mu
}

// Drain tells every consumer connected now, and every one that connects
// from now on, that the waypoint is read-only: a readonly event ("R"), as a
// Java provider sends its consumers when it shuts down, so that they send
// new calls to other providers. Calls keep being served; the connections
// end when the waypoint closes them. Drain does not wait for the events to
// be written and returns how many consumers were told.
func (e *Env) Drain() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.draining = true
	for c := range e.conns {
		c.sendReadonly()
	}
	if e.Log != nil && len(e.conns) > 0 {
		e.Log.Info("dubbo: draining: told the consumers the waypoint is read-only", "connections", len(e.conns))
	}
	return len(e.conns)
}

// track adds c to the connections being served, telling it at once when
// the waypoint drains.
func (e *Env) track(c *conn) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.conns == nil {
		e.conns = map[*conn]struct{}{}
	}
	e.conns[c] = struct{}{}
	if e.draining {
		c.sendReadonly()
	}
}

// untrack removes c; after it, Drain adds nothing to c.calls.
func (e *Env) untrack(c *conn) {
	e.mu.Lock()
	delete(e.conns, c)
	e.mu.Unlock()
}

// readonlyID numbers the readonly events the waypoint sends.
var readonlyID atomic.Uint64

// sendReadonly writes the readonly event on a goroutine counted as a call
// of c (a consumer that does not read must not hold Drain up); called
// with c.env.mu held while c is tracked, so that Serve's final wait sees
// it.
func (c *conn) sendReadonly() {
	c.calls.Add(1)
	go func() {
		defer c.calls.Done()
		c.w.write(dubbo.AppendReadonlyEvent(nil, readonlyID.Add(1)))
	}()
}

func (e *Env) maxBody() int {
	if e.MaxBodyBytes > 0 {
		return e.MaxBodyBytes
	}
	return dubbo.DefaultMaxBodyBytes
}

func (e *Env) maxInFlight() int32 {
	if e.MaxInFlight > 0 {
		return int32(e.MaxInFlight)
	}
	return dubbo.DefaultMaxInFlight
}

// conn is one downstream connection. The reader goroutine (Serve's) owns
// names and first; calls run on goroutines of their own, waited for by
// calls.
type conn struct {
	env  *Env
	src  *Source
	rw   *downstream.Conn
	down *filters.Downstream // &rw.Info
	ctx  context.Context     // cancelled when the connection fails
	w    *frameWriter
	desc string

	names    dubbo.Interner
	first    [2]byte // the bytes sniffed, replayed from here
	inFlight atomic.Int32
	calls    sync.WaitGroup
}

// Serve runs the Dubbo connection dc through the DubboProxy src gives
// until the connection ends, and returns once every call it started has
// ended. Each call takes the config current when it starts; calls in
// flight give up when dc's Context ends or the connection fails. Dubbo
// drains through Env.Drain (the readonly event), not a context. The caller
// owns dc and closes it after Serve returns (the L4 fallback's relay may
// close it before).
func Serve(dc *downstream.Conn, src *Source, env *Env) {
	ctx, cancel := context.WithCancel(dc.Context())
	defer cancel()
	down := &dc.Info
	c := &conn{env: env, src: src, rw: dc, down: down, ctx: ctx, w: newFrameWriter(dc),
		desc: down.Peer.String() + " " + down.RemoteAddr.String() + " -> " + down.Destination.String()}
	isDubbo, prefix, err := sniffDubbo(dc, &c.first)
	dc.Unread(prefix)
	if !isDubbo {
		if len(prefix) > 0 && !c.relayFallback() {
			c.env.Log.Info("dubbo: refused a connection that is not Dubbo (no service-level route to relay it to)",
				"conn", c.desc, "first bytes", prefix)
		} else if err != nil && len(prefix) > 0 {
			c.env.Log.Debug("dubbo: downstream connection ended", "conn", c.desc, "error", err)
		}
		return
	}
	r := dubbo.NewReader(dc, dubbo.ReaderConfig{MaxBodyBytes: env.maxBody()})
	defer r.Close()
	env.track(c)
	for {
		f, err := r.Next()
		if err != nil {
			if c.refuse(err) {
				continue
			}
			if err != io.EOF && !isFrameError(err) {
				cancel() // the connection failed: calls in flight give up
			}
			break
		}
		c.dispatch(f)
	}
	env.untrack(c)
	c.calls.Wait()
}

func isFrameError(err error) bool {
	var fe *dubbo.FrameError
	return errors.As(err, &fe)
}

// refuse answers a frame the reader refused, when its request id is
// known, and reports whether reading can go on (the frame's end is known).
func (c *conn) refuse(err error) bool {
	var fe *dubbo.FrameError
	if !errors.As(err, &fe) {
		if err != io.EOF {
			c.env.Log.Debug("dubbo: downstream connection ended", "conn", c.desc, "error", err)
		}
		return false
	}
	h := fe.Header
	c.env.Log.Info("dubbo: refused frame", "conn", c.desc, "reason", err.Error())
	if fe.HasHeader && h.Request && h.TwoWay && !h.Event {
		msg := "waypoint: " + err.Error()
		c.w.write(dubbo.AppendErrorResponse(nil, h.ID, dubbo.StatusBadRequest, msg))
	}
	return errors.Is(err, dubbo.ErrTooLarge)
}

// dispatch handles one frame from the consumer.
func (c *conn) dispatch(f *dubbo.Frame) {
	h := f.Header
	switch {
	case h.Event:
		// A heartbeat is answered here; other events from a consumer
		// (and answers to events) mean nothing to the proxy.
		if h.Request && h.TwoWay && dubbo.DecodeEvent(h.Serialization, f.Body()) == dubbo.EventHeartbeat {
			c.w.write(dubbo.AppendHeartbeatResponse(nil, h.ID))
		}
		f.Release()
		return
	case !h.Request:
		c.env.Log.Debug("dubbo: dropped a response from a consumer", "conn", c.desc, "id", h.ID)
		f.Release()
		return
	}
	if c.inFlight.Load() >= c.env.maxInFlight() {
		if h.TwoWay {
			c.w.write(dubbo.AppendErrorResponse(nil, h.ID, dubbo.StatusServerThreadpoolExhausted,
				"waypoint: more than "+strconv.Itoa(int(c.env.maxInFlight()))+" calls in flight on this connection"))
		}
		f.Release()
		return
	}
	cl := newCall(c, f)
	if err := cl.decode(&c.names); err != nil {
		c.env.Log.Info("dubbo: refused call", "conn", c.desc, "id", h.ID, "reason", err.Error())
		if h.TwoWay {
			c.w.write(dubbo.AppendErrorResponse(nil, h.ID, dubbo.StatusBadRequest, "waypoint: "+err.Error()))
		}
		cl.free()
		return
	}
	c.inFlight.Add(1)
	c.calls.Add(1)
	go cl.serve()
}

// callDone ends a call's share of the connection.
func (c *conn) callDone() {
	c.inFlight.Add(-1)
	c.calls.Done()
}

// statusText names a Dubbo status in a local reply's message.
func statusText(code int) string {
	switch code {
	case status.DubboServiceNotFound:
		return "no route"
	case status.DubboServerTimeout:
		return "upstream timeout"
	case status.DubboBadRequest:
		return "bad request"
	case status.DubboThreadpoolExhausted:
		return "overloaded"
	}
	return "server error"
}
