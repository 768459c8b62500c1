package waypoint

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/gowaypoint/waypoint/protocols/spiffe"
	"github.com/gowaypoint/waypoint/proxy/certs"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// Addresses of this package's tests: 127.0.8.0/24.

// greeter answers every connection with its name, then closes.
func greeter(t *testing.T, addr, name string) {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { ln.Close(); <-done })
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Write([]byte(name))
			c.Close()
		}
	}()
}

// plaintextConfig routes a plaintext listener on listenAddr to backend.
func plaintextConfig(listenAddr, backend string) string {
	host, port, _ := net.SplitHostPort(listenAddr)
	bhost, bport, _ := net.SplitHostPort(backend)
	return fmt.Sprintf(`
static_resources:
  listeners:
  - name: front
    address: {socket_address: {address: %s, port_value: %s}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.tcp_proxy
        typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy, stat_prefix: front, cluster: backend}
  clusters:
  - name: backend
    connect_timeout: 1s
    transport_socket: {name: raw, typed_config: {"@type": type.googleapis.com/envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer}}
    load_assignment:
      cluster_name: backend
      endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: %s, port_value: %s}}}}]}]
`, host, port, bhost, bport)
}

func readAll(t *testing.T, addr string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return "dial error: " + err.Error()
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	b, err := io.ReadAll(c)
	if err != nil {
		return string(b) + " read error: " + err.Error()
	}
	return string(b)
}

func startWaypoint(t *testing.T, config string) (*Waypoint, string) {
	t.Helper()
	dir := t.TempDir()
	id := spiffe.ID{TrustDomain: "cluster.local", Namespace: "ns", ServiceAccount: "waypoint"}
	if err := certs.WriteMesh(certs.MeshOptions{Dir: dir, IDs: []spiffe.ID{id}}); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(file, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	w, err := Start(Options{
		ConfigFile: file, CertDir: certs.IdentityDir(dir, id),
		HBONEAddr: "127.0.8.5:0", AdminAddr: "127.0.8.5:0",
		ConfigPollInterval: -1, Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Shutdown(context.Background()) })
	return w, file
}

func TestReloadRefusesBadConfigAndKeepsServing(t *testing.T) {
	greeter(t, "127.0.8.11:7000", "first")
	greeter(t, "127.0.8.12:7000", "second")
	w, file := startWaypoint(t, plaintextConfig("127.0.8.1:7100", "127.0.8.11:7000"))
	if got := readAll(t, "127.0.8.1:7100"); got != "first" {
		t.Fatalf("before reload: %q, want first", got)
	}
	version := w.Snapshot().Version

	bad := []struct{ name, config, wantErr string }{
		{"missing cluster", strings.Replace(plaintextConfig("127.0.8.1:7100", "127.0.8.12:7000"), "cluster: backend}", "cluster: nowhere}", 1), `unknown cluster "nowhere"`},
		{"unknown field", plaintextConfig("127.0.8.1:7100", "127.0.8.12:7000") + "  bogus: 1\n", "bogus"},
		{"not YAML", "static_resources: [", "yaml: line 1"},
	}
	for _, b := range bad {
		os.WriteFile(file, []byte(b.config), 0o644)
		err := w.Reload()
		if err == nil || !strings.Contains(err.Error(), b.wantErr) {
			t.Errorf("%s: Reload = %v, want an error naming %q", b.name, err, b.wantErr)
		}
		if w.Snapshot().Version != version {
			t.Errorf("%s: the refused config replaced the active one", b.name)
		}
		if got := readAll(t, "127.0.8.1:7100"); got != "first" {
			t.Errorf("%s: after the refused reload got %q, want the last good config serving", b.name, got)
		}
	}

	// A good config moves the listener and the route.
	os.WriteFile(file, []byte(plaintextConfig("127.0.8.2:7100", "127.0.8.12:7000")), 0o644)
	if err := w.Reload(); err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, "127.0.8.2:7100"); got != "second" {
		t.Errorf("after reload: %q, want second", got)
	}
	if got := readAll(t, "127.0.8.1:7100"); !strings.Contains(got, "dial error") {
		t.Errorf("the old listener still answers after it was removed: %q", got)
	}
}

func TestConfigFileChangeIsPickedUp(t *testing.T) {
	greeter(t, "127.0.8.21:7000", "old")
	greeter(t, "127.0.8.22:7000", "new")
	w, file := startWaypoint(t, plaintextConfig("127.0.8.3:7100", "127.0.8.21:7000"))
	// Poll the file as the running binary does.
	w.opts.ConfigPollInterval = 20 * time.Millisecond
	w.serve(w.watchConfig)
	os.WriteFile(file, []byte(plaintextConfig("127.0.8.3:7100", "127.0.8.22:7000")), 0o644)
	deadline := time.Now().Add(10 * time.Second)
	for readAll(t, "127.0.8.3:7100") != "new" {
		if time.Now().After(deadline) {
			t.Fatal("the changed config file was never picked up")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
