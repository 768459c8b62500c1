package waypoint

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/gowaypoint/waypoint/protocols/spiffe"
	"github.com/gowaypoint/waypoint/proxy/certs"
	"github.com/gowaypoint/waypoint/xds"
)

func TestWildcards(t *testing.T) {
	ips := func(ss ...string) []netip.Addr {
		var out []netip.Addr
		for _, s := range ss {
			out = append(out, netip.MustParseAddr(s))
		}
		return out
	}
	for _, tc := range []struct {
		ips  []netip.Addr
		want string
	}{
		{nil, "0.0.0.0:15008"},
		{ips("10.0.0.1"), "0.0.0.0:15008"},
		{ips("fd00::1"), "[::]:15008"},
		{ips("10.0.0.1", "fd00::1"), "0.0.0.0:15008,[::]:15008"},
		{ips("fd00::1", "10.0.0.1"), "[::]:15008,0.0.0.0:15008"},
	} {
		if got := JoinAddrs(Wildcards(tc.ips, DefaultHBONEPort)); got != tc.want {
			t.Errorf("%v: %s, want %s", tc.ips, got, tc.want)
		}
	}
	if got, _ := ParseAddrs(DefaultHBONEAddr); !cmp.Equal(got, Wildcards(nil, DefaultHBONEPort), cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b })) {
		t.Errorf("DefaultHBONEAddr %s is not an IPv4 pod's wildcard", DefaultHBONEAddr)
	}
}

func TestParseAddrs(t *testing.T) {
	got, err := ParseAddrs("127.0.8.5:15008, [::1]:15008")
	if err != nil || JoinAddrs(got) != "127.0.8.5:15008,[::1]:15008" {
		t.Errorf("%v %v", got, err)
	}
	if _, err := ParseAddrs("127.0.8.5:15008,::1:15008"); err == nil {
		t.Error("an IPv6 address without brackets is taken")
	}
}

// A dual-stack waypoint serves HBONE on each of its addresses (here
// 127.0.8.6 and ::1, the one IPv6 address of the test machines).
func TestHBONEOnEveryAddress(t *testing.T) {
	dir := t.TempDir()
	id := spiffe.ID{TrustDomain: "cluster.local", Namespace: "ns", ServiceAccount: "waypoint"}
	if err := certs.WriteMesh(certs.MeshOptions{Dir: dir, IDs: []spiffe.ID{id}}); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(file, []byte(plaintextConfig("127.0.8.6:0", "127.0.8.6:1")), 0o644); err != nil {
		t.Fatal(err)
	}
	w, err := Start(Options{
		ConfigFile: file, CertDir: certs.IdentityDir(dir, id),
		HBONEAddr: "127.0.8.6:0,[::1]:0", AdminAddr: "off",
		ConfigPollInterval: -1, Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Shutdown(context.Background())
	addrs := w.HBONEAddrs()
	if len(addrs) != 2 || w.HBONEAddr() != addrs[0] {
		t.Fatalf("HBONE on %v (first %v), want two addresses", addrs, w.HBONEAddr())
	}
	for i, want := range []string{"127.0.8.6", "::1"} {
		ap := netip.MustParseAddrPort(addrs[i].String())
		if ap.Addr().String() != want {
			t.Errorf("address %d: %s, want %s", i, ap, want)
		}
		// The HBONE server answers TLS with ALPN h2 there.
		c, err := tls.Dial("tcp", ap.String(), &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2"}})
		if err != nil {
			// It wants a client certificate: the handshake reaching
			// that point is enough.
			t.Logf("%s: %v", ap, err)
			continue
		}
		c.Close()
	}
}

// Without --hbone-addr, HBONE is served where the config's HBONE entry
// says: its address and additional_addresses (istiod's dual-stack
// connect_terminate: 0.0.0.0:15008 and [::]:15008); without an entry, on
// the wildcards of the pod's IPs.
func TestHBONEListenAddrs(t *testing.T) {
	entry := &xds.Listener{Name: "connect_terminate", HBONE: &xds.HBONEEntry{},
		Address: netip.MustParseAddrPort("0.0.0.0:15008"), AdditionalAddresses: []netip.AddrPort{netip.MustParseAddrPort("[::]:15008")}}
	for _, tc := range []struct {
		name string
		opts Options
		snap *xds.Snapshot
		want string
	}{
		{"the entry's addresses", Options{}, &xds.Snapshot{Listeners: []*xds.Listener{entry}}, "0.0.0.0:15008,[::]:15008"},
		{"the flag over the entry", Options{HBONEAddr: "127.0.8.7:15008,[::1]:15008"}, &xds.Snapshot{Listeners: []*xds.Listener{entry}},
			"127.0.8.7:15008,[::1]:15008"},
		{"no entry: an IPv4 pod", Options{PodIPs: []netip.Addr{netip.MustParseAddr("10.0.0.1")}}, &xds.Snapshot{}, "0.0.0.0:15008"},
		{"no entry: an IPv6 pod", Options{PodIPs: []netip.Addr{netip.MustParseAddr("fd00::1")}}, &xds.Snapshot{}, "[::]:15008"},
	} {
		w := &Waypoint{opts: tc.opts}
		got, err := w.hboneListenAddrs(tc.snap)
		if err != nil || JoinAddrs(got) != tc.want {
			t.Errorf("%s: %v %v, want %s", tc.name, JoinAddrs(got), err, tc.want)
		}
	}
}
