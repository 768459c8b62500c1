package live

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/net/http2"
)

// source is a source workload's ztunnel, as a test client: every connection it dials is an
// HBONE CONNECT to the waypoint with the dialled address as :authority, over one mTLS HTTP/2
// connection (x/net/http2's client) presenting the workload's identity.
type source struct {
	waypoint string // ip:15008
	tls      *tls.Config

	mu     sync.Mutex
	cc     *http2.ClientConn
	client *http.Client // HTTP's, with one transport for the source's life
}

// newSource loads the identity in dir (cert-chain.pem, key.pem, root-cert.pem of `waypoint
// certs`) and expects the waypoint to present an identity of the mesh.
func newSource(dir, waypoint string) (*source, error) {
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, "cert-chain.pem"), filepath.Join(dir, "key.pem"))
	if err != nil {
		return nil, err
	}
	rootPEM, err := os.ReadFile(filepath.Join(dir, "root-cert.pem"))
	if err != nil {
		return nil, err
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(rootPEM)
	conf := &tls.Config{
		Certificates: []tls.Certificate{cert},
		NextProtos:   []string{"h2"},
		MinVersion:   tls.VersionTLS13,
		// SPIFFE identities are URI SANs: the chain is checked against the mesh root, not a
		// host name (as ztunnel does).
		InsecureSkipVerify: true,
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			if len(raw) == 0 {
				return fmt.Errorf("hbone: the waypoint presented no certificate")
			}
			leaf, err := x509.ParseCertificate(raw[0])
			if err != nil {
				return err
			}
			inter := x509.NewCertPool()
			for _, r := range raw[1:] {
				if c, err := x509.ParseCertificate(r); err == nil {
					inter.AddCert(c)
				}
			}
			_, err = leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
			return err
		},
	}
	return &source{waypoint: waypoint, tls: conf}, nil
}

// conn is the HTTP/2 connection to the waypoint, dialled when there is none usable (or
// when stale, the one that just failed, is the one in use).
func (s *source) conn(ctx context.Context, stale *http2.ClientConn) (*http2.ClientConn, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cc != nil && s.cc != stale && s.cc.CanTakeNewRequest() {
		return s.cc, nil
	}
	d := tls.Dialer{Config: s.tls, NetDialer: &net.Dialer{Timeout: 5 * time.Second}}
	raw, err := d.DialContext(ctx, "tcp", s.waypoint)
	if err != nil {
		return nil, err
	}
	cc, err := (&http2.Transport{}).NewClientConn(raw)
	if err != nil {
		raw.Close()
		return nil, err
	}
	s.cc = cc
	return cc, nil
}

// Dial opens an HBONE tunnel to authority (ip:port) through the waypoint. A CONNECT that
// finds the connection unusable (its streams all taken, or going away, between the check and
// the send) goes once more on a new connection, as ztunnel's pool does.
func (s *source) Dial(ctx context.Context, authority string) (net.Conn, error) {
	var stale *http2.ClientConn
	for attempt := 0; ; attempt++ {
		cc, err := s.conn(ctx, stale)
		if err != nil {
			return nil, fmt.Errorf("hbone: dial the waypoint %s: %w", s.waypoint, err)
		}
		t, err := s.connect(ctx, cc, authority)
		if err != nil && attempt == 0 && !cc.CanTakeNewRequest() {
			stale = cc
			continue
		}
		return t, err
	}
}

func (s *source) connect(ctx context.Context, cc *http2.ClientConn, authority string) (net.Conn, error) {
	pr, pw := io.Pipe()
	req := &http.Request{Method: http.MethodConnect, URL: &url.URL{Host: authority}, Host: authority,
		Header: http.Header{}, Body: pr, ContentLength: -1}
	req = req.WithContext(context.WithoutCancel(ctx))
	resp, err := cc.RoundTrip(req)
	if err != nil {
		pw.Close()
		return nil, fmt.Errorf("hbone: CONNECT %s: %w", authority, err)
	}
	if resp.StatusCode != http.StatusOK {
		pw.Close()
		resp.Body.Close()
		return nil, fmt.Errorf("hbone: CONNECT %s: %s", authority, resp.Status)
	}
	return &tunnel{r: resp.Body, w: pw, authority: authority}, nil
}

// HTTP is an HTTP/1.1 client whose every connection is a tunnel: a URL's host:port is the
// original destination (a service VIP or a pod address), never dialled directly. The clients
// share one transport (its idle tunnels reused, at most 8 per destination); each is a copy
// that a caller may change (CheckRedirect, Timeout).
func (s *source) HTTP() *http.Client {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.client == nil {
		s.client = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
			DialContext:         func(ctx context.Context, _, addr string) (net.Conn, error) { return s.Dial(ctx, addr) },
			MaxIdleConnsPerHost: 8,
		}}
	}
	c := *s.client
	return &c
}

// FreshHTTP is an HTTP/1.1 client with a transport of its own: its requests open new
// tunnels, for a check that a new connection is refused (an idle tunnel of HTTP's, opened
// before a config change, would go on with the chain it started with).
func (s *source) FreshHTTP() *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext:       func(ctx context.Context, _, addr string) (net.Conn, error) { return s.Dial(ctx, addr) },
		DisableKeepAlives: true,
	}}
}

// Close closes the tunnels and the connection to the waypoint.
func (s *source) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.client != nil {
		s.client.Transport.(*http.Transport).CloseIdleConnections()
	}
	if s.cc != nil {
		s.cc.Close()
	}
}

// tunnel is a CONNECT stream as a net.Conn.
type tunnel struct {
	r         io.ReadCloser
	w         *io.PipeWriter
	authority string
}

func (t *tunnel) Read(b []byte) (int, error)  { return t.r.Read(b) }
func (t *tunnel) Write(b []byte) (int, error) { return t.w.Write(b) }
func (t *tunnel) Close() error {
	t.w.Close()
	return t.r.Close()
}
func (t *tunnel) LocalAddr() net.Addr              { return tunnelAddr("source") }
func (t *tunnel) RemoteAddr() net.Addr             { return tunnelAddr(t.authority) }
func (t *tunnel) SetDeadline(time.Time) error      { return nil }
func (t *tunnel) SetReadDeadline(time.Time) error  { return nil }
func (t *tunnel) SetWriteDeadline(time.Time) error { return nil }

type tunnelAddr string

func (a tunnelAddr) Network() string { return "hbone" }
func (a tunnelAddr) String() string  { return string(a) }
