package dialonce

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// pool is the smallest pool built on a Slot: connections of perConn
// streams each, one dial at a time, as proxy/hbone.Pool and the HTTP/2
// pool of proxy/upstream use it.
type pool struct {
	perConn int
	dialErr error
	gate    chan struct{} // a dial waits for it when not nil

	mu    sync.Mutex
	slot  Slot
	conns []int // streams taken on each connection
	wg    sync.WaitGroup

	dials, dialing, maxDialing atomic.Int32
}

// take returns the connection index where it reserved a stream.
func (p *pool) take(ctx context.Context) (int, error) {
	for {
		p.mu.Lock()
		for i, n := range p.conns {
			if n < p.perConn {
				p.conns[i]++
				p.mu.Unlock()
				return i, nil
			}
		}
		d, lead := p.slot.Join()
		if lead {
			p.wg.Add(1)
			go p.dial(d)
		}
		p.mu.Unlock()
		if err := d.Wait(ctx); err != nil {
			return -1, err
		}
	}
}

func (p *pool) dial(d *Dial) {
	defer p.wg.Done()
	p.dials.Add(1)
	if n := p.dialing.Add(1); n > p.maxDialing.Load() {
		p.maxDialing.Store(n)
	}
	if p.gate != nil {
		<-p.gate
	}
	time.Sleep(time.Millisecond) // a dial takes time: callers pile up behind it
	p.dialing.Add(-1)
	p.mu.Lock()
	if p.dialErr == nil {
		p.conns = append(p.conns, 0)
	}
	p.slot.Finish(d, p.dialErr)
	p.mu.Unlock()
}

func TestBurst(t *testing.T) {
	errRefused := errors.New("refused")
	for _, tc := range []struct {
		name      string
		callers   int
		perConn   int
		dialErr   error
		wantDials int32 // exact; for a failing dial, at most this many
		wantConns int
	}{
		{name: "one caller", callers: 1, perConn: 1, wantDials: 1, wantConns: 1},
		{name: "a burst fits one connection", callers: 50, perConn: 100, wantDials: 1, wantConns: 1},
		{name: "a burst opens ceil(N/limit) connections", callers: 10, perConn: 3, wantDials: 4, wantConns: 4},
		{name: "one stream per connection", callers: 8, perConn: 1, wantDials: 8, wantConns: 8},
		{name: "a failed dial fails its waiters", callers: 20, perConn: 100, dialErr: errRefused, wantDials: 20, wantConns: 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := &pool{perConn: tc.perConn, dialErr: tc.dialErr}
			var wg sync.WaitGroup
			errs := make(chan error, tc.callers)
			for range tc.callers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if _, err := p.take(context.Background()); err != nil {
						errs <- err
					}
				}()
			}
			wg.Wait()
			p.wg.Wait()
			close(errs)
			failed := 0
			for err := range errs {
				if !errors.Is(err, tc.dialErr) || tc.dialErr == nil {
					t.Errorf("caller failed with %v, want %v", err, tc.dialErr)
				}
				failed++
			}
			if tc.dialErr != nil && failed != tc.callers {
				t.Errorf("%d of %d callers failed, want all", failed, tc.callers)
			}
			if got := p.dials.Load(); tc.dialErr == nil && got != tc.wantDials || got > tc.wantDials {
				t.Errorf("%d dials, want %d", got, tc.wantDials)
			}
			if got := p.maxDialing.Load(); got > 1 {
				t.Errorf("%d dials at once, want 1 at a time", got)
			}
			if len(p.conns) != tc.wantConns {
				t.Errorf("%d connections, want %d", len(p.conns), tc.wantConns)
			}
			if p.slot.Busy() {
				t.Error("slot busy after every dial ended")
			}
		})
	}
}

// TestWaitCancelled: a waiter whose context ends leaves at once; the dial
// goes on and its connection serves the next caller.
func TestWaitCancelled(t *testing.T) {
	p := &pool{perConn: 1, gate: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := p.take(ctx)
		done <- err
	}()
	for p.dials.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled waiter: %v", err)
	}
	close(p.gate)
	p.wg.Wait()
	if i, err := p.take(context.Background()); err != nil || i != 0 {
		t.Fatalf("next caller: connection %d, %v; want the dialled connection 0", i, err)
	}
	if n := p.dials.Load(); n != 1 {
		t.Errorf("%d dials, want 1", n)
	}
}

func TestSlot(t *testing.T) {
	var s Slot
	if s.Busy() {
		t.Fatal("zero Slot busy")
	}
	d, lead := s.Join()
	if !lead || !s.Busy() {
		t.Fatal("first Join does not lead")
	}
	if d2, lead2 := s.Join(); lead2 || d2 != d {
		t.Fatal("second Join did not join the dial in flight")
	}
	errX := errors.New("x")
	s.Finish(d, errX)
	if s.Busy() {
		t.Error("busy after Finish")
	}
	if err := d.Wait(context.Background()); err != errX {
		t.Errorf("Wait after Finish: %v", err)
	}
	if d3, lead3 := s.Join(); !lead3 || d3 == d {
		t.Error("Join after Finish did not start a new dial")
	}
}
