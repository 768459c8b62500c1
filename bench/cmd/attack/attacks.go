package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/gowaypoint/waypoint/proxy/hbone"
)

// tally is what an attack saw from its side, by name. Safe for concurrent use.
type tally struct {
	mu sync.Mutex
	n  map[string]int64
	// unit is the RSS per unit (pending handshake, idle stream) measured
	// at units held, when the attack measures one.
	unit      float64
	units     int
	firstErrs map[string]error
}

func newTally() *tally { return &tally{n: map[string]int64{}, firstErrs: map[string]error{}} }

func (t *tally) add(k string, d int64) {
	t.mu.Lock()
	t.n[k] += d
	t.mu.Unlock()
}

func (t *tally) err(k string, err error) {
	t.mu.Lock()
	t.n[k]++
	if t.firstErrs[k] == nil {
		t.firstErrs[k] = err
	}
	t.mu.Unlock()
}

func (t *tally) get(k string) int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.n[k]
}

// env is what an attack works with.
type env struct {
	o       *options
	m       *mesh
	idleRSS int64
	t       *tally
}

// attack is one of issue 16's acceptance attacks.
type attack struct {
	name, title string
	run         func(ctx context.Context, e *env) error
	// check compares the waypoint's counters' deltas with what the attack
	// saw: whether every refusal was counted, and the figures that say so.
	check func(e *env, d deltas) (bool, string)
}

var attacks = []attack{
	{"plaintext", "plaintext garbage, 16 threads, to :15008", plaintext, checkPlaintext},
	{"badcert", "handshakes with a client certificate of another CA, 16 threads", badCert, checkBadCert},
	{"pending", "connections that never send a ClientHello", pending, checkPending},
	{"noroute", "CONNECTs to random authorities from a valid identity", noRoute, checkNoRoute},
	{"rapidreset", "h2c rapid reset inside HBONE tunnels, reconnecting", rapidReset, checkRapidReset},
	{"idlestreams", "idle CONNECT streams on an HTTP chain", idleStreams, checkIdleStreams},
}

// workers runs n copies of f until ctx ends, and waits for them.
func workers(ctx context.Context, n int, f func(ctx context.Context, i int)) {
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				f(ctx, i)
			}
		}()
	}
	wg.Wait()
}

// waitClosed reads from c until the peer closes it or ctx ends; true when
// the peer closed it (EOF or reset) or answered with a TLS alert.
func waitClosed(ctx context.Context, c net.Conn) bool {
	stop := context.AfterFunc(ctx, func() { c.SetReadDeadline(time.Now()) })
	defer stop()
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	var b [512]byte
	for {
		_, err := c.Read(b[:])
		if err == nil {
			continue
		}
		var ne net.Error
		return !(errors.As(err, &ne) && ne.Timeout())
	}
}

func plaintext(ctx context.Context, e *env) error {
	var seq atomic.Int64
	workers(ctx, 16, func(ctx context.Context, w int) {
		c, err := dialFrom(ctx, int(seq.Add(1)), hostPort(ipWaypoint, portHBONE))
		if err != nil {
			if ctx.Err() == nil {
				e.t.err("dial_errors", err)
			}
			return
		}
		defer closeHard(c)
		garbage := make([]byte, 256)
		for i := range garbage {
			garbage[i] = byte(rand.IntN(256))
		}
		garbage[0] = 'G' // never a TLS record
		if _, err := c.Write(garbage); err != nil {
			e.t.err("write_errors", err)
			return
		}
		e.t.add("sent", 1)
		if waitClosed(ctx, c) {
			e.t.add("closed_by_waypoint", 1)
		}
	})
	return nil
}

func checkPlaintext(e *env, d deltas) (bool, string) {
	return checkRefusedConns(e, d, "connections of garbage closed by the waypoint", "plaintext", "ssl.connection_error")
}

// checkRefusedConns holds when every connection the waypoint closed on the
// attacker is counted under the waypoint's reason and Envoy's listener
// counter (envoyStat in its dotted name).
func checkRefusedConns(e *env, d deltas, what, reason, envoyStat string) (bool, string) {
	closed := e.t.get("closed_by_waypoint")
	n := d.sum("waypoint_hbone_refused_connections_total", `reason="`+reason+`"`)
	envoy := d.sum("envoy_listener_"+strings.ReplaceAll(envoyStat, ".", "_"), "")
	return n >= float64(closed) && envoy >= float64(closed),
		fmt.Sprintf("%d %s; refused{%s} +%.0f, %s +%.0f", closed, what, reason, n, envoyStat, envoy)
}

