package hbone

import (
	"bufio"
	"context"
	"fmt"
	"github.com/gowaypoint/waypoint/internal/memtest"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gowaypoint/waypoint/proxy/overload"
)

// pendingDialerEnv makes TestHelperPendingDialer, run as a subprocess, the
// attacker of TestPendingHandshakeMemory: "addr,N".
const pendingDialerEnv = "HBONE_TEST_PENDING_DIALER"

// TestHelperPendingDialer opens N connections that never send a byte and
// holds them until its stdin closes. It does nothing in a normal run.
func TestHelperPendingDialer(t *testing.T) {
	arg := os.Getenv(pendingDialerEnv)
	if arg == "" {
		return
	}
	addr, ns, _ := strings.Cut(arg, ",")
	n, _ := strconv.Atoi(ns)
	memtest.RaiseFDLimit(t)
	conns := make([]net.Conn, 0, n)
	for range n {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			fmt.Println("error", err)
			return
		}
		conns = append(conns, c)
	}
	fmt.Println("ready")
	io.Copy(io.Discard, os.Stdin)
	for _, c := range conns {
		c.Close()
	}
}

// TestPendingHandshakeMemory measures what a connection waiting for its
// ClientHello costs the server: N connections from another process that
// send nothing, the server's memory in use (runtime/metrics: heap objects,
// goroutine stacks, runtime structures) and RSS before and after, per
// connection; then what is left once the peer has closed them all and the
// memory was returned (overload.ReturnMemory, as the overload manager does
// after a burst). Issue 16's target is 8 KiB per pending connection, and
// nothing left per connection after them (the runtime keeps the most
// goroutines and poll descriptors it ever had: a pending connection holds
// neither, parked). The figures are logged for docs/hardening.md.
func TestPendingHandshakeMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("opens thousands of connections")
	}
	limit := memtest.RaiseFDLimit(t)
	n := min(10000, int(limit)-200)
	m := newMesh(t)
	mgr, err := overload.New(overload.Synthesise(overload.Limits{MaxDownstreamConnections: -1}, 0, 0), overload.Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, addr := startServer(t, m, "127.0.7.62", echo, func(c *ServerConfig) {
		c.Overload = mgr
		c.HandshakeTimeout = 5 * time.Minute // the connections stay pending while measured
	})

	waitActive := func(want int64) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		for mgr.Active() != want {
			if ctx.Err() != nil {
				t.Fatalf("%d connections active, want %d", mgr.Active(), want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	// A first, smaller burst: what the server allocates once (its first
	// refusals, the runtime's first thousand connections) is not counted.
	closeAll := pendingBurst(t, addr.String(), n/10)
	waitActive(int64(n / 10))
	closeAll()
	waitActive(0)

	overload.ReturnMemory()
	base, baseRSS := overload.ReadMemory().InUse, memtest.RSS(t)
	closeAll = pendingBurst(t, addr.String(), n)
	defer closeAll()
	waitActive(int64(n))
	runtime.GC()
	inUse, nowRSS := overload.ReadMemory().InUse, memtest.RSS(t)
	perConn := float64(int64(inUse)-int64(base)) / float64(n)
	perConnRSS := float64(nowRSS-baseRSS) / float64(n)
	t.Logf("%d pending connections: memory in use +%.1f MiB (%.0f B each), RSS +%.1f MiB (%.0f B each), %d goroutines",
		n, float64(int64(inUse)-int64(base))/(1<<20), perConn, float64(nowRSS-baseRSS)/(1<<20), perConnRSS, runtime.NumGoroutine())

	// The peer closes them all: each is refused (EOF before its
	// ClientHello) and what it held is returned.
	closeAll()
	waitActive(0)
	overload.ReturnMemory()
	after, afterRSS := overload.ReadMemory().InUse, memtest.RSS(t)
	left := float64(int64(after)-int64(base)) / float64(n)
	t.Logf("after they closed and memory was returned: memory in use %+.1f MiB (%.0f B per connection), RSS %+.1f MiB (%.0f B per connection)",
		float64(int64(after)-int64(base))/(1<<20), left, float64(afterRSS-baseRSS)/(1<<20), float64(afterRSS-baseRSS)/float64(n))
	if raceEnabled {
		t.Log("built with -race, whose shadow memory grows each goroutine: the targets are checked without -race (go test -run TestPendingHandshakeMemory ./proxy/hbone)")
		return
	}
	if perConn > maxPerPending {
		t.Errorf("a pending handshake costs %.0f B of memory in use, over %d B", perConn, maxPerPending)
	}
	if left > maxLeftPerPending {
		t.Errorf("%.0f B of memory in use left per pending connection after they closed, over %d B", left, maxLeftPerPending)
	}
}

// pendingBurst opens n connections to addr from a subprocess
// (TestHelperPendingDialer) that send nothing; closeAll closes them and
// waits for the subprocess. Idempotent.
func pendingBurst(t *testing.T, addr string, n int) (closeAll func()) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperPendingDialer$")
	cmd.Env = append(os.Environ(), pendingDialerEnv+"="+addr+","+strconv.Itoa(n))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	closeAll = func() { once.Do(func() { stdin.Close(); cmd.Wait() }) }
	line, _ := bufio.NewReader(stdout).ReadString('\n')
	if strings.TrimSpace(line) != "ready" {
		closeAll()
		t.Fatalf("dialer: %q", line)
	}
	return closeAll
}

// maxPerPending is what a pending connection may hold: issue 16 asks for
// 8 KiB at most; parked (proxy/sockio/park) it holds no goroutine and no
// poll descriptor: its pending record, the Parker's slot and deadline, and
// their slices' slack (about 110 B measured).
const maxPerPending = 512

// maxLeftPerPending is what a pending connection may leave in use after it
// closed and memory was returned: the noise of the measure (0 to 30 B
// measured). Without the Parker each left its goroutine and poll
// descriptor, which the runtime keeps: about 1.1 KiB.
const maxLeftPerPending = 64

// TestShutdownClosesPendingConnections: connections waiting for their
// ClientHello are held by the Parker, counted by the overload manager
// while they wait, and closed at once by Shutdown, which then needs no
// forced close; they are not counted as refused.
func TestShutdownClosesPendingConnections(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the Parker is Linux only")
	}
	m := newMesh(t)
	mgr, err := overload.New(overload.Synthesise(overload.Limits{MaxDownstreamConnections: -1}, 0, 0), overload.Options{})
	if err != nil {
		t.Fatal(err)
	}
	srv, addr := startServer(t, m, "127.0.205.20", echo, func(c *ServerConfig) {
		c.Overload = mgr
		c.StatName = "pending_shutdown_test"
		c.HandshakeTimeout = time.Hour
	})
	const n = 5
	refused := counter(t, "envoy_listener_ssl_connection_error", "listener", "pending_shutdown_test") +
		counter(t, "envoy_listener_downstream_pre_cx_timeout", "listener", "pending_shutdown_test")
	var clients []net.Conn
	for range n {
		c, err := net.Dial("tcp", addr.String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		clients = append(clients, c)
	}
	for p := srv.parker.Load(); p == nil || p.Len() != n || mgr.Active() != n; p = srv.parker.Load() {
		time.Sleep(5 * time.Millisecond) // until all are parked (no parker: the test fails by its timeout)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v, want the pending connections closed without a forced drain", err)
	}
	for i, c := range clients {
		c.SetReadDeadline(time.Now().Add(30 * time.Second))
		if b, err := io.ReadAll(c); err != nil || len(b) != 0 {
			t.Fatalf("client %d read %q, %v; want EOF", i, b, err)
		}
	}
	if got := mgr.Active(); got != 0 {
		t.Fatalf("overload manager counts %d connections after Shutdown", got)
	}
	if got := counter(t, "envoy_listener_ssl_connection_error", "listener", "pending_shutdown_test") +
		counter(t, "envoy_listener_downstream_pre_cx_timeout", "listener", "pending_shutdown_test"); got != refused {
		t.Fatalf("refusals counted at shutdown: %v, want %v", got, refused)
	}
}
