package peerbudget

import (
	"log/slog"
	"testing"
	"time"

	"github.com/gowaypoint/waypoint/protocols/spiffe"
)

var (
	attacker = spiffe.ID{TrustDomain: "cluster.local", Namespace: "a", ServiceAccount: "evil"}
	other    = spiffe.ID{TrustDomain: "cluster.local", Namespace: "b", ServiceAccount: "good"}
)

// TestBudget: a peer may reset Burst requests at once and Rate a second
// after; the reset that overdraws closes its connections (not another
// peer's), refuses new ones for the penalty, and admits them after it.
func TestBudget(t *testing.T) {
	for _, tc := range []struct {
		name       string
		resets     int           // at once, at t0
		then       time.Duration // wait after them
		more       int           // resets after the wait
		overdrawn  bool          // some reset overdrew
		admitAfter bool          // a new connection is admitted at the end
	}{
		{name: "within the burst", resets: 10, overdrawn: false, admitAfter: true},
		{name: "the burst exactly", resets: 10, then: 0, more: 0, overdrawn: false, admitAfter: true},
		{name: "one past the burst", resets: 11, overdrawn: true, admitAfter: false},
		{name: "refilled at the rate", resets: 10, then: time.Second, more: 5, overdrawn: false, admitAfter: true},
		{name: "past the refill", resets: 10, then: time.Second, more: 6, overdrawn: true, admitAfter: false},
		{name: "penalty served", resets: 11, then: 3 * time.Second, more: 0, overdrawn: true, admitAfter: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			now := time.Unix(1000, 0)
			b := New(Config{Rate: 5, Burst: 10, Penalty: 2 * time.Second, Logger: slog.New(slog.DiscardHandler)})
			b.now = func() time.Time { return now }
			var closed, otherClosed int
			release, ok := b.Admit(attacker, func() { closed++ })
			if !ok {
				t.Fatal("first connection refused")
			}
			defer release()
			releaseOther, _ := b.Admit(other, func() { otherClosed++ })
			defer releaseOther()
			overdrawn := false
			for range tc.resets {
				overdrawn = b.Reset(attacker) || overdrawn
			}
			now = now.Add(tc.then)
			for range tc.more {
				overdrawn = b.Reset(attacker) || overdrawn
			}
			if overdrawn != tc.overdrawn {
				t.Fatalf("overdrawn %v, want %v", overdrawn, tc.overdrawn)
			}
			if want := map[bool]int{true: 1, false: 0}[tc.overdrawn]; closed != want {
				t.Fatalf("the peer's connection closed %d times, want %d", closed, want)
			}
			if otherClosed != 0 {
				t.Fatal("another peer's connection was closed")
			}
			r, ok := b.Admit(attacker, func() {})
			if ok != tc.admitAfter {
				t.Fatalf("new connection admitted %v, want %v", ok, tc.admitAfter)
			}
			if ok {
				r()
			}
			if _, ok := b.Admit(other, func() {}); !ok {
				t.Fatal("another peer was refused")
			}
		})
	}
}

// TestZeroPeerNotBudgeted: a connection without an identity (a plaintext
// listener's) is never budgeted.
func TestZeroPeerNotBudgeted(t *testing.T) {
	b := New(Config{Rate: 1, Burst: 1, Logger: slog.New(slog.DiscardHandler)})
	for range 100 {
		if b.Reset(spiffe.ID{}) {
			t.Fatal("a peer without identity overdrew")
		}
	}
}

// TestSweepForgetsIdlePeers: past sweepAbove peers, those with no
// connection, no penalty and a full bucket are forgotten.
func TestSweepForgetsIdlePeers(t *testing.T) {
	b := New(Config{Logger: slog.New(slog.DiscardHandler)})
	for i := range sweepAbove + 10 {
		r, _ := b.Admit(spiffe.ID{TrustDomain: "td", Namespace: "n", ServiceAccount: string(rune('a'+i%26)) + time.Duration(i).String()}, func() {})
		r()
	}
	b.Admit(attacker, func() {})
	b.mu.Lock()
	n := len(b.peers)
	b.mu.Unlock()
	if n > 20 {
		t.Fatalf("%d peers kept, want the sweep to forget the idle ones", n)
	}
}

// BenchmarkReset is the cost of a reset within the budget (every reset
// of a flood before the peer overdraws): no allocation.
func BenchmarkReset(b *testing.B) {
	bg := New(Config{Rate: 1e12, Burst: 1 << 30, Logger: slog.New(slog.DiscardHandler)})
	b.ReportAllocs()
	for b.Loop() {
		bg.Reset(attacker)
	}
}
