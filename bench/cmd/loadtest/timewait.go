package main

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"time"
)

// timeWaitMax bounds how long the idle scenario waits for the sockets of
// its previous round to leave TIME_WAIT (the kernel keeps them 60 s).
const timeWaitMax = 75 * time.Second

// waitForPorts waits until `need` more connections from this machine to
// dst can get an ephemeral port. Every idle round closes thousands of
// connections from `hbone serve` to the echo, and the side that closes
// first keeps each one in TIME_WAIT for a minute, holding its port; a
// round started too soon fails its dials with EADDRNOTAVAIL. It returns
// how long it waited.
func waitForPorts(ctx context.Context, dst netip.AddrPort, need int) (time.Duration, error) {
	lo, hi := 32768, 60999
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		fmt.Sscan(string(b), &lo, &hi)
	}
	ports := hi - lo + 1
	start := time.Now()
	for said := false; ; {
		b, err := os.ReadFile("/proc/net/tcp")
		if err != nil {
			return 0, err
		}
		held := countTo(b, dst)
		if ports-held >= need+1000 || time.Since(start) > timeWaitMax {
			return time.Since(start), nil
		}
		if !said {
			fmt.Printf("  waiting for %d sockets to %s to leave TIME_WAIT (%d ephemeral ports, %d needed)\n", held, dst, ports, need)
			said = true
		}
		select {
		case <-ctx.Done():
			return time.Since(start), ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// countTo counts the sockets in /proc/net/tcp's text whose remote end is
// dst, whatever their state.
func countTo(procNetTCP []byte, dst netip.AddrPort) int {
	want := procNetAddr(dst)
	n := 0
	for _, line := range strings.Split(string(procNetTCP), "\n") {
		f := strings.Fields(line)
		if len(f) > 3 && f[2] == want {
			n++
		}
	}
	return n
}

// procNetAddr writes an IPv4 address and port as /proc/net/tcp does: the
// address's four bytes as one little-endian word in hex, then the port.
func procNetAddr(ap netip.AddrPort) string {
	a := ap.Addr().As4()
	return fmt.Sprintf("%02X%02X%02X%02X:%04X", a[3], a[2], a[1], a[0], ap.Port())
}
