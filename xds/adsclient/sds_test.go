package adsclient

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
)

// sdsCluster is a STATIC cluster originating TLS with the client
// certificate of SDS secret name over ADS (istiod's credentialName).
func sdsCluster(t *testing.T, name, secret string) *clusterv3.Cluster {
	ctx, err := anypb.New(&tlsv3.UpstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{
		TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{{Name: secret, SdsConfig: &corev3.ConfigSource{
			ResourceApiVersion: corev3.ApiVersion_V3, ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}}}}}}})
	if err != nil {
		t.Fatal(err)
	}
	return &clusterv3.Cluster{Name: name, ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC},
		ConnectTimeout:  durationpb.New(time.Second),
		LoadAssignment:  loadAssignment(name, "127.0.70.60", 443),
		TransportSocket: &corev3.TransportSocket{Name: "tls", ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: ctx}}}
}

// clientSecret is a tls_certificate secret with a fresh self-signed
// certificate.
func clientSecret(t *testing.T, name string) *tlsv3.Secret {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "client"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	return &tlsv3.Secret{Name: name, Type: &tlsv3.Secret_TlsCertificate{TlsCertificate: &tlsv3.TlsCertificate{
		CertificateChain: &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}},
		PrivateKey:       &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})}},
	}}}
}

// A cluster naming an SDS secret over ADS subscribes to it and warms on it,
// as Envoy's: no snapshot with the cluster is applied until the secret has
// come; then the cluster's TLS has the certificate, and a new version of
// the secret makes a new snapshot.
func TestSDSSecretWarming(t *testing.T) {
	for i, delta := range []bool{false, true} {
		name := map[bool]string{false: "sotw", true: "delta"}[delta]
		t.Run(name, func(t *testing.T) { testSDSSecretWarming(t, fmt.Sprintf("127.0.70.%d:15010", 30+i), delta) })
	}
}

func testSDSSecretWarming(t *testing.T, addr string, delta bool) {
	cp := startServer(t, addr, fixture(t))
	defer cp.stop()
	c := runClient(t, addr, Config{Delta: delta})
	waitReady(t, c, 10*time.Second, "no config applied")
	first := c.Snapshot()

	r := fixture(t)
	r.Clusters = append(r.Clusters, sdsCluster(t, "mtls", "kubernetes://cred"))
	if err := cp.srv.Push(r); err != nil {
		t.Fatal(err)
	}
	v := cp.srv.Version()
	waitFor(t, "the CDS with the new cluster accepted", func() bool { return c.Versions()[resourcev3.ClusterType] == v })
	if s := c.Snapshot(); s != first || s.Cluster("mtls") != nil {
		t.Fatalf("a snapshot was applied before the cluster's secret came (has mtls: %v)", s.Cluster("mtls") != nil)
	}

	r.Secrets = append(r.Secrets, clientSecret(t, "kubernetes://cred"))
	if err := cp.srv.Push(r); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the cluster applied with its certificate", func() bool {
		cl := c.Snapshot().Cluster("mtls")
		return cl != nil && cl.Refusal == "" && len(cl.UpstreamTLS.Originate.Config.Certificates) == 1
	})
	key := c.Snapshot().Cluster("mtls").TLSKey()

	r.Secrets = []*tlsv3.Secret{clientSecret(t, "kubernetes://cred")}
	if err := cp.srv.Push(r); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the new certificate applied", func() bool {
		cl := c.Snapshot().Cluster("mtls")
		return cl != nil && cl.TLSKey() != key
	})
	if n, last := c.NACKs(); n != 0 {
		t.Errorf("%d NACKs: %s", n, last)
	}
}
