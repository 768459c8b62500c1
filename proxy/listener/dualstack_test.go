package listener

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"syscall"
	"testing"
)

// A listener with additional_addresses listens on each (here 127.78.0.3
// and ::1, the one IPv6 address the test machines have), and serves both
// with its chains.
func TestListenerAdditionalAddresses(t *testing.T) {
	config := strings.Replace(httpConfig, "address: {socket_address: {address: 127.78.0.1, port_value: 7100}}",
		`address: {socket_address: {address: 127.78.0.3, port_value: 0}}
    additional_addresses: [{address: {socket_address: {address: "::1", port_value: 0}}}]`, 1)
	config = strings.Replace(config, "BACKEND_PORT", "1", 1)
	m := startManager(t, config)
	addrs := m.Addrs("front")
	if len(addrs) != 2 {
		t.Fatalf("bound %v, want two addresses", addrs)
	}
	for i, want := range []string{"127.78.0.3", "::1"} {
		ap := netip.MustParseAddrPort(addrs[i].String())
		if ap.Addr().String() != want {
			t.Errorf("address %d: %s, want %s", i, ap, want)
		}
		resp, err := http.Get(fmt.Sprintf("http://%s/", ap))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(body) != "ok" {
			t.Errorf("%s: %d %q", ap, resp.StatusCode, body)
		}
	}
	if a, _ := m.Addr("front"); a.String() != addrs[0].String() {
		t.Errorf("Addr %v, want the primary %v", a, addrs[0])
	}
}

// Listen binds an IPv6 address IPv6 only (IPV6_V6ONLY), as Envoy does,
// so that a dual-stack listener's 0.0.0.0 and [::] on one port bind side
// by side (checked on ::1: tests bind loopback only).
func TestListenIPv6Only(t *testing.T) {
	ln, err := Listen(netip.MustParseAddrPort("[::1]:0"))
	if err != nil {
		t.Skipf("no IPv6 here: %v", err)
	}
	defer ln.Close()
	rc, err := ln.(*net.TCPListener).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var v6only int
	var serr error
	rc.Control(func(fd uintptr) {
		v6only, serr = syscall.GetsockoptInt(int(fd), syscall.IPPROTO_IPV6, syscall.IPV6_V6ONLY)
	})
	if serr != nil || v6only != 1 {
		t.Errorf("IPV6_V6ONLY = %d (%v), want 1", v6only, serr)
	}
}
