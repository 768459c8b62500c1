package adsclient

import (
	"fmt"
	"strings"
	"testing"
	"time"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/proto"

	"github.com/gowaypoint/waypoint/xds"
)

// A listener push that decodes but that the waypoint cannot take (Apply refuses the
// snapshot it makes, as when a listener's address cannot be bound) is NACKed, as Envoy's
// listener manager rejects it, and forgotten: the config in force keeps serving, and the
// next push the waypoint can take is applied on top of what serves, not of what was refused.
func TestApplyRefusalNACKed(t *testing.T) {
	for i, delta := range []bool{false, true} {
		name := map[bool]string{false: "sotw", true: "delta"}[delta]
		t.Run(name, func(t *testing.T) { testApplyRefusal(t, fmt.Sprintf("127.0.70.%d:15010", 41+i), delta) })
	}
}

func testApplyRefusal(t *testing.T, addr string, delta bool) {
	cp := startServer(t, addr, fixture(t))
	defer cp.stop()
	c := runClient(t, addr, Config{Delta: delta, Apply: func(s *xds.Snapshot) error {
		if s.Listener("unbindable") != nil {
			return fmt.Errorf("listener unbindable: address in use")
		}
		return nil
	}})
	waitReady(t, c, 10*time.Second, "no config applied")
	first := c.Snapshot()
	ldsVersion := c.Versions()[resourcev3.ListenerType]

	r := fixture(t)
	bad := proto.Clone(r.Listeners[0]).(*listenerv3.Listener)
	bad.Name = "unbindable"
	r.Listeners = append(r.Listeners, bad)
	if err := cp.srv.Push(r); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the refusal", func() bool { n, _ := c.NACKs(); return n == 1 })
	if _, last := c.NACKs(); !strings.Contains(last, "not applied: listener unbindable: address in use") {
		t.Errorf("NACK %q", last)
	}
	if c.Snapshot().Listener("unbindable") != nil || c.Versions()[resourcev3.ListenerType] != ldsVersion {
		t.Errorf("the refused listener push changed what serves (version %q, was %q)", c.Versions()[resourcev3.ListenerType], ldsVersion)
	}

	// A push without it is taken.
	r = fixture(t)
	r.Listeners = r.Listeners[1:]
	if err := cp.srv.Push(r); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the next push applied", func() bool {
		s := c.Snapshot()
		return s != first && s.Listener(fixture(t).Listeners[0].GetName()) == nil
	})
	if n, _ := c.NACKs(); n != 1 {
		t.Errorf("%d NACKs, want 1", n)
	}
}
