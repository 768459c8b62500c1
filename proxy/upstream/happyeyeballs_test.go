package upstream

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/gowaypoint/waypoint/protocols/spiffe"
	"github.com/gowaypoint/waypoint/protocols/status"
	"github.com/gowaypoint/waypoint/proxy/certs"
	"github.com/gowaypoint/waypoint/proxy/hbone"
	"github.com/gowaypoint/waypoint/proxy/ztunnel"
	"github.com/gowaypoint/waypoint/xds"
)

// Dual-stack endpoints: 127.35.0.0/24 and ::1 (the one IPv6 address the
// test machines have).

func TestHappyEyeballsOrder(t *testing.T) {
	aps := func(ss ...string) []netip.AddrPort {
		var out []netip.AddrPort
		for _, s := range ss {
			out = append(out, netip.MustParseAddrPort(s))
		}
		return out
	}
	for _, tc := range []struct {
		addr  string
		extra []netip.AddrPort
		want  []netip.AddrPort
	}{
		{"10.0.0.1:80", aps("[fd00::1]:80"), aps("10.0.0.1:80", "[fd00::1]:80")},
		{"[fd00::1]:80", aps("10.0.0.1:80"), aps("[fd00::1]:80", "10.0.0.1:80")},
		// The other family first, then alternating, each family in order.
		{"10.0.0.1:80", aps("10.0.0.2:80", "10.0.0.3:80", "[fd00::1]:80", "[fd00::2]:80"),
			aps("10.0.0.1:80", "[fd00::1]:80", "10.0.0.2:80", "[fd00::2]:80", "10.0.0.3:80")},
		{"10.0.0.1:80", aps("10.0.0.2:80"), aps("10.0.0.1:80", "10.0.0.2:80")},
	} {
		if got := happyEyeballsOrder(netip.MustParseAddrPort(tc.addr), tc.extra); !cmp.Equal(got, tc.want, cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b })) {
			t.Errorf("%s %v: got %v, want %v", tc.addr, tc.extra, got, tc.want)
		}
	}
}

// whoAmI serves TCP on ln, writing each connection's local address.
func whoAmI(t *testing.T, ln net.Listener) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			io.WriteString(c, c.LocalAddr().String())
			c.Close()
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
}

func listenOn(t *testing.T, addr string) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("cannot listen on %s: %v", addr, err)
	}
	return ln
}

// dualSnapshot is a config whose cluster c0 has one endpoint, primary,
// with the additional addresses extra.
func dualSnapshot(t testing.TB, primary string, extra ...string) *xds.Snapshot {
	snap := snapshot(t, map[string][]string{"c0": {primary}}, nil)
	cl := snap.Cluster("c0")
	for _, e := range extra {
		cl.Endpoints[0].AdditionalAddresses = append(cl.Endpoints[0].AdditionalAddresses, netip.MustParseAddrPort(e))
	}
	return snap
}

func readAll(t *testing.T, c io.Reader) string {
	t.Helper()
	b, err := io.ReadAll(c)
	if err != nil && !errors.Is(err, io.EOF) {
		t.Fatal(err)
	}
	return string(b)
}

// The primary address refuses: the additional address is tried at once,
// without waiting for the happy eyeballs delay.
func TestHappyEyeballsRefusedPrimary(t *testing.T) {
	ln := listenOn(t, "[::1]:0")
	whoAmI(t, ln)
	port := ln.Addr().(*net.TCPAddr).Port
	primary := closedPort(t, "127.35.0.1")
	_, pport, _ := net.SplitHostPort(primary)
	if pport == "" || port == 0 {
		t.Fatal("no port")
	}
	snap := dualSnapshot(t, primary, ln.Addr().String())
	c := newClusters(t, snap)
	start := time.Now()
	conn, _, done, err := c.ConnectTCP(context.Background(), snap, "c0")
	if err != nil {
		t.Fatal(err)
	}
	defer done()
	defer conn.Close()
	if d := time.Since(start); d >= HappyEyeballsDelay {
		t.Errorf("took %v: a refusal should move on at once", d)
	}
	if got := readAll(t, conn); got != ln.Addr().String() {
		t.Errorf("connected to %q, want %s", got, ln.Addr())
	}
}

// stalled returns an address whose connects get no answer: a listener
// with a full backlog, whose SYNs the kernel drops.
func stalled(t *testing.T) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 35, 0, 2}}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, _ := syscall.Getsockname(fd)
	addr := netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 35, 0, 2}), uint16(sa.(*syscall.SockaddrInet4).Port)).String()
	// Fill the accept queue; then a connect hangs.
	for i := 0; ; i++ {
		c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
		if err != nil {
			break
		}
		t.Cleanup(func() { c.Close() })
		if i > 16 {
			t.Skip("the backlog never fills")
		}
	}
	return addr
}

