package e2e

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/http2"

	"github.com/gowaypoint/waypoint/protocols/spiffe"
	"github.com/gowaypoint/waypoint/proxy/certs"
	"github.com/gowaypoint/waypoint/proxy/hbone/hbonetest"
)

func dial(t *testing.T, addr string) *net.TCPConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return c.(*net.TCPConn)
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func sum(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// sendToSink writes payload through a source listener to a sink backend,
// half-closes, and returns the sink's answer line.
func sendToSink(t *testing.T, addr string, payload []byte) string {
	t.Helper()
	c := dial(t, addr)
	defer c.Close()
	if _, err := c.Write(payload); err != nil {
		t.Fatalf("write %d bytes: %v", len(payload), err)
	}
	// Half-close: the client is done sending but must still get the answer.
	if err := c.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(2 * time.Minute))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatalf("reading the sink's answer after %d bytes: %v", len(payload), err)
	}
	return strings.TrimSpace(line)
}

func TestDataPath(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 1)
	sizes := []int{1, 1 << 20, 64 << 20}

	t.Run("bytes arrive intact at the right pod, half-closed", func(t *testing.T) {
		for _, size := range sizes {
			payload := randomBytes(size)
			got := sendToSink(t, e.source(2), payload)
			want := fmt.Sprintf("pod-a %s %d", sum(payload), size)
			if got != want {
				t.Errorf("%d bytes to service a: sink answered %q, want %q", size, got, want)
			}
		}
	})

	t.Run("bytes both ways through an echo", func(t *testing.T) {
		for _, size := range sizes {
			payload := randomBytes(size)
			c := dial(t, e.source(3))
			errc := make(chan error, 1)
			go func() {
				_, err := c.Write(payload)
				if err == nil {
					err = c.CloseWrite()
				}
				errc <- err
			}()
			c.SetReadDeadline(time.Now().Add(2 * time.Minute))
			got, err := io.ReadAll(c)
			c.Close()
			if err != nil {
				t.Fatalf("%d bytes: read: %v", size, err)
			}
			if err := <-errc; err != nil {
				t.Fatalf("%d bytes: write: %v", size, err)
			}
			if len(got) != size || sum(got) != sum(payload) {
				t.Errorf("%d bytes: echo returned %d bytes, not the same", size, len(got))
			}
		}
	})

	t.Run("two services by VIP:port reach two pods", func(t *testing.T) {
		for _, c := range []struct {
			source int
			pod    string
		}{{2, "pod-a"}, {4, "pod-b"}} {
			got := sendToSink(t, e.source(c.source), []byte("who are you"))
			if !strings.HasPrefix(got, c.pod+" ") {
				t.Errorf("source %s: answered by %q, want %s", e.source(c.source), got, c.pod)
			}
		}
	})
}

// h2Client opens an HBONE connection to the waypoint as identity id.
func h2Client(t *testing.T, e *env, id string) *http2.ClientConn {
	t.Helper()
	src, err := certs.NewSource(e.certDir(id), certs.SourceOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close() })
	return hbonetest.ClientConn(t, e.hboneAddr(), src.ClientTLSConfig(certs.PeerExpectation{ID: sa("waypoint")}))
}

// refusedHandshake dials the waypoint with conf and reports whether the
// TLS handshake (or, in TLS 1.3, the first read after it) failed.
func refusedHandshake(e *env, conf *tls.Config) error {
	c, err := tls.Dial("tcp", e.hboneAddr(), conf)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err = c.Read(make([]byte, 1))
	return err
}

