package upstream

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"io"
	"math/big"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gowaypoint/waypoint/filters"
	"github.com/gowaypoint/waypoint/protocols/l7"
	"github.com/gowaypoint/waypoint/protocols/spiffe"
	"github.com/gowaypoint/waypoint/protocols/status"
	"github.com/gowaypoint/waypoint/xds"
)

// TestDialOriginatesTLS: a TransportTLS cluster's connection is TLS to the
// endpoint's address with the SNI; a certificate without the wanted SAN is
// a connect failure (UF), as in Envoy.
func TestDialOriginatesTLS(t *testing.T) {
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ca"}, IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	caDER, _ := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	leafDER, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{SerialNumber: big.NewInt(2), DNSNames: []string{"api.example.com"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o600)

	sni := make(chan string, 4)
	ln, err := tls.Listen("tcp", "127.0.9.40:0", &tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{leafDER}, PrivateKey: key}},
		GetConfigForClient: func(h *tls.ClientHelloInfo) (*tls.Config, error) {
			sni <- h.ServerName
			return nil, nil
		}})
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
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()
	addr := netip.MustParseAddrPort(ln.Addr().String())

	cluster := func(san string) *xds.Cluster {
		b, err := xds.ParseBootstrap([]byte(`static_resources:
  listeners:
  - name: l
    address: {socket_address: {address: 127.0.9.200, port_value: 1}}
    filter_chains: [{filters: [{name: t, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy, stat_prefix: s, cluster: api}}]}]
  clusters:
  - name: api
    load_assignment: {cluster_name: api, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.9.40, port_value: `+
			strconv.Itoa(int(addr.Port()))+`}}}}]}]}
    transport_socket: {name: tls, typed_config: {"@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext,
      sni: api.example.com, common_tls_context: {validation_context: {trusted_ca: {filename: "`+caFile+`"},
        match_typed_subject_alt_names: [{san_type: DNS, matcher: {exact: `+san+`}}]}}}}
`), "test.yaml")
		if err != nil {
			t.Fatal(err)
		}
		return b.Snapshot.Clusters["api"]
	}
	d := NewDialer(nil, nil)

	conn, err := d.Dial(context.Background(), cluster("api.example.com"), addr, spiffe.ID{})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	if got := <-sni; got != "api.example.com" {
		t.Errorf("SNI %q, want api.example.com", got)
	}
	if _, err := conn.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(conn, buf); err != nil || string(buf) != "ping" {
		t.Errorf("echo: %q %v", buf, err)
	}
	conn.Close()

	_, err = d.Dial(context.Background(), cluster("other.example.com"), addr, spiffe.ID{})
	if err == nil || status.KindOf(err) != status.ConnectFailure {
		t.Fatalf("dial with a SAN the certificate lacks: %v, want a connect failure", err)
	}
}

// TestAutoSNI: with upstream_http_protocol_options auto_sni and
// auto_san_validation, each request's TLS carries its host as the SNI and
// checks the certificate for it; connections are not shared between
// hosts; a host the certificate is not for is a connect failure.
func TestAutoSNI(t *testing.T) {
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ca"}, IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	caDER, _ := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	leafDER, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{SerialNumber: big.NewInt(2), DNSNames: []string{"a.example.com", "b.example.com"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var snis []string
	ln, err := tls.Listen("tcp", "127.0.9.41:0", &tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{leafDER}, PrivateKey: key}},
		GetConfigForClient: func(h *tls.ClientHelloInfo) (*tls.Config, error) {
			mu.Lock()
			snis = append(snis, h.ServerName)
			mu.Unlock()
			return nil, nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, r.TLS.ServerName) })}
	done := make(chan struct{})
	go func() { defer close(done); srv.Serve(ln) }()
	defer func() { srv.Close(); <-done }()
	addr := netip.MustParseAddrPort(ln.Addr().String())

	b, err := xds.ParseBootstrap([]byte(`static_resources:
  listeners:
  - name: l
    address: {socket_address: {address: 127.0.9.200, port_value: 1}}
    filter_chains: [{filters: [{name: t, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy, stat_prefix: s, cluster: api}}]}]
  clusters:
  - name: api
    load_assignment: {cluster_name: api, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.9.41, port_value: `+
		strconv.Itoa(int(addr.Port()))+`}}}}]}]}
    typed_extension_protocol_options: {envoy.extensions.upstreams.http.v3.HttpProtocolOptions: {"@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions,
      upstream_http_protocol_options: {auto_sni: true, auto_san_validation: true}, explicit_http_config: {http_protocol_options: {}}}}
    transport_socket: {name: tls, typed_config: {"@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext,
      common_tls_context: {validation_context: {trusted_ca: {inline_bytes: "`+base64.StdEncoding.EncodeToString(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}))+`"}}}}}
`), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	snap := b.Snapshot
	u := newClusters(t, snap).HTTP(snap)
	get := func(authority string) (string, error) {
		req := &l7.Request{Method: "GET", Scheme: "http", Authority: []byte(authority), Path: []byte("/"), Proto: l7.HTTP11}
		resp, err := u.RoundTrip(context.Background(), &filters.UpstreamRequest{Cluster: "api", Request: req, Downstream: &filters.Downstream{}})
		if err != nil {
			return "", err
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.(io.Closer).Close()
		return string(body), nil
	}
	for _, host := range []string{"a.example.com:80", "a.example.com", "B.example.com", "a.example.com"} {
		got, err := get(host)
		if want := strings.ToLower(strings.TrimSuffix(host, ":80")); err != nil || got != want {
			t.Errorf("GET with :authority %s: the server saw SNI %q, %v; want %q", host, got, err, want)
		}
	}
	mu.Lock()
	if want := []string{"a.example.com", "b.example.com", "a.example.com"}; !slices.Equal(snis, want) {
		t.Errorf("handshakes with SNI %q, want %q (one connection per host at a time, reused for the same host)", snis, want)
	}
	mu.Unlock()
	if _, err := get("c.example.com"); status.KindOf(err) != status.ConnectFailure {
		t.Errorf("a host the certificate is not for: %v, want a connect failure", err)
	}
}
