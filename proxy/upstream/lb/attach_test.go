package lb

import (
	"net/netip"
	"testing"

	"github.com/gowaypoint/waypoint/xds"
)

// probe is an Attachment that counts its closes.
type probe struct{ closed int }

func (p *probe) Close() { p.closed++ }

func attach(t *testing.T, h *Host) *probe {
	t.Helper()
	a := h.Attach(func() Attachment { return &probe{} })
	if a == nil {
		return nil
	}
	return a.(*probe)
}

// TestAttachFollowsHost: an attachment lives as long as its host's live
// state, whatever ends it, and is closed exactly once.
func TestAttachFollowsHost(t *testing.T) {
	for _, tc := range []struct {
		name string
		// then runs after host 0 of cluster c (endpoints 0, 1, 2) got an
		// attachment; it reports whether host 0 should have left.
		then func(m *Manager) (left bool)
	}{
		{"an update that keeps the address keeps it", func(m *Manager) bool {
			eps := endpoints(7, 1, 1) // a new weight: a new *Host, the same state
			m.Update(snapshot(&xds.Cluster{Name: "c", Endpoints: eps}))
			return false
		}},
		{"an update without the address closes it", func(m *Manager) bool {
			m.Update(snapshot(&xds.Cluster{Name: "c", Endpoints: endpoints(1, 1, 1)[1:]}))
			return true
		}},
		{"an update without the cluster closes it", func(m *Manager) bool {
			m.Update(snapshot(&xds.Cluster{Name: "other", Endpoints: equal(3)}))
			return true
		}},
		{"an empty update closes it", func(m *Manager) bool {
			m.Update(nil)
			return true
		}},
		{"Manager.Close closes it", func(m *Manager) bool {
			m.Close()
			return true
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newTestManager(t, newFakeClock(), 1)
			m.Update(snapshot(&xds.Cluster{Name: "c", Endpoints: equal(3)}))
			h := m.Cluster("c").Hosts()[0]
			p := attach(t, h)
			if p == nil {
				t.Fatal("no attachment for a host of the cluster")
			}
			if again := attach(t, h); again != p {
				t.Fatal("a second Attach made another attachment")
			}
			left := tc.then(m)
			if left {
				if p.closed != 1 {
					t.Errorf("closed %d times, want once", p.closed)
				}
				if attach(t, h) != nil {
					t.Error("Attach on a host that left made an attachment")
				}
			} else {
				if p.closed != 0 {
					t.Errorf("closed %d times while its host stays", p.closed)
				}
				if h2 := m.Cluster("c").Hosts()[0]; attach(t, h2) != p {
					t.Error("the host of the next snapshot has another attachment")
				}
			}
			m.Close() // and again: never twice
			if p.closed != 1 {
				t.Errorf("after Close: closed %d times, want once", p.closed)
			}
		})
	}
}

// TestAttachReturningAddress: an address that leaves and comes back is a
// new host with a new attachment.
func TestAttachReturningAddress(t *testing.T) {
	m := newTestManager(t, newFakeClock(), 1)
	m.Update(snapshot(&xds.Cluster{Name: "c", Endpoints: equal(1)}))
	p := attach(t, m.Cluster("c").Hosts()[0])
	m.Update(snapshot(&xds.Cluster{Name: "c"}))
	m.Update(snapshot(&xds.Cluster{Name: "c", Endpoints: equal(1)}))
	q := attach(t, m.Cluster("c").Hosts()[0])
	if q == nil || q == p || p.closed != 1 || q.closed != 0 {
		t.Errorf("returning address: old closed %d, new %p (old %p) closed %v", p.closed, q, p, q != nil && q.closed != 0)
	}
}

// TestAttachOriginalDst: original-destination hosts close their
// attachments when evicted and with their cluster.
func TestAttachOriginalDst(t *testing.T) {
	m := newTestManager(t, newFakeClock(), 1)
	m.Update(snapshot(&xds.Cluster{Name: "o", OriginalDestination: true}))
	c := m.Cluster("o")
	dst := func(i int) netip.AddrPort {
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 23, byte(i)}), uint16(1000+i/256))
	}
	var probes []*probe
	for i := range maxOriginalDstHosts {
		h := c.Pick(&PickContext{Destination: dst(i)})
		probes = append(probes, attach(t, h))
	}
	busy := c.Pick(&PickContext{Destination: dst(0)})
	end := busy.Begin()
	c.Pick(&PickContext{Destination: dst(maxOriginalDstHosts)}) // evicts the idle ones
	if probes[0].closed != 0 {
		t.Error("a host with a request in flight was evicted")
	}
	for i, p := range probes[1:] {
		if p.closed != 1 {
			t.Fatalf("evicted host %d: closed %d times, want once", i+1, p.closed)
		}
	}
	end(Status(200))
	m.Update(nil)
	if probes[0].closed != 1 {
		t.Errorf("with its cluster gone: closed %d times, want once", probes[0].closed)
	}
}
