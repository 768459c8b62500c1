package upstream

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

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
