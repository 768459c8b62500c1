package hbone

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/gowaypoint/waypoint/proxy/certs"
)

// eventually waits up to 10 s for cond.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("still not %s after 10 s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestPoolHold: a key lives while it is held (invariant 6); at its last
// release its idle connections close and its busy ones drain, their
// streams finishing; a key nobody holds is swept once its connections
// closed.
func TestPoolHold(t *testing.T) {
	m := newMesh(t)
	_, addr := startServer(t, m, "127.0.7.50", echo, nil)
	src := m.source(t, clientID)
	d := dest(src, addr, certs.PeerExpectation{ID: serverID})
	for _, tc := range []struct {
		name    string
		holders int  // Hold calls on the key (clusters sharing the endpoint)
		busy    bool // a stream is open when the last hold goes
	}{
		{name: "one holder, idle", holders: 1},
		{name: "two holders, idle", holders: 2},
		{name: "one holder, a stream in flight", holders: 1, busy: true},
		{name: "three holders, a stream in flight", holders: 3, busy: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newPool(t, nil)
			var releases []func()
			for range tc.holders {
				releases = append(releases, p.Hold(d))
			}
			st, err := p.Connect(context.Background(), d)
			if err != nil {
				t.Fatal(err)
			}
			roundTrip(t, st, []byte("before"))
			st.Close()
			if tc.busy {
				if st, err = p.Connect(context.Background(), d); err != nil {
					t.Fatal(err)
				}
			}
			for i, release := range releases {
				if s := p.Stats(); s.Keys != 1 || s.Held != 1 || s.Conns[addr] != 1 {
					t.Fatalf("before release %d of %d: %+v, want the held key and its connection", i+1, len(releases), s)
				}
				release()
				release() // twice is once
			}
			s := p.Stats()
			if s.Keys != 0 || s.Held != 0 || s.Conns[addr] != 0 {
				t.Fatalf("after the last release: %+v, want the key forgotten", s)
			}
			if !tc.busy {
				if s.Draining != 0 {
					t.Fatalf("an idle connection drains: %+v", s)
				}
				return
			}
			if s.Draining != 1 {
				t.Fatalf("%d connections draining, want the busy one", s.Draining)
			}
			// The stream in flight finishes on its draining connection.
			buf := make([]byte, 64<<10)
			roundTrip(t, st, buf)
			st.Close()
			eventually(t, "closed once its stream ended", func() bool { return p.Stats().Draining == 0 })
		})
	}
}

// TestPoolSweepsUnheldKeys: keys that a bare Connect made go by the
// sweep once their connections closed (idle timeout), and a key released
// while its dial is in flight does not keep what the dial opened.
func TestPoolSweepsUnheldKeys(t *testing.T) {
	m := newMesh(t)
	_, addr := startServer(t, m, "127.0.7.51", echo, nil)
	src := m.source(t, clientID)
	d := dest(src, addr, certs.PeerExpectation{ID: serverID})
	p := newPool(t, func(c *PoolConfig) { c.IdleTimeout = 50 * time.Millisecond })
	st, err := p.Connect(context.Background(), d)
	if err != nil {
		t.Fatal(err)
	}
	roundTrip(t, st, []byte("x"))
	st.Close()
	if s := p.Stats(); s.Keys != 1 || s.Held != 0 {
		t.Fatalf("%+v, want one unheld key", s)
	}
	eventually(t, "swept", func() bool { return p.Stats().Keys == 0 })

	// A hold released while the key's dial is in flight.
	gate := make(chan struct{})
	q := newPool(t, func(c *PoolConfig) {
		c.Dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
			<-gate
			var nd net.Dialer
			return nd.DialContext(ctx, network, addr)
		}
	})
	release := q.Hold(d)
	errc := make(chan error, 1)
	go func() {
		st, err := q.Connect(context.Background(), d)
		if err == nil {
			st.Close()
		}
		errc <- err
	}()
	eventually(t, "dialling", func() bool {
		q.mu.Lock()
		defer q.mu.Unlock()
		ks := q.keys[poolKey{d.Addr, d.PeerKey}]
		return ks != nil && ks.dial.Busy()
	})
	release()
	close(gate)
	if err := <-errc; err != errReleased {
		t.Fatalf("Connect across the release: %v, want %v", err, errReleased)
	}
	if s := q.Stats(); s.Keys != 0 || len(s.Conns) != 0 {
		t.Fatalf("%+v after a dial of a released key, want nothing", s)
	}
}
