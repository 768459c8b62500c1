package main

import (
	"io"
	"net"
	"net/http"
	"net/netip"
	"testing"
	"time"

	"github.com/gowaypoint/waypoint/protocols/spiffe"
	"github.com/gowaypoint/waypoint/proxy/certs"
)

// testFirstPod is the first pod address of the tests, 127.79.249.1: the
// last block, far from the addresses a soak running at the same time
// takes first.
const testFirstPod = maxPodIPs - 250

func newTestPods(t *testing.T, slots int) *pods {
	t.Helper()
	dir := t.TempDir()
	if err := certs.WriteMesh(certs.MeshOptions{Dir: dir, TrustDomain: "cluster.local", IDs: []spiffe.ID{idPod}}); err != nil {
		t.Fatal(err)
	}
	p, err := newPods(dir, testFirstPod, slots)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.close)
	return p
}

// get asks the pod's backend directly.
func get(addr netip.Addr) (string, error) {
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get("http://" + netip.AddrPortFrom(addr, podPort).String() + "/")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

func listening(addr netip.Addr, port uint16) bool {
	c, err := net.DialTimeout("tcp", netip.AddrPortFrom(addr, port).String(), 5*time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// TestPodLifecycle: a pod serves once started, keeps serving through its
// grace after it left, and is gone (both ports) once stopped; its address
// goes to the back of the free ones.
func TestPodLifecycle(t *testing.T) {
	p := newTestPods(t, 3)
	a, err := p.start()
	if err != nil {
		t.Fatal(err)
	}
	b, err := p.start()
	if err != nil {
		t.Fatal(err)
	}
	if a.addr != podAddr(testFirstPod+0) || b.addr != podAddr(testFirstPod+1) {
		t.Fatalf("pods at %s and %s, want the first free addresses %s and %s", a.addr, b.addr, podAddr(testFirstPod+0), podAddr(testFirstPod+1))
	}
	if body, err := get(a.addr); err != nil || body != "ok" {
		t.Fatalf("pod a answers %q, %v; want ok", body, err)
	}
	if !listening(a.addr, 15008) {
		t.Fatal("pod a's ztunnel is not listening")
	}
	gone := p.leave(1)
	if len(gone) != 1 || gone[0] != a {
		t.Fatalf("leave(1) = %v, want pod a, the oldest", gone)
	}
	if got := p.liveAddrs(); len(got) != 1 || got[0] != b.addr {
		t.Fatalf("live %v, want only pod b", got)
	}
	p.retire(gone, time.Hour)
	if body, err := get(a.addr); err != nil || body != "ok" {
		t.Fatalf("during its grace pod a answers %q, %v; want ok", body, err)
	}
	p.close()
	for _, pd := range []*pod{a, b} {
		for _, port := range []uint16{podPort, 15008} {
			if listening(pd.addr, port) {
				t.Errorf("%s:%d still listening after close", pd.addr, port)
			}
		}
	}
	if s, st := p.started.Load(), p.stopped.Load(); s != 2 || st != 2 {
		t.Errorf("started %d, stopped %d; want 2, 2", s, st)
	}
	if n := len(p.free); n != 3 || p.free[0] != podAddr(testFirstPod+2) {
		t.Errorf("free %v, want the unused %s first, then the two released", p.free, podAddr(testFirstPod+2))
	}
	if _, err := p.start(); err == nil {
		t.Error("start after close: want an error")
	}
}

func TestPodsRunOut(t *testing.T) {
	p := newTestPods(t, 1)
	if _, err := p.start(); err != nil {
		t.Fatal(err)
	}
	if _, err := p.start(); err == nil {
		t.Error("a second pod with one address: want an error")
	}
}
