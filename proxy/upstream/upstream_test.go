package upstream

import (
	"context"
	"net"
	"net/netip"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/gowaypoint/waypoint/protocols/status"
	"github.com/gowaypoint/waypoint/xds"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// Addresses of this package's tests: 127.0.9.0/24.

func TestPickIsWeightedRoundRobin(t *testing.T) {
	cl := &xds.Cluster{Name: "c", Endpoints: []xds.Endpoint{
		{Address: netip.MustParseAddrPort("127.0.9.1:80"), Weight: 3},
		{Address: netip.MustParseAddrPort("127.0.9.2:80"), Weight: 1},
		{Address: netip.MustParseAddrPort("127.0.9.3:80")}, // weight 0 counts as 1
	}}
	var c Connector
	counts := map[netip.AddrPort]int{}
	for range 500 {
		ep, ok := c.pick(cl)
		if !ok {
			t.Fatal("no endpoint picked")
		}
		counts[ep.Address]++
	}
	want := map[string]int{"127.0.9.1:80": 300, "127.0.9.2:80": 100, "127.0.9.3:80": 100}
	for addr, n := range want {
		if got := counts[netip.MustParseAddrPort(addr)]; got != n {
			t.Errorf("%s picked %d times of 500, want %d", addr, got, n)
		}
	}
}

func TestConnectErrorsAreClassified(t *testing.T) {
	// A port that was just free: connecting to it is refused.
	ln, err := net.Listen("tcp", "127.0.9.4:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().(*net.TCPAddr).AddrPort()
	ln.Close()

	var c Connector
	cases := []struct {
		name string
		cl   *xds.Cluster
		want status.Kind
	}{
		{"no cluster", nil, status.NoCluster},
		{"no endpoint", &xds.Cluster{Name: "empty", ConnectTimeout: time.Second}, status.NoHealthyUpstream},
		{"refused", &xds.Cluster{Name: "plain", ConnectTimeout: time.Second, Transport: xds.TransportPlaintext,
			Endpoints: []xds.Endpoint{{Address: closed}}}, status.ConnectFailure},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			conn, _, err := c.Connect(context.Background(), tc.cl)
			if err == nil {
				conn.Close()
				t.Fatal("Connect succeeded")
			}
			if got := status.KindOf(err); got != tc.want {
				t.Errorf("kind %v (%v), want %v", got, err, tc.want)
			}
		})
	}
}

func TestConnectPlaintext(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.9.5:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			c.Write([]byte("hi"))
			c.Close()
		}
	}()
	var c Connector
	addr := ln.Addr().(*net.TCPAddr).AddrPort()
	conn, ep, err := c.Connect(context.Background(), &xds.Cluster{Name: "plain", ConnectTimeout: time.Second,
		Transport: xds.TransportPlaintext, Endpoints: []xds.Endpoint{{Address: addr}}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	buf := make([]byte, 2)
	if _, err := conn.Read(buf); err != nil || string(buf) != "hi" || ep != addr {
		t.Fatalf("read %q %v from %v, want \"hi\" from %v", buf, err, ep, addr)
	}
}