func badCert(ctx context.Context, e *env) error {
	conf, err := foreignTLS(e.o.certs)
	if err != nil {
		return err
	}
	var seq atomic.Int64
	workers(ctx, 16, func(ctx context.Context, w int) {
		c, err := dialFrom(ctx, int(seq.Add(1)), hostPort(ipWaypoint, portHBONE))
		if err != nil {
			if ctx.Err() == nil {
				e.t.err("dial_errors", err)
			}
			return
		}
		defer closeHard(c)
		tc := tls.Client(c, conf)
		hctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if err := tc.HandshakeContext(hctx); err != nil {
			// TLS 1.3: the server's verdict usually comes after the
			// client's handshake is done; an early alert lands here.
			if ctx.Err() == nil {
				e.t.add("sent", 1)
				e.t.add("closed_by_waypoint", 1)
			}
			return
		}
		e.t.add("sent", 1)
		if waitClosed(ctx, tc) {
			e.t.add("closed_by_waypoint", 1)
		}
	})
	return nil
}

func checkBadCert(e *env, d deltas) (bool, string) {
	return checkRefusedConns(e, d, "handshakes refused", "bad_certificate", "ssl.fail_verify_error")
}

// pending holds o.pending connections that never send a byte, each
// reopened when the waypoint closes it; the cost per connection is
// measured once o.unit are held.
func pending(ctx context.Context, e *env) error {
	var open atomic.Int64
	hold := func(ctx context.Context, i int) {
		c, err := dialFrom(ctx, i, hostPort(ipWaypoint, portHBONE))
		if err != nil {
			if ctx.Err() == nil {
				e.t.err("dial_errors", err)
				time.Sleep(100 * time.Millisecond)
			}
			return
		}
		defer closeHard(c)
		open.Add(1)
		defer open.Add(-1)
		e.t.add("opened", 1)
		if waitClosed(ctx, c) {
			e.t.add("closed_by_waypoint", 1)
		}
	}
	var wg sync.WaitGroup
	startHolders := func(from, to int) {
		for i := from; i < to; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for ctx.Err() == nil {
					hold(ctx, i)
				}
			}()
		}
	}
	unit := min(e.o.unit, e.o.pending)
	begin := time.Now()
	startHolders(0, unit)
	for open.Load() < int64(unit) && ctx.Err() == nil && time.Since(begin) < 8*time.Second {
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(time.Second)
	held := open.Load()
	r := settledRSS(e.m.waypoint.pid())
	e.t.units = int(held)
	if held > 0 {
		e.t.unit = float64(r.rss-e.idleRSS) / float64(held)
	}
	if time.Since(begin) > 9*time.Second {
		e.t.err("unit_late", errors.New("the unit measurement came after the first connections' handshake timeout"))
	}
	startHolders(unit, e.o.pending)
	go func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				e.t.mu.Lock()
				e.t.n["max_open"] = max(e.t.n["max_open"], open.Load())
				e.t.mu.Unlock()
			}
		}
	}()
	<-ctx.Done()
	wg.Wait()
	return nil
}

func checkPending(e *env, d deltas) (bool, string) {
	closed := e.t.get("closed_by_waypoint")
	timeout := d.sum("waypoint_hbone_refused_connections_total", `reason="client_hello_timeout"`)
	pre := d.sum("envoy_listener_downstream_pre_cx_timeout", "")
	overflow := d.sum("envoy_listener_downstream_global_cx_overflow", "")
	olReject := d.sum("envoy_listener_downstream_cx_overload_reject", "")
	other := d.sum("waypoint_hbone_refused_connections_total", `reason="other"`)
	return timeout+overflow+olReject >= float64(closed) && pre >= timeout,
		fmt.Sprintf("%d opened, at most %d at once, %d closed by the waypoint; refused{client_hello_timeout} +%.0f (downstream_pre_cx_timeout +%.0f), global_cx_overflow +%.0f, cx_overload_reject +%.0f, refused{other} +%.0f (closed by the attacker at the end)",
			e.t.get("opened"), e.t.get("max_open"), closed, timeout, pre, overflow, olReject, other)
}