// The primary address does not answer: the additional address is tried
// after the happy eyeballs delay, and wins.
func TestHappyEyeballsStalledPrimary(t *testing.T) {
	ln := listenOn(t, "[::1]:0")
	whoAmI(t, ln)
	snap := dualSnapshot(t, stalled(t), ln.Addr().String())
	c := newClusters(t, snap)
	start := time.Now()
	conn, _, done, err := c.ConnectTCP(context.Background(), snap, "c0")
	if err != nil {
		t.Fatal(err)
	}
	defer done()
	defer conn.Close()
	if d := time.Since(start); d < HappyEyeballsDelay || d > time.Second {
		t.Errorf("took %v, want the happy eyeballs delay (%v)", d, HappyEyeballsDelay)
	}
	if got := readAll(t, conn); got != ln.Addr().String() {
		t.Errorf("connected to %q, want %s", got, ln.Addr())
	}
}

// Every address refuses: a connect failure naming each.
func TestHappyEyeballsAllRefused(t *testing.T) {
	v6 := closedPort(t, "[::1]")
	snap := dualSnapshot(t, closedPort(t, "127.35.0.1"), v6)
	c := newClusters(t, snap)
	_, _, _, err := c.ConnectTCP(context.Background(), snap, "c0")
	if status.KindOf(err) != status.ConnectFailure || !strings.Contains(err.Error(), v6) || !strings.Contains(err.Error(), "127.35.0.1") {
		t.Fatalf("error %v (kind %v), want a connect failure naming both addresses", err, status.KindOf(err))
	}
}

// Over HBONE, the attempt that wins is the CONNECT to the additional
// address's ztunnel, with that address (IPv6 in brackets) as :authority:
// the ztunnel, serving only ::1, refuses any other.
func TestHappyEyeballsHBONEAuthority(t *testing.T) {
	dir := t.TempDir()
	wp := spiffe.ID{TrustDomain: "cluster.local", Namespace: "ns", ServiceAccount: "waypoint"}
	pod := spiffe.ID{TrustDomain: "cluster.local", Namespace: "ns", ServiceAccount: "pod"}
	if err := certs.WriteMesh(certs.MeshOptions{Dir: dir, TrustDomain: "cluster.local", IDs: []spiffe.ID{wp, pod}}); err != nil {
		t.Fatal(err)
	}
	source := func(id spiffe.ID) *certs.Source {
		src, err := certs.NewSource(certs.IdentityDir(dir, id), certs.SourceOptions{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { src.Close() })
		return src
	}
	wpSrc, podSrc := source(wp), source(pod)
	quiet := slog.New(slog.DiscardHandler)
	zt, err := hbone.NewServer(hbone.ServerConfig{TLS: podSrc.ServerTLSConfig(), PeerIdentity: certs.PeerIdentity,
		Handler: &ztunnel.Destination{LocalIPs: []netip.Addr{netip.IPv6Loopback()}, Log: quiet}, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	zln := listenOn(t, "[::1]:0")
	served := make(chan struct{})
	go func() { defer close(served); zt.Serve(zln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		zt.Shutdown(ctx)
		<-served
	})
	back := listenOn(t, "[::1]:0")
	whoAmI(t, back)
	bport := back.Addr().(*net.TCPAddr).Port

	snap := dualSnapshot(t, netip.AddrPortFrom(netip.MustParseAddr("127.35.0.1"), uint16(bport)).String(), back.Addr().String())
	cl := snap.Cluster("c0")
	cl.Transport = xds.TransportHBONE
	cl.HBONEPort = uint16(zln.Addr().(*net.TCPAddr).Port) // nobody on 127.35.0.1 there: refused
	pool := hbone.NewPool(hbone.PoolConfig{Logger: quiet})
	t.Cleanup(pool.Close)
	c := NewClusters(NewDialer(pool, wpSrc))
	c.Update(snap)
	t.Cleanup(c.Close)
	conn, _, done, err := c.ConnectTCP(context.Background(), snap, "c0")
	if err != nil {
		t.Fatal(err)
	}
	defer done()
	defer conn.Close()
	if got := readAll(t, conn); got != back.Addr().String() {
		t.Errorf("reached %q, want %s", got, back.Addr())
	}
}
