package xds

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// testCA is a CA that issues leaf certificates, in PEM.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newTestCA(t testing.TB) *testCA {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return &testCA{c, key, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue returns a leaf for dnsNames, as PEM certificate and key.
func (ca *testCA) issue(t testing.TB, dnsNames ...string) (certPEM, keyPEM []byte) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "leaf"}, DNSNames: dnsNames,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})
}

// originCluster decodes a STATIC cluster "api" with the UpstreamTlsContext ctx.
func originCluster(t *testing.T, ctx string) *Cluster {
	t.Helper()
	b := mustParse(t, doc("", []string{listenerOn("main", 8080, "", tcpChain("a", "api", ""))}, []string{`{name: api,
  load_assignment: {cluster_name: api, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: 443}}}}]}]},
  transport_socket: {name: envoy.transport_sockets.tls, typed_config: {"@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext, ` + ctx + `}}}`}))
	c := b.Snapshot.Clusters["api"]
	if c.Transport != TransportTLS || c.UpstreamTLS.Originate == nil {
		t.Fatalf("transport %s, originate %v: want TLS origination", c.Transport, c.UpstreamTLS.Originate)
	}
	return c
}

// handshake runs cfg against a server with cert, requiring a client
// certificate from clientCAs when set; it returns the client's error and the
// SNI and ALPN the server saw.
func handshake(t *testing.T, cfg *tls.Config, cert tls.Certificate, clientCAs *x509.CertPool) (err error, sni, alpn string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	a, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	b, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	srvCfg := &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2", "http/1.1"},
		GetConfigForClient: func(h *tls.ClientHelloInfo) (*tls.Config, error) { sni = h.ServerName; return nil, nil }}
	if clientCAs != nil {
		srvCfg.ClientAuth, srvCfg.ClientCAs = tls.RequireAndVerifyClientCert, clientCAs
	}
	srv := tls.Server(b, srvCfg)
	done := make(chan struct{})
	go func() { srv.Handshake(); b.Close(); close(done) }()
	c := tls.Client(a, cfg)
	err = c.Handshake()
	alpn = c.ConnectionState().NegotiatedProtocol
	a.Close()
	<-done
	return err, sni, alpn
}

func TestOriginTLS(t *testing.T) {
	ca := newTestCA(t)
	dir := t.TempDir()
	caFile := filepath.Join(dir, "ca.pem")
	os.WriteFile(caFile, ca.pem, 0o600)
	certPEM, keyPEM := ca.issue(t, "api.example.com")
	srvCert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	other := newTestCA(t)
	oc, ok := other.issue(t, "api.example.com")
	otherCert, _ := tls.X509KeyPair(oc, ok)
	clientPEM, clientKey := ca.issue(t, "client")
	os.WriteFile(filepath.Join(dir, "client.pem"), clientPEM, 0o600)
	os.WriteFile(filepath.Join(dir, "client.key"), clientKey, 0o600)
	clientCAs := x509.NewCertPool()
	clientCAs.AddCert(ca.cert)

	tests := []struct {
		name      string
		ctx       string
		server    tls.Certificate
		clientCAs *x509.CertPool
		want      string // a part of the error; "" for success
		alpn      string
	}{
		{name: "SNI, CA file and a matching DNS SAN",
			ctx:    `sni: api.example.com, common_tls_context: {validation_context: {trusted_ca: {filename: "` + caFile + `"}, match_typed_subject_alt_names: [{san_type: DNS, matcher: {exact: api.example.com}}]}}`,
			server: srvCert},
		{name: "a SAN that does not match",
			ctx:    `sni: api.example.com, common_tls_context: {validation_context: {trusted_ca: {filename: "` + caFile + `"}, match_typed_subject_alt_names: [{san_type: DNS, matcher: {exact: other.example.com}}]}}`,
			server: srvCert, want: "no subject alternative name of the peer matches"},
		{name: "a suffix SAN, istiod's file-root SDS name",
			ctx:    `sni: api.example.com, common_tls_context: {combined_validation_context: {validation_context_sds_secret_config: {name: "file-root:` + caFile + `"}, default_validation_context: {match_typed_subject_alt_names: [{san_type: DNS, matcher: {suffix: .EXAMPLE.com, ignore_case: true}}]}}}`,
			server: srvCert},
		{name: "istiod's subjectAltNames: match_subject_alt_names, any SAN type",
			ctx:    `sni: api.example.com, common_tls_context: {combined_validation_context: {validation_context_sds_secret_config: {name: "file-root:` + caFile + `"}, default_validation_context: {match_subject_alt_names: [{exact: nope}, {exact: api.example.com}]}}}`,
			server: srvCert},
		{name: "match_subject_alt_names that does not match",
			ctx:    `common_tls_context: {validation_context: {trusted_ca: {filename: "` + caFile + `"}, match_subject_alt_names: [{prefix: nope}]}}`,
			server: srvCert, want: "no subject alternative name of the peer matches"},
		{name: "a certificate of another CA",
			ctx:    `common_tls_context: {validation_context: {trusted_ca: {inline_bytes: "` + b64(ca.pem) + `"}}}`,
			server: otherCert, want: "certificate signed by unknown authority"},
		{name: "no validation context: any certificate, as Envoy",
			ctx:    `sni: x, common_tls_context: {}`,
			server: otherCert},
		{name: "client certificate from files (MUTUAL), ALPN",
			ctx:    `common_tls_context: {alpn_protocols: [h2], tls_certificate_sds_secret_configs: [{name: "file-cert:` + dir + `/client.pem~` + dir + `/client.key"}], validation_context: {trusted_ca: {filename: "` + caFile + `"}}}`,
			server: srvCert, clientCAs: clientCAs, alpn: "h2"},
		{name: "no client certificate",
			ctx:    `common_tls_context: {validation_context: {trusted_ca: {filename: "` + caFile + `"}}}`,
			server: srvCert, clientCAs: clientCAs, want: "handshake failure"},
		{name: "TLS 1.3 only against a TLS 1.3 server",
			ctx:    `common_tls_context: {tls_params: {tls_minimum_protocol_version: TLSv1_3, tls_maximum_protocol_version: TLSv1_3}}`,
			server: srvCert},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := originCluster(t, tc.ctx)
			err, sni, alpn := handshake(t, c.UpstreamTLS.Originate.Config, tc.server, tc.clientCAs)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("handshake: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("handshake: %v, want an error with %q", err, tc.want)
			}
			if want := c.UpstreamTLS.Originate.Config.ServerName; err == nil && sni != want {
				t.Errorf("SNI %q, want %q", sni, want)
			}
			if alpn != tc.alpn {
				t.Errorf("ALPN %q, want %q", alpn, tc.alpn)
			}
		})
	}
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }
