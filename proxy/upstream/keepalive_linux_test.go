package upstream

import (
	"context"
	"net"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"github.com/gowaypoint/waypoint/protocols/spiffe"
	"github.com/gowaypoint/waypoint/proxy/relay"
	"github.com/gowaypoint/waypoint/xds"
)

// TestPlaintextKeepalive checks the socket options of a cluster's plaintext connections:
// keep-alive off without tcp_keepalive (as Envoy; Go's dialer would turn it on), on with the
// settings given and the system's values for the others.
func TestPlaintextKeepalive(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.9.30:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	sysIdle, sysIntvl, sysCnt := systemKeepalive(t)
	for _, tc := range []struct {
		name             string
		ka               *xds.TCPKeepalive
		on               bool
		idle, intvl, cnt int
	}{
		{"none: off", nil, false, 0, 0, 0},
		{"all set", &xds.TCPKeepalive{Probes: 4, Time: 600 * time.Second, Interval: 20 * time.Second}, true, 600, 20, 4},
		{"empty: on with the system's values", &xds.TCPKeepalive{}, true, sysIdle, sysIntvl, sysCnt},
		{"time only", &xds.TCPKeepalive{Time: 30 * time.Second}, true, 30, sysIntvl, sysCnt},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := NewDialer(nil, nil)
			cl := &xds.Cluster{Name: "c", ConnectTimeout: time.Second, Transport: xds.TransportPlaintext, TCPKeepalive: tc.ka}
			conn, err := d.Dial(context.Background(), cl, netip.MustParseAddrPort(ln.Addr().String()), spiffe.ID{})
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			on, idle, intvl, cnt := sockKeepalive(t, conn.(relay.TCP).Raw())
			if on != tc.on || (tc.on && (idle != tc.idle || intvl != tc.intvl || cnt != tc.cnt)) {
				t.Errorf("keep-alive %v idle %d interval %d probes %d; want %v %d %d %d", on, idle, intvl, cnt, tc.on, tc.idle, tc.intvl, tc.cnt)
			}
		})
	}
}

func sockKeepalive(t *testing.T, rc syscall.RawConn) (on bool, idle, intvl, cnt int) {
	t.Helper()
	var errs [4]error
	var ka int
	rc.Control(func(fd uintptr) {
		ka, errs[0] = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_KEEPALIVE)
		idle, errs[1] = syscall.GetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_KEEPIDLE)
		intvl, errs[2] = syscall.GetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_KEEPINTVL)
		cnt, errs[3] = syscall.GetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_KEEPCNT)
	})
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	return ka != 0, idle, intvl, cnt
}

// systemKeepalive returns the keep-alive settings of a new socket: the system's.
func systemKeepalive(t *testing.T) (idle, intvl, cnt int) {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fd)
	idle, _ = syscall.GetsockoptInt(fd, syscall.IPPROTO_TCP, syscall.TCP_KEEPIDLE)
	intvl, _ = syscall.GetsockoptInt(fd, syscall.IPPROTO_TCP, syscall.TCP_KEEPINTVL)
	cnt, _ = syscall.GetsockoptInt(fd, syscall.IPPROTO_TCP, syscall.TCP_KEEPCNT)
	return idle, intvl, cnt
}