func randomAuthority() string {
	return fmt.Sprintf("10.%d.%d.%d:%d", rand.IntN(256), rand.IntN(256), 1+rand.IntN(254), 1+rand.IntN(65535))
}

func noRoute(ctx context.Context, e *env) error {
	conf, closeSrc, err := clientTLS(e.o.certs, saAttacker)
	if err != nil {
		return err
	}
	defer closeSrc()
	pool := newPool("")
	defer pool.Close()
	workers(ctx, 8, func(ctx context.Context, w int) {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		st, err := pool.Connect(cctx, hboneDest(randomAuthority(), conf))
		var ce *hbone.ConnectError
		switch {
		case err == nil:
			e.t.add("accepted", 1)
			st.Abort()
		case errors.As(err, &ce) && ce.Status == 503:
			e.t.add("refused_503", 1)
		case errors.As(err, &ce):
			e.t.add(fmt.Sprintf("refused_%d", ce.Status), 1)
		case ctx.Err() == nil:
			e.t.err("stream_errors", err)
		}
	})
	return nil
}

func checkNoRoute(e *env, d deltas) (bool, string) {
	got := e.t.get("refused_503")
	nr := d.sum("waypoint_hbone_refused_streams_total", `reason="no_route"`)
	nfc := d.sum("envoy_listener_no_filter_chain_match", `main_internal`)
	closed := d.sum("waypoint_hbone_too_many_refused_streams_total", "")
	return nr >= float64(got) && nfc >= float64(got) && closed > 0,
		fmt.Sprintf("%d CONNECTs answered 503, %d failed otherwise (connection closed under them); refused_streams{no_route} +%.0f, main_internal.no_filter_chain_match +%.0f, connections closed for too many refused streams +%.0f",
			got, e.t.get("stream_errors"), nr, nfc, closed)
}

// rapidReset opens HBONE tunnels to the HTTP service and speaks h2c
// inside them: HEADERS then RST_STREAM, as fast as it can, a new tunnel
// whenever one ends.
func rapidReset(ctx context.Context, e *env) error {
	conf, closeSrc, err := clientTLS(e.o.certs, saAttacker)
	if err != nil {
		return err
	}
	defer closeSrc()
	pool := newPool("")
	defer pool.Close()
	workers(ctx, 4, func(ctx context.Context, w int) {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		st, err := pool.Connect(cctx, hboneDest(hostPort(ipVIP, 80), conf))
		cancel()
		if err != nil {
			if ctx.Err() == nil {
				e.t.err("tunnel_refused", err)
				time.Sleep(time.Millisecond)
			}
			return
		}
		e.t.add("tunnels", 1)
		defer st.Abort()
		stop := context.AfterFunc(ctx, st.Abort)
		defer stop()
		resetTunnel(st, e.t)
	})
	return nil
}

// resetTunnel runs one h2c connection of HEADERS + RST_STREAM pairs
// until the waypoint ends it.
func resetTunnel(st io.ReadWriter, t *tally) {
	var wmu sync.Mutex
	fr := http2.NewFramer(st, st)
	ended := make(chan struct{})
	go func() {
		defer close(ended)
		for {
			f, err := fr.ReadFrame()
			if err != nil {
				return
			}
			switch f := f.(type) {
			case *http2.SettingsFrame:
				if !f.IsAck() {
					wmu.Lock()
					fr.WriteSettingsAck()
					wmu.Unlock()
				}
			case *http2.GoAwayFrame:
				t.add("goaway_"+f.ErrCode.String(), 1)
			}
		}
	}()
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	wmu.Lock()
	_, err := io.WriteString(st, http2.ClientPreface)
	if err == nil {
		err = fr.WriteSettings()
	}
	wmu.Unlock()
	for id := uint32(1); err == nil && id < 1<<30; id += 2 {
		select {
		case <-ended:
			err = io.EOF
			continue
		default:
		}
		hb.Reset()
		enc.WriteField(hpack.HeaderField{Name: ":method", Value: "GET"})
		enc.WriteField(hpack.HeaderField{Name: ":scheme", Value: "http"})
		enc.WriteField(hpack.HeaderField{Name: ":path", Value: "/"})
		enc.WriteField(hpack.HeaderField{Name: ":authority", Value: "svc"})
		wmu.Lock()
		err = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: hb.Bytes(), EndStream: true, EndHeaders: true})
		if err == nil {
			err = fr.WriteRSTStream(id, http2.ErrCodeCancel)
		}
		wmu.Unlock()
		if err == nil {
			t.add("resets_sent", 1)
		}
	}
	<-ended
}