func TestRefusals(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 2)
	cc := h2Client(t, e, "client")

	// A stream that stays open on the same connection through every refusal.
	held := hbonetest.OpenEcho(t, cc, e.vip(1)+":7000")
	ping := held.Ping
	ping(t, "before")

	streams := []struct {
		name, method, authority string
		want                    int
		reason                  string
	}{
		{"non-CONNECT method", "GET", e.vip(1) + ":7000", 400, "want CONNECT"},
		{"authority not ip:port", "CONNECT", "reviews.default.svc:7000", 400, "not ip:port"},
		{"no service matches", "CONNECT", e.vip(9) + ":7000", 503, "no service or workload matches"},
		{"unreachable endpoint", "CONNECT", e.vip(3) + ":7000", 503, "upstream connect failure"},
		{"unexpected destination identity", "CONNECT", e.vip(4) + ":7000", 503, "sa/pod-c"},
	}
	for _, s := range streams {
		t.Run(s.name, func(t *testing.T) {
			// Refusals of one kind write at most one INFO line a second
			// (docs/hardening.md): let the previous one's second pass.
			time.Sleep(1100 * time.Millisecond)
			if got := hbonetest.Status(t, cc, s.method, s.authority); got != s.want {
				t.Errorf("status %d, want %d", got, s.want)
			}
			ping(t, s.name)
			// A refusal is logged with the peer, the authority and the reason.
			waitLog(t, e.waypoint, "refused stream", "peer="+sa("client").String(), "authority="+s.authority, s.reason)
		})
	}

	t.Run("destination ztunnel refuses another pod's IP", func(t *testing.T) {
		// hbone serve on pod a's address, asked for pod b's: 400, as ztunnel.
		src, err := certs.NewSource(e.certDir("waypoint"), certs.SourceOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer src.Close()
		pod := hbonetest.ClientConn(t, e.ip(11)+":15008", src.ClientTLSConfig(certs.PeerExpectation{ID: sa("pod-a")}))
		for authority, want := range map[string]int{e.ip(12) + ":7000": 400, e.ip(11) + ":7000": 200} {
			if got := hbonetest.Status(t, pod, "CONNECT", authority); got != want {
				t.Errorf("CONNECT %s at pod a's ztunnel: %d, want %d", authority, got, want)
			}
		}
	})

	t.Run("plaintext to 15008", func(t *testing.T) {
		c := dial(t, e.hboneAddr())
		defer c.Close()
		c.Write([]byte(http2.ClientPreface))
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		got, _ := io.ReadAll(c)
		if bytes.Contains(got, []byte("HTTP")) || len(got) > 7 {
			t.Fatalf("waypoint answered plaintext with %q; want the connection refused", got)
		}
		ping(t, "after plaintext")
	})

	t.Run("client certificate from another trust domain", func(t *testing.T) {
		time.Sleep(1100 * time.Millisecond) // one INFO line a second per kind of refusal
		evil := spiffe.ID{TrustDomain: "evil.local", Namespace: "default", ServiceAccount: "client"}
		if err := certs.WriteMesh(certs.MeshOptions{Dir: e.dir, TrustDomain: "evil.local", IDs: []spiffe.ID{evil}}); err != nil {
			t.Fatal(err)
		}
		conf := clientConfig(t, filepath.Join(certs.IdentityDir(e.dir, evil), certs.CertChainFile), filepath.Join(certs.IdentityDir(e.dir, evil), certs.KeyFile))
		if err := refusedHandshake(e, conf); err == nil {
			t.Fatal("waypoint accepted a client of trust domain evil.local")
		}
		waitLog(t, e.waypoint, "refused connection", "evil.local")
		ping(t, "after foreign trust domain")
	})

	t.Run("expired client certificate", func(t *testing.T) {
		time.Sleep(1100 * time.Millisecond) // one INFO line a second per kind of refusal
		ca, err := certs.LoadCA(filepath.Join(e.dir, certs.RootCertFile), filepath.Join(e.dir, certs.RootKeyFile))
		if err != nil {
			t.Fatal(err)
		}
		certPEM, keyPEM, err := ca.Issue(certs.IssueRequest{ID: sa("client"), NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-24 * time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, "cert.pem"), certPEM, 0o600)
		os.WriteFile(filepath.Join(dir, "key.pem"), keyPEM, 0o600)
		if err := refusedHandshake(e, clientConfig(t, filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"))); err == nil {
			t.Fatal("waypoint accepted an expired client certificate")
		}
		waitLog(t, e.waypoint, "refused connection", "expired")
		ping(t, "after expired certificate")
	})
}

// clientConfig presents the given certificate and does not check the
// server, for handshakes the waypoint must refuse.
func clientConfig(t *testing.T, certFile, keyFile string) *tls.Config {
	t.Helper()
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{
		MinVersion:         tls.VersionTLS13,
		NextProtos:         []string{"h2"},
		Certificates:       []tls.Certificate{pair},
		InsecureSkipVerify: true,
		RootCAs:            x509.NewCertPool(),
	}
}

// waitLog waits until one line of p's output contains every part.
func waitLog(t *testing.T, p *proc, parts ...string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		for _, line := range strings.Split(p.out.String(), "\n") {
			ok := true
			for _, part := range parts {
				if !strings.Contains(line, part) {
					ok = false
					break
				}
			}
			if ok {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Errorf("%s logged no line with all of %q", p.name, parts)
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestThousandConcurrentStreams(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 3)
	const n = 1000
	conns := make([]*net.TCPConn, n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.DialTimeout("tcp", e.source(1), 10*time.Second)
			if err != nil {
				errs <- err
				return
			}
			conns[i] = c.(*net.TCPConn)
			msg := fmt.Sprintf("stream-%04d", i)
			c.SetDeadline(time.Now().Add(time.Minute))
			if _, err := c.Write([]byte(msg)); err != nil {
				errs <- err
				return
			}
			buf := make([]byte, len(msg))
			if _, err := io.ReadFull(c, buf); err != nil || string(buf) != msg {
				errs <- fmt.Errorf("stream %d: echo %q, %v", i, buf, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	failed := 0
	for err := range errs {
		if failed++; failed <= 5 {
			t.Error(err)
		}
	}
	if failed > 0 {
		t.Fatalf("%d of %d streams failed", failed, n)
	}
	// All 1000 streams are open now: each HBONE hop needs ceil(1000/100)
	// connections, and must not open more.
	if got := countEstablished(t, e.sources[1], e.hboneAddr()); got != n/100 {
		t.Errorf("source opened %d HBONE connections to the waypoint, want %d", got, n/100)
	}
	if got := countEstablished(t, e.waypoint, e.ip(11)+":15008"); got != n/100 {
		t.Errorf("waypoint opened %d HBONE connections to pod a, want %d", got, n/100)
	}
	for _, c := range conns {
		c.Close()
	}
}

func TestSIGTERMDrainsTransfers(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 4, "--drain-timeout", "20s")
	payload := randomBytes(16 << 20)
	c := dial(t, e.source(2))
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Minute))

	// Send a first chunk so the transfer is in flight, then SIGTERM.
	chunk := len(payload) / 16
	if _, err := c.Write(payload[:chunk]); err != nil {
		t.Fatal(err)
	}
	e.waypoint.cmd.Process.Signal(syscall.SIGTERM)
	waitLog(t, e.waypoint, "waypoint draining")

	// New connections are no longer accepted...
	if _, err := net.DialTimeout("tcp", e.hboneAddr(), time.Second); err == nil {
		t.Error("waypoint still accepts HBONE connections after SIGTERM")
	}
	// ...while the transfer in flight goes on to its end.
	for off := chunk; off < len(payload); off += chunk {
		time.Sleep(50 * time.Millisecond)
		if _, err := c.Write(payload[off : off+chunk]); err != nil {
			t.Fatalf("write during drain at %d: %v", off, err)
		}
	}
	c.CloseWrite()
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatalf("reading the answer during drain: %v", err)
	}
	if want := fmt.Sprintf("pod-a %s %d", sum(payload), len(payload)); strings.TrimSpace(line) != want {
		t.Fatalf("sink answered %q, want %q", strings.TrimSpace(line), want)
	}
	select {
	case <-e.waypoint.done:
	case <-time.After(30 * time.Second):
		t.Fatal("waypoint did not exit after the drain")
	}
	if e.waypoint.err != nil {
		t.Fatalf("waypoint exited with %v, want exit status 0", e.waypoint.err)
	}
}
