package dubboconn

import (
	"net/netip"
	"testing"
	"time"
)

// Addresses of this file's tests: 127.0.95.0/24 (the providers on
// 127.0.95.11 and .12; nothing listens on .13).

// poolCount is how many (cluster, endpoint) pools Upstreams holds.
func (u *Upstreams) poolCount() int {
	n := 0
	u.pools.Range(func(any, any) bool { n++; return true })
	return n
}

// TestPoolsLeaveWithTheirConnections: a pool leaves Upstreams when its last
// connection closes (the provider went away, the connection idled out) or
// its dial fails, and a later call to the endpoint gets a new one.
func TestPoolsLeaveWithTheirConnections(t *testing.T) {
	a, b := netip.MustParseAddrPort(telPodA), netip.MustParseAddrPort(telPodB)
	dead := netip.MustParseAddrPort("127.0.95.13:20880")
	e := newEnv(t, envOptions{listenIP: telWaypointIP, clusters: []clusterT{{"a", []netip.AddrPort{a}}, {"b", []netip.AddrPort{dead}},
		{"ab", []netip.AddrPort{a, b}}, {"empty", nil}}, upstream: UpstreamConfig{IdleTimeout: 300 * time.Millisecond, HeartbeatInterval: 100 * time.Millisecond}})
	c := e.consumer()
	ctx := ctxTimeout(t, 20*time.Second)
	call := func(method string, atts map[string]string, want byte) {
		t.Helper()
		r, err := c.Call(ctx, greeter(method), []any{"x"}, atts)
		if err != nil || r.Status != want {
			t.Fatalf("%s: %+v %v, want status %d", method, r, err, want)
		}
	}

	pa := provider(t, telPodA, "pod-a", nil)
	call("toA", nil, 20)
	if n := e.ups.poolCount(); n != 1 {
		t.Fatalf("%d pools after a call to pod a, want 1", n)
	}
	pa.Kill()
	waitFor(t, "the pool of the killed provider is gone", func() bool { return e.ups.poolCount() == 0 })

	provider(t, telPodA, "pod-a", nil)
	call("toA", nil, 20)
	if n := e.ups.poolCount(); n != 1 {
		t.Fatalf("%d pools after pod a came back, want 1", n)
	}
	waitFor(t, "the pool of the idle connection is gone", func() bool { return e.ups.poolCount() == 0 })

	call("hello", map[string]string{"x-pod": "b"}, 80) // cluster b: nobody listens there
	waitFor(t, "the pool of the failed dial is gone", func() bool { return e.ups.poolCount() == 0 })
	call("toA", nil, 20)
}
