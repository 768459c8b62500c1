package dubboconn

import (
	"testing"
	"time"

	"github.com/gowaypoint/waypoint/proxy/dubboconn/dubbotest"
)

// TestDrainTellsConsumersReadonly: Drain sends the readonly event to the
// consumers connected, and to those that connect afterwards, and calls
// keep being served.
func TestDrainTellsConsumersReadonly(t *testing.T) {
	provider(t, telPodA, "pod-a", nil)
	e := newEnv(t, envOptions{listenIP: telWaypointIP, clusters: []clusterT{{"a", addrs(telPodA)}, {"b", addrs(telPodA)}, {"ab", addrs(telPodA)}, {"empty", nil}}})
	ctx := ctxTimeout(t, 20*time.Second)
	call := func(c *dubbotest.Consumer) {
		t.Helper()
		r, err := c.Call(ctx, greeter("toA"), []any{"x"}, nil)
		if err != nil || r.Status != 20 || r.Value != "pod-a: toA(x)" {
			t.Fatalf("%+v %v", r, err)
		}
	}
	before, idle := e.consumer(), e.consumer()
	call(before)
	call(idle)
	if before.Readonly.Load() != 0 {
		t.Fatal("a readonly event before the drain")
	}
	if n := e.denv.Drain(); n != 2 {
		t.Fatalf("Drain told %d consumers, want 2", n)
	}
	waitFor(t, "both consumers get the readonly event", func() bool { return before.Readonly.Load() == 1 && idle.Readonly.Load() == 1 })
	call(before) // calls in flight or new ones are still served while the waypoint drains

	after := e.consumer()
	call(after)
	waitFor(t, "a consumer connecting during the drain gets the readonly event", func() bool { return after.Readonly.Load() == 1 })
	if before.Readonly.Load() != 1 || before.Heartbeats.Load() != 0 || before.Unmatched.Load() != 0 {
		t.Fatalf("readonly %d, heartbeats %d, unmatched %d: want the one event and nothing else",
			before.Readonly.Load(), before.Heartbeats.Load(), before.Unmatched.Load())
	}
}