func checkRapidReset(e *env, d deltas) (bool, string) {
	premature := d.sum("envoy_http_downstream_rq_too_many_premature_resets", "")
	before := d.sum("waypoint_downstream_rq_reset_before_response_total", "")
	over := d.sum("waypoint_peer_reset_budget_exceeded_total", "")
	closed := d.sum("waypoint_peer_reset_budget_closed_connections_total", "")
	refused := d.sum("waypoint_peer_reset_budget_refused_connections_total", "")
	return over > 0 || premature > 0,
		fmt.Sprintf("%d tunnels, %d HEADERS+RST_STREAM sent, %d tunnels refused; reset_before_response +%.0f, too_many_premature_resets +%.0f, reset budget exceeded +%.0f, its closed connections +%.0f, refused connections +%.0f",
			e.t.get("tunnels"), e.t.get("resets_sent"), e.t.get("tunnel_refused"), before, premature, over, closed, refused)
}

// idleStreams opens o.idleStreams CONNECT streams to the HTTP service and
// sends nothing on them, spread over two identities (each within the
// per-peer stream cap), and holds them; the cost per stream is measured
// once o.unit are open.
func idleStreams(ctx context.Context, e *env) error {
	var confs []*tls.Config
	var pools []*hbone.Pool
	for _, sa := range []string{saAttacker, saAttacker2} {
		conf, closeSrc, err := clientTLS(e.o.certs, sa)
		if err != nil {
			return err
		}
		defer closeSrc()
		confs = append(confs, conf)
		p := newPool("")
		defer p.Close()
		pools = append(pools, p)
	}
	var mu sync.Mutex
	var held []*hbone.ClientStream
	defer func() {
		for _, st := range held {
			st.Abort()
		}
	}()
	var next atomic.Int64
	open := func(limit int64) {
		var wg sync.WaitGroup
		for range 64 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for ctx.Err() == nil {
					i := next.Add(1)
					if i > limit {
						return
					}
					cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
					st, err := pools[i%2].Connect(cctx, hboneDest(hostPort(ipVIP, 80), confs[i%2]))
					cancel()
					var ce *hbone.ConnectError
					switch {
					case err == nil:
						e.t.add("open", 1)
						mu.Lock()
						held = append(held, st)
						mu.Unlock()
					case errors.As(err, &ce):
						e.t.add(fmt.Sprintf("refused_%d", ce.Status), 1)
					case ctx.Err() == nil:
						e.t.err("stream_errors", err)
					}
				}
			}()
		}
		wg.Wait()
		next.Store(limit)
	}
	unit := min(e.o.unit, e.o.idleStreams)
	open(int64(unit))
	time.Sleep(time.Second)
	r := settledRSS(e.m.waypoint.pid())
	e.t.units = int(e.t.get("open"))
	if e.t.units > 0 {
		e.t.unit = float64(r.rss-e.idleRSS) / float64(e.t.units)
	}
	open(int64(e.o.idleStreams))
	<-ctx.Done()
	return nil
}

func checkIdleStreams(e *env, d deltas) (bool, string) {
	refused := e.t.get("refused_503")
	cap := d.sum("waypoint_hbone_refused_streams_total", `reason="peer_stream_limit"`)
	ol := d.sum("waypoint_hbone_refused_streams_total", `reason="overload"`)
	return cap+ol >= float64(refused),
		fmt.Sprintf("%d streams held, %d refused 503, %d failed; refused_streams{peer_stream_limit} +%.0f, {overload} +%.0f",
			e.t.get("open"), refused, e.t.get("stream_errors"), cap, ol)
}
