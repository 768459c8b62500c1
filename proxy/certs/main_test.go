package certs

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"math/big"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/gowaypoint/waypoint/protocols/spiffe"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testAddr is the loopback address of this package's test listeners.
const testAddr = "127.0.4.1:0"

// waitLimit bounds how long eventually polls; it is a hang guard, not an
// assertion on speed.
const waitLimit = 20 * time.Second

// eventually polls cond until it holds, failing the test after waitLimit.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func mustID(t *testing.T, s string) spiffe.ID {
	t.Helper()
	id, err := spiffe.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func mustCA(t *testing.T, td string) *CA {
	t.Helper()
	ca, err := NewCA(td, 0)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

// pair is a certificate chain and key in PEM.
type pair struct{ chain, key []byte }

func mustIssue(t *testing.T, ca *CA, req IssueRequest) pair {
	t.Helper()
	chain, key, err := ca.Issue(req)
	if err != nil {
		t.Fatal(err)
	}
	return pair{chain, key}
}

// mustSign signs tmpl with ca directly, for certificates Issue refuses to
// make (no SPIFFE SAN, wrong key usage).
func mustSign(t *testing.T, ca *CA, tmpl *x509.Certificate) pair {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if tmpl.SerialNumber == nil {
		tmpl.SerialNumber = big.NewInt(42)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, err := encodeKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pair{encodeCert(der), keyPEM}
}

func (p pair) tlsCert(t *testing.T) tls.Certificate {
	t.Helper()
	c, err := tls.X509KeyPair(p.chain, p.key)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (p pair) leaf(t *testing.T) *x509.Certificate {
	t.Helper()
	certs, err := parseCertificates(p.chain)
	if err != nil {
		t.Fatal(err)
	}
	return certs[0]
}

// writeIdentity writes p and ca's root into dir in Istio's layout.
func writeIdentity(t *testing.T, dir string, ca *CA, p pair) {
	t.Helper()
	for name, data := range map[string][]byte{CertChainFile: p.chain, KeyFile: p.key, RootCertFile: ca.certPEM} {
		if err := writeFileAtomic(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// rawClient presents p (or nothing when p is empty) and verifies nothing,
// to test what the server alone refuses.
func rawClient(t *testing.T, p pair) *tls.Config {
	cfg := &tls.Config{MinVersion: tls.VersionTLS13, NextProtos: []string{ALPNH2}, InsecureSkipVerify: true}
	if p.chain != nil {
		cfg.Certificates = []tls.Certificate{p.tlsCert(t)}
	}
	return cfg
}

// rawServer presents p and asks for no client certificate, to test what
// the client alone refuses.
func rawServer(t *testing.T, p pair) *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS13, NextProtos: []string{ALPNH2}, Certificates: []tls.Certificate{p.tlsCert(t)}}
}

func newSource(t *testing.T, dir string, log *slog.Logger) *Source {
	t.Helper()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s, err := NewSource(dir, SourceOptions{PollInterval: 5 * time.Millisecond, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// testServer is one real TLS listener on loopback whose config lives as
// long as the test, as the HBONE listener's does across reloads.
type testServer struct {
	ln net.Listener
}

func newTestServer(t *testing.T, cfg *tls.Config) *testServer {
	t.Helper()
	ln, err := tls.Listen("tcp", testAddr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return &testServer{ln: ln}
}

// result is what both ends saw of one connection.
type result struct {
	serverErr   error     // the server's handshake error
	serverID    spiffe.ID // PeerIdentity on the server
	serverIDErr error     // PeerIdentity's error on the server
	clientErr   error     // the client's handshake error, or the server's refusal read after it
	client      tls.ConnectionState
}

// handshake runs one connection from a tls.Dial with cfg. In TLS 1.3 the
// client finishes before the server has checked its certificate, so the
// client then reads one byte that the server writes only once its own
// handshake succeeded: a refusal reaches the client as that read's error.
func (s *testServer) handshake(t *testing.T, cfg *tls.Config) result {
	t.Helper()
	var r result
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := s.ln.Accept()
		if err != nil {
			r.serverErr = err
			return
		}
		defer c.Close()
		tc := c.(*tls.Conn)
		if r.serverErr = tc.Handshake(); r.serverErr != nil {
			return
		}
		r.serverID, r.serverIDErr = PeerIdentity(tc.ConnectionState())
		tc.Write([]byte{1})
	}()
	conn, err := tls.Dial("tcp", s.ln.Addr().String(), cfg)
	if err == nil {
		var b [1]byte
		_, err = io.ReadFull(conn, b[:])
		r.client = conn.ConnectionState()
		conn.Close()
	}
	r.clientErr = err
	<-done
	return r
}

// leafSerial is the serial of the certificate the server presented, or nil.
func (r result) leafSerial() *big.Int {
	if len(r.client.PeerCertificates) == 0 {
		return nil
	}
	return r.client.PeerCertificates[0].SerialNumber
}

// logCapture is a slog.Handler keeping every record's message and error.
type logCapture struct {
	mu   sync.Mutex
	msgs []string
}

func (h *logCapture) Enabled(context.Context, slog.Level) bool { return true }
func (h *logCapture) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *logCapture) WithGroup(string) slog.Handler            { return h }
func (h *logCapture) Handle(_ context.Context, r slog.Record) error {
	msg := r.Message
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "err" {
			msg += ": " + a.Value.String()
		}
		return true
	})
	h.mu.Lock()
	h.msgs = append(h.msgs, msg)
	h.mu.Unlock()
	return nil
}

// count returns how many records contain sub.
func (h *logCapture) count(sub string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, m := range h.msgs {
		if strings.Contains(m, sub) {
			n++
		}
	}
	return n
}

// wantErr checks err against a wanted substring; "" wants no error.
func wantErr(t *testing.T, what string, err error, want string) {
	t.Helper()
	switch {
	case want == "" && err != nil:
		t.Errorf("%s: unexpected error: %v", what, err)
	case want != "" && err == nil:
		t.Errorf("%s: no error, want one containing %q", what, want)
	case want != "" && !strings.Contains(err.Error(), want):
		t.Errorf("%s: error %q, want it to contain %q", what, err, want)
	}
}
