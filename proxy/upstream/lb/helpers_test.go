package lb

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/gowaypoint/waypoint/xds"
)

// fakeClock is a Clock whose time moves only by Advance, which runs the
// timers that come due on the calling goroutine.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
}

type fakeTimer struct {
	c       *fakeClock
	when    time.Time
	f       func()
	stopped bool
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Unix(1_000_000, 0)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) AfterFunc(d time.Duration, f func()) Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{c: c, when: c.now.Add(d), f: f}
	c.timers = append(c.timers, t)
	return t
}

func (t *fakeTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	i := slices.Index(t.c.timers, t)
	if i < 0 {
		return false
	}
	t.c.timers = slices.Delete(t.c.timers, i, i+1)
	return true
}

// pending is the number of armed timers.
func (c *fakeClock) pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.timers)
}

// Advance moves time forward by d, firing due timers in order, each at its
// own time (a timer armed by a callback fires too if it comes due).
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	end := c.now.Add(d)
	for {
		var next *fakeTimer
		for _, t := range c.timers {
			if !t.when.After(end) && (next == nil || t.when.Before(next.when)) {
				next = t
			}
		}
		if next == nil {
			break
		}
		c.timers = slices.DeleteFunc(c.timers, func(t *fakeTimer) bool { return t == next })
		c.now = next.when
		c.mu.Unlock()
		next.f()
		c.mu.Lock()
	}
	c.now = end
	c.mu.Unlock()
}

// newTestManager is a Manager with a fixed random source (not safe for
// concurrent picks) and clock.
func newTestManager(t testing.TB, clock Clock, seed uint64) *Manager {
	m := NewManager(clock)
	m.rnd = rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)).Uint64
	t.Cleanup(m.Close)
	return m
}

// endpoints returns endpoints 127.0.23.1:80, 127.0.23.2:80, ... with the
// given weights.
func endpoints(weights ...uint32) []xds.Endpoint {
	eps := make([]xds.Endpoint, len(weights))
	for i, w := range weights {
		eps[i] = xds.Endpoint{Address: addr(i), Weight: w}
	}
	return eps
}

// equal returns n endpoints of weight 1.
func equal(n int) []xds.Endpoint {
	w := make([]uint32, n)
	for i := range w {
		w[i] = 1
	}
	return endpoints(w...)
}

// addr is the address of endpoint i; host indexes in tests are endpoint
// indexes.
func addr(i int) netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 23, byte(i + 1)}), 80)
}

func index(h *Host) int {
	if h == nil {
		return -1
	}
	return int(h.Addr.Addr().As4()[3]) - 1
}

// snapshot holds the given clusters.
func snapshot(clusters ...*xds.Cluster) *xds.Snapshot {
	s := &xds.Snapshot{Clusters: map[string]*xds.Cluster{}}
	for _, c := range clusters {
		s.Clusters[c.Name] = c
	}
	return s
}

// clusterOf builds a one-cluster state with a fixed random source.
func clusterOf(t testing.TB, cl *xds.Cluster) *ClusterState {
	t.Helper()
	m := newTestManager(t, newFakeClock(), 1)
	m.Update(snapshot(cl))
	c := m.Cluster(cl.Name)
	if c == nil {
		t.Fatalf("no cluster %q", cl.Name)
	}
	return c
}

// counts picks n times and counts the picks of each host index.
func counts(c *ClusterState, n int, pc func(i int) *PickContext) map[int]int {
	got := map[int]int{}
	for i := range n {
		var p *PickContext
		if pc != nil {
			p = pc(i)
		}
		got[index(c.Pick(p))]++
	}
	return got
}

func fmtShares(got map[int]int, n int) string {
	s := ""
	for i := range len(got) {
		s += fmt.Sprintf(" %d:%.3f", i, float64(got[i])/float64(n))
	}
	return s
}
