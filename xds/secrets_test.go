package xds

import (
	"crypto/tls"
	"crypto/x509"
	"slices"
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"sigs.k8s.io/yaml"
)

// fromYAML decodes a resource written in YAML.
func fromYAML[M proto.Message](t *testing.T, text string, m M) M {
	t.Helper()
	js, err := yaml.YAMLToJSON([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	if err := protojson.Unmarshal(js, m); err != nil {
		t.Fatalf("%v\n%s", err, text)
	}
	return m
}

// mutualResources is istiod's MUTUAL credentialName cluster (SDS over ADS
// for the certificate and the CA, auto_sni and auto_san_validation) behind
// a tcp_proxy listener, with secrets.
func mutualResources(t *testing.T, secrets ...*tlsv3.Secret) *Resources {
	t.Helper()
	cl := fromYAML(t, `
name: api
type: STATIC
load_assignment: {cluster_name: api, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: 443}}}}]}]}
typed_extension_protocol_options:
  envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
    "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
    upstream_http_protocol_options: {auto_sni: true, auto_san_validation: true}
    explicit_http_config: {http_protocol_options: {}}
transport_socket:
  name: envoy.transport_sockets.tls
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
    common_tls_context:
      tls_certificate_sds_secret_configs: [{name: "kubernetes://cred", sds_config: {ads: {}, resource_api_version: V3}}]
      combined_validation_context:
        default_validation_context: {}
        validation_context_sds_secret_config: {name: "kubernetes://cred-cacert", sds_config: {ads: {}, resource_api_version: V3}}
`, &clusterv3.Cluster{})
	l := fromYAML(t, `
name: main
address: {socket_address: {address: 127.0.0.1, port_value: 8080}}
filter_chains: [{filters: [{name: t, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy, stat_prefix: s, cluster: api}}]}]
`, &listenerv3.Listener{})
	return &Resources{Listeners: []*listenerv3.Listener{l}, Clusters: []*clusterv3.Cluster{cl}, Secrets: secrets}
}

func certSecret(t *testing.T, name string, certPEM, keyPEM []byte) *tlsv3.Secret {
	return fromYAML(t, `{name: "`+name+`", tls_certificate: {certificate_chain: {inline_bytes: "`+b64(certPEM)+`"}, private_key: {inline_bytes: "`+b64(keyPEM)+`"}}}`, &tlsv3.Secret{})
}

func caSecret(t *testing.T, name string, caPEM []byte) *tlsv3.Secret {
	return fromYAML(t, `{name: "`+name+`", validation_context: {trusted_ca: {inline_bytes: "`+b64(caPEM)+`"}}}`, &tlsv3.Secret{})
}

func TestSecretNames(t *testing.T) {
	r := mutualResources(t)
	if got, want := SecretNames(r.Clusters[0]), []string{"kubernetes://cred", "kubernetes://cred-cacert"}; !slices.Equal(got, want) {
		t.Errorf("SecretNames = %q, want %q", got, want)
	}
	// Inside internal_upstream, as istiod wraps a waypoint's TLS; file-root
	// names (not over ADS) are not listed.
	cl := fromYAML(t, `
name: x
transport_socket:
  name: internal_upstream
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.transport_sockets.internal_upstream.v3.InternalUpstreamTransport
    transport_socket:
      name: tls
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
        common_tls_context:
          tls_certificate_sds_secret_configs: [{name: "kubernetes://inner", sds_config: {ads: {}}}]
          validation_context_sds_secret_config: {name: "file-root:/etc/ca.pem", sds_config: {api_config_source: {api_type: GRPC}}}
`, &clusterv3.Cluster{})
	if got := SecretNames(cl); !slices.Equal(got, []string{"kubernetes://inner"}) {
		t.Errorf("inside internal_upstream: %q", got)
	}
}

func TestMutualTLSWithADSSecrets(t *testing.T) {
	ca := newTestCA(t)
	clientPEM, clientKey := ca.issue(t, "client")
	srvPEM, srvKey := ca.issue(t, "api.example.com")
	srvCert, _ := tls.X509KeyPair(srvPEM, srvKey)
	clientCAs := x509.NewCertPool()
	clientCAs.AddCert(ca.cert)

	// Without the secrets, the cluster decodes and is refused, naming the
	// secret it waits for.
	snap, err := BuildResources("v1", mutualResources(t))
	if err != nil {
		t.Fatal(err)
	}
	c := snap.Cluster("api")
	if !strings.Contains(c.Refusal, `SDS secret "kubernetes://cred"`) {
		t.Errorf("without its secrets: refusal %q", c.Refusal)
	}
	if !c.AutoSNI || !c.AutoSANValidation {
		t.Errorf("auto_sni %v, auto_san_validation %v", c.AutoSNI, c.AutoSANValidation)
	}
	snap, err = BuildResources("v1", mutualResources(t, certSecret(t, "kubernetes://cred", clientPEM, clientKey)))
	if err != nil {
		t.Fatal(err)
	}
	if c := snap.Cluster("api"); !strings.Contains(c.Refusal, `SDS secret "kubernetes://cred-cacert"`) {
		t.Errorf("without its CA: refusal %q", c.Refusal)
	}

	snap, err = BuildResources("v1", mutualResources(t, certSecret(t, "kubernetes://cred", clientPEM, clientKey),
		caSecret(t, "kubernetes://cred-cacert", ca.pem)))
	if err != nil {
		t.Fatal(err)
	}
	c = snap.Cluster("api")
	if c.Refusal != "" {
		t.Fatalf("refused: %s", c.Refusal)
	}
	o := c.UpstreamTLS.Originate
	// auto_sni and auto_san_validation: the request's host.
	err, sni, _ := handshake(t, o.ConfigFor("api.example.com", true, true), srvCert, clientCAs)
	if err != nil || sni != "api.example.com" {
		t.Errorf("mutual TLS to api.example.com: %v, SNI %q", err, sni)
	}
	if err, _, _ := handshake(t, o.ConfigFor("other.example.com", true, true), srvCert, clientCAs); err == nil || !strings.Contains(err.Error(), "auto_san_validation") {
		t.Errorf("a certificate not for the host: %v", err)
	}
	// An IP address is no SNI (as Envoy), and is checked against IP SANs.
	if err, sni, _ := handshake(t, o.ConfigFor("127.0.0.1", true, false), srvCert, clientCAs); err != nil || sni != "" {
		t.Errorf("an IP host: %v, SNI %q", err, sni)
	}
	// The CA comes from the secret: a server of another CA is refused.
	other := newTestCA(t)
	op, ok := other.issue(t, "api.example.com")
	otherCert, _ := tls.X509KeyPair(op, ok)
	if err, _, _ := handshake(t, o.ConfigFor("api.example.com", true, true), otherCert, nil); err == nil || !strings.Contains(err.Error(), "unknown authority") {
		t.Errorf("a server of another CA: %v", err)
	}

	// The key follows the secrets' content: new certificate, new key.
	newPEM, newKey := ca.issue(t, "client")
	snap2, err := BuildResources("v2", mutualResources(t, certSecret(t, "kubernetes://cred", newPEM, newKey),
		caSecret(t, "kubernetes://cred-cacert", ca.pem)))
	if err != nil {
		t.Fatal(err)
	}
	if snap2.Cluster("api").TLSKey() == c.TLSKey() {
		t.Error("a new certificate kept the TLS key: pooled connections of the old one would be reused")
	}
}

func TestSecretErrors(t *testing.T) {
	ca := newTestCA(t)
	tests := []struct {
		name, secret, want string
	}{
		{"not PEM", `{name: s, tls_certificate: {certificate_chain: {inline_string: xx}, private_key: {inline_string: yy}}}`, `secret "s": tls_certificate: ...`},
		{"no CA", `{name: s, validation_context: {}}`, `secret "s": validation_context.trusted_ca: required`},
		{"CRL", `{name: s, validation_context: {trusted_ca: {inline_bytes: "` + b64(ca.pem) + `"}, crl: {inline_string: x}}}`, `secret "s": validation_context.crl: not supported yet`},
		{"empty", `{name: s}`, `secret "s": want tls_certificate or validation_context`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := BuildResources("v1", mutualResources(t, fromYAML(t, tc.secret, &tlsv3.Secret{})))
			if err == nil || !errorMatches(err.Error(), tc.want) {
				t.Errorf("error:\n got: %v\nwant: %s", err, tc.want)
			}
		})
	}
}

func TestUpstreamHTTPProtocolOptionsRefused(t *testing.T) {
	_, err := ParseBootstrap([]byte(doc("", []string{listenerOn("main", 8080, "", tcpChain("a", "b", ""))}, []string{`{name: b,
  typed_extension_protocol_options: {envoy.extensions.upstreams.http.v3.HttpProtocolOptions: {"@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions,
    upstream_http_protocol_options: {auto_sni: true, override_auto_sni_header: x-sni}, explicit_http_config: {http_protocol_options: {}}}}}`})), "test.yaml")
	if want := `upstream_http_protocol_options.override_auto_sni_header: not supported yet`; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("error %v, want %q", err, want)
	}
}
