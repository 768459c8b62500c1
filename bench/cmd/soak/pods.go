package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gowaypoint/waypoint/proxy/certs"
	"github.com/gowaypoint/waypoint/proxy/hbone"
	"github.com/gowaypoint/waypoint/proxy/ztunnel"
)

// maxPodIPs is how many pod addresses 127.79.0.1-127.79.249.250 hold.
const maxPodIPs = 250 * 250

// stopTimeout bounds a pod's shutdown after its grace: the streams and
// requests still open when it starts get this long, then are cut.
const stopTimeout = 5 * time.Second

// podAddr is pod address i: 127.79.(i/250).(i%250+1).
func podAddr(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{127, 79, byte(i / 250), byte(i%250 + 1)})
}

// podSlots is how many pod addresses a run cycles through: twice the pods
// that can exist at once (in the clusters, serving their grace, shutting
// down), so that an address stays unused for a while before a new pod
// takes it, as a Kubernetes node reuses pod IPs.
func podSlots(o options) int {
	at := o.endpoints
	if o.churn > 0 {
		steps := int((o.grace+stopTimeout+o.churnEvery-1)/o.churnEvery) + 1
		at += o.churn * steps
	}
	return 2 * at
}

// pod is one pod: an HTTP backend (HTTP/1.1 and h2c) on addr:8080 behind
// its own ztunnel stand-in on addr:15008, which forwards only to addr.
type pod struct {
	addr netip.Addr
	web  *http.Server
	zt   *hbone.Server
}

// pods starts, retires and stops the pods. Its methods are safe for
// concurrent use; it owns every pod's goroutines, which close ends.
type pods struct {
	src *certs.Source // the pods' identity; read-only after newPods
	tls *tls.Config
	log *slog.Logger

	mu     sync.Mutex
	free   []netip.Addr // unused addresses, the longest unused first
	live   []*pod       // in the clusters, oldest first
	closed bool
	done   chan struct{} // closed by close: retiring pods stop at once
	wg     sync.WaitGroup

	started, stopped atomic.Int64
	forced           atomic.Int64 // pods whose shutdown had to cut streams or requests
}

// newPods makes the pod set with slots addresses, from podAddr(first) on;
// none is listening before start.
func newPods(dir string, first, slots int) (*pods, error) {
	log := slog.New(slog.DiscardHandler)
	src, err := certs.NewSource(certs.IdentityDir(dir, idPod), certs.SourceOptions{Logger: log})
	if err != nil {
		return nil, err
	}
	p := &pods{src: src, tls: src.ServerTLSConfig(), log: log, done: make(chan struct{})}
	for i := range slots {
		p.free = append(p.free, podAddr(first+i))
	}
	return p, nil
}

// backend answers every request with 200 "ok", once its body is read.
var backend = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	io.Copy(io.Discard, r.Body)
	io.WriteString(w, "ok")
})

// start starts a pod on the longest unused address and adds it to the
// live pods, last (it is in the clusters from the next EDS push on).
func (p *pods) start() (*pod, error) {
	p.mu.Lock()
	if p.closed || len(p.free) == 0 {
		p.mu.Unlock()
		return nil, errors.New("no free pod address (raise the slots in podSlots)")
	}
	addr := p.free[0]
	p.free = p.free[1:]
	p.mu.Unlock()
	pd, err := p.listen(addr)
	if err != nil {
		p.release(addr)
		return nil, err
	}
	p.mu.Lock()
	p.live = append(p.live, pd)
	p.mu.Unlock()
	p.started.Add(1)
	return pd, nil
}

func (p *pods) listen(addr netip.Addr) (*pod, error) {
	web := &http.Server{Handler: backend, ErrorLog: nil}
	web.Protocols = new(http.Protocols)
	web.Protocols.SetHTTP1(true)
	web.Protocols.SetUnencryptedHTTP2(true)
	zt, err := hbone.NewServer(hbone.ServerConfig{TLS: p.tls, PeerIdentity: certs.PeerIdentity,
		Handler: &ztunnel.Destination{LocalIPs: []netip.Addr{addr}, Log: p.log}, Logger: p.log})
	if err != nil {
		return nil, err
	}
	wln, err := net.Listen("tcp", netip.AddrPortFrom(addr, podPort).String())
	if err != nil {
		return nil, err
	}
	zln, err := net.Listen("tcp", net.JoinHostPort(addr.String(), strconv.Itoa(15008)))
	if err != nil {
		wln.Close()
		return nil, err
	}
	p.wg.Add(2)
	go func() { defer p.wg.Done(); web.Serve(wln) }()
	go func() { defer p.wg.Done(); zt.Serve(zln) }()
	return &pod{addr: addr, web: web, zt: zt}, nil
}

// liveAddrs are the live pods' addresses, oldest first.
func (p *pods) liveAddrs() []netip.Addr {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]netip.Addr, len(p.live))
	for i, pd := range p.live {
		out[i] = pd.addr
	}
	return out
}

// leave takes the n oldest pods out of the live ones and returns them.
func (p *pods) leave(n int) []*pod {
	p.mu.Lock()
	defer p.mu.Unlock()
	n = min(n, len(p.live))
	out := append([]*pod(nil), p.live[:n]...)
	p.live = append(p.live[:0], p.live[n:]...)
	return out
}

// retire lets each pod serve for grace (or until close), then stops it
// and frees its address.
func (p *pods) retire(pds []*pod, grace time.Duration) {
	for _, pd := range pds {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			t := time.NewTimer(grace)
			select {
			case <-t.C:
			case <-p.done:
				t.Stop()
			}
			p.stop(pd)
			p.release(pd.addr)
		}()
	}
}

// stop shuts a pod down as a terminating pod's ztunnel and app do: GOAWAY
// on its HBONE connections and idle keep-alive connections closed, what is
// in flight given stopTimeout, then everything closed.
func (p *pods) stop(pd *pod) {
	ctx, cancel := context.WithTimeout(context.Background(), stopTimeout)
	defer cancel()
	var zerr error
	zdone := make(chan struct{})
	go func() { zerr = pd.zt.Shutdown(ctx); close(zdone) }()
	werr := pd.web.Shutdown(ctx)
	<-zdone
	if werr != nil || zerr != nil {
		p.forced.Add(1)
		pd.web.Close()
	}
	p.stopped.Add(1)
}

func (p *pods) release(addr netip.Addr) {
	p.mu.Lock()
	p.free = append(p.free, addr)
	p.mu.Unlock()
}

// close stops every pod, the retiring ones at once, and waits for all.
func (p *pods) close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	live := p.live
	p.live = nil
	p.mu.Unlock()
	close(p.done)
	p.retire(live, 0)
	p.wg.Wait()
	p.src.Close()
}

// String describes the pods' counts for the summary.
func (p *pods) String() string {
	return fmt.Sprintf("%d pods started, %d stopped (%d had requests or streams cut after %v)",
		p.started.Load(), p.stopped.Load(), p.forced.Load(), stopTimeout)
}
