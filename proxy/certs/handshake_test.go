package certs

import (
	"crypto/tls"
	"crypto/x509"
	"net/url"
	"testing"
	"time"

	"github.com/gowaypoint/waypoint/protocols/spiffe"
)

// testMesh is one CA with a server and a client identity of cluster.local,
// each served by a Source.
type testMesh struct {
	ca                   *CA
	serverID             spiffe.ID
	clientID             spiffe.ID
	server, client       *Source
	serverDir, clientDir string
}

func newTestMesh(t *testing.T) *testMesh {
	t.Helper()
	dir := t.TempDir()
	m := &testMesh{
		serverID: mustID(t, "spiffe://cluster.local/ns/srv/sa/server"),
		clientID: mustID(t, "spiffe://cluster.local/ns/cli/sa/client"),
	}
	if err := WriteMesh(MeshOptions{Dir: dir, IDs: []spiffe.ID{m.serverID, m.clientID}}); err != nil {
		t.Fatal(err)
	}
	ca, err := LoadCA(dir+"/"+RootCertFile, dir+"/"+RootKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	m.ca = ca
	m.serverDir, m.clientDir = IdentityDir(dir, m.serverID), IdentityDir(dir, m.clientID)
	m.server = newSource(t, m.serverDir, nil)
	m.client = newSource(t, m.clientDir, nil)
	return m
}

func TestServerHandshake(t *testing.T) {
	m := newTestMesh(t)
	srv := newTestServer(t, m.server.ServerTLSConfig())
	other := mustCA(t, "cluster.local")
	now := time.Now()

	tests := []struct {
		name       string
		client     *tls.Config
		wantServer string // substring of the server's handshake error; "" accepts
		wantPeer   spiffe.ID
	}{
		{
			name:     "mesh client accepted",
			client:   m.client.ClientTLSConfig(PeerExpectation{}),
			wantPeer: m.clientID,
		},
		{
			name:     "client of the same trust domain, raw config",
			client:   rawClient(t, mustIssue(t, m.ca, IssueRequest{ID: mustID(t, "spiffe://cluster.local/ns/x/sa/y")})),
			wantPeer: mustID(t, "spiffe://cluster.local/ns/x/sa/y"),
		},
		{
			name:       "other trust domain, same CA",
			client:     rawClient(t, mustIssue(t, m.ca, IssueRequest{ID: mustID(t, "spiffe://other.local/ns/a/sa/b")})),
			wantServer: "verify client certificate: peer spiffe://other.local/ns/a/sa/b is not in trust domain cluster.local",
		},
		{
			name:       "other CA",
			client:     rawClient(t, mustIssue(t, other, IssueRequest{ID: m.clientID})),
			wantServer: "certificate signed by unknown authority",
		},
		{
			name: "expired",
			client: rawClient(t, mustIssue(t, m.ca, IssueRequest{ID: m.clientID,
				NotBefore: now.Add(-48 * time.Hour), NotAfter: now.Add(-24 * time.Hour)})),
			wantServer: "peer spiffe://cluster.local/ns/cli/sa/client: certificate has expired",
		},
		{
			name: "not yet valid",
			client: rawClient(t, mustIssue(t, m.ca, IssueRequest{ID: m.clientID,
				NotBefore: now.Add(time.Hour), NotAfter: now.Add(25 * time.Hour)})),
			wantServer: "certificate is not yet valid",
		},
		{
			name:       "no client certificate",
			client:     rawClient(t, pair{}),
			wantServer: "client didn't provide a certificate",
		},
		{
			name: "no SPIFFE SAN",
			client: rawClient(t, mustSign(t, m.ca, &x509.Certificate{
				NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
				ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
			})),
			wantServer: "has no spiffe:// URI SAN",
		},
		{
			name: "server-auth-only certificate",
			client: rawClient(t, mustSign(t, m.ca, &x509.Certificate{
				NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
				ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
				URIs:        []*url.URL{m.clientID.URL()},
			})),
			wantServer: "incompatible key usage",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := srv.handshake(t, tc.client)
			t.Logf("server: %v; client: %v", r.serverErr, r.clientErr)
			wantErr(t, "server handshake", r.serverErr, tc.wantServer)
			if tc.wantServer != "" {
				if r.clientErr == nil {
					t.Error("client saw no refusal")
				}
				return
			}
			if r.clientErr != nil {
				t.Fatalf("client: %v", r.clientErr)
			}
			if r.serverIDErr != nil || r.serverID != tc.wantPeer {
				t.Errorf("server sees peer %v (err %v), want %v", r.serverID, r.serverIDErr, tc.wantPeer)
			}
			if r.client.Version != tls.VersionTLS13 || r.client.NegotiatedProtocol != ALPNH2 {
				t.Errorf("negotiated version %x ALPN %q, want TLS 1.3 and h2", r.client.Version, r.client.NegotiatedProtocol)
			}
			if got, _ := PeerIdentity(r.client); got != m.serverID {
				t.Errorf("client sees server %v, want %v", got, m.serverID)
			}
		})
	}
}

func TestClientHandshake(t *testing.T) {
	m := newTestMesh(t)
	meshServer := newTestServer(t, m.server.ServerTLSConfig())
	now := time.Now()
	foreignID := mustID(t, "spiffe://other.local/ns/srv/sa/server")
	foreignServer := newTestServer(t, rawServer(t, mustIssue(t, m.ca, IssueRequest{ID: foreignID})))
	otherCAServer := newTestServer(t, rawServer(t, mustIssue(t, mustCA(t, "cluster.local"), IssueRequest{ID: m.serverID})))
	expiredServer := newTestServer(t, rawServer(t, mustIssue(t, m.ca, IssueRequest{ID: m.serverID,
		NotBefore: now.Add(-48 * time.Hour), NotAfter: now.Add(-time.Hour)})))

	tests := []struct {
		name       string
		server     *testServer
		expect     PeerExpectation
		wantClient string // substring of the client's error; "" accepts
		wantPeer   spiffe.ID
	}{
		{name: "any identity of own trust domain", server: meshServer, wantPeer: m.serverID},
		{name: "exact ID matches", server: meshServer, expect: PeerExpectation{ID: m.serverID}, wantPeer: m.serverID},
		{
			name: "exact ID mismatch", server: meshServer,
			expect:     PeerExpectation{ID: mustID(t, "spiffe://cluster.local/ns/srv/sa/other")},
			wantClient: "verify server certificate: peer identity spiffe://cluster.local/ns/srv/sa/server, want spiffe://cluster.local/ns/srv/sa/other",
		},
		{
			name: "SAN prefix matches", server: meshServer,
			expect:   PeerExpectation{SANPrefixes: []string{"spiffe://cluster.local/ns/nope/", "spiffe://cluster.local/ns/srv/"}},
			wantPeer: m.serverID,
		},
		{
			name: "SAN prefix mismatch", server: meshServer,
			expect:     PeerExpectation{SANPrefixes: []string{"spiffe://cluster.local/ns/other/"}},
			wantClient: "matches no subject alt name matcher",
		},
		{
			name: "SAN exact matches among others", server: meshServer,
			expect: PeerExpectation{
				SANExact:    []string{"spiffe://cluster.local/ns/srv/sa/server"},
				SANPrefixes: []string{"spiffe://cluster.local/ns/other/"},
			},
			wantPeer: m.serverID,
		},
		{
			name: "SAN exact mismatch", server: meshServer,
			expect:     PeerExpectation{SANExact: []string{"spiffe://cluster.local/ns/srv/sa/serve"}},
			wantClient: "matches no subject alt name matcher",
		},
		{
			name: "server of another trust domain", server: foreignServer,
			wantClient: "verify server certificate: peer spiffe://other.local/ns/srv/sa/server is not in trust domain cluster.local",
		},
		{
			name: "other trust domain expected explicitly", server: foreignServer,
			expect: PeerExpectation{TrustDomain: "other.local"}, wantPeer: foreignID,
		},
		{
			name: "other trust domain implied by exact ID", server: foreignServer,
			expect: PeerExpectation{ID: foreignID}, wantPeer: foreignID,
		},
		{
			name: "trust domain and ID disagree", server: foreignServer,
			expect:     PeerExpectation{ID: foreignID, TrustDomain: "cluster.local"},
			wantClient: "is not in trust domain cluster.local",
		},
		{
			name: "server of another CA", server: otherCAServer,
			wantClient: "certificate signed by unknown authority",
		},
		{
			name: "expired server", server: expiredServer,
			wantClient: "peer spiffe://cluster.local/ns/srv/sa/server: certificate has expired",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.server.handshake(t, m.client.ClientTLSConfig(tc.expect))
			t.Logf("client: %v; server: %v", r.clientErr, r.serverErr)
			wantErr(t, "client", r.clientErr, tc.wantClient)
			if tc.wantClient != "" {
				if r.serverErr == nil {
					t.Error("server saw no refusal")
				}
				return
			}
			if r.serverErr != nil {
				t.Fatalf("server: %v", r.serverErr)
			}
			if got, err := PeerIdentity(r.client); err != nil || got != tc.wantPeer {
				t.Errorf("client sees server %v (err %v), want %v", got, err, tc.wantPeer)
			}
		})
	}
}

func TestPeerIdentity(t *testing.T) {
	ca := mustCA(t, "cluster.local")
	withID := mustIssue(t, ca, IssueRequest{ID: mustID(t, "spiffe://cluster.local/ns/a/sa/b")}).leaf(t)
	noID := mustSign(t, ca, &x509.Certificate{NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}).leaf(t)
	tests := []struct {
		name    string
		cs      tls.ConnectionState
		want    spiffe.ID
		wantErr string
	}{
		{name: "complete", cs: tls.ConnectionState{HandshakeComplete: true, PeerCertificates: []*x509.Certificate{withID}},
			want: mustID(t, "spiffe://cluster.local/ns/a/sa/b")},
		{name: "handshake not complete", cs: tls.ConnectionState{PeerCertificates: []*x509.Certificate{withID}},
			wantErr: "handshake not complete"},
		{name: "no certificate", cs: tls.ConnectionState{HandshakeComplete: true}, wantErr: "presented no certificate"},
		{name: "no SPIFFE ID", cs: tls.ConnectionState{HandshakeComplete: true, PeerCertificates: []*x509.Certificate{noID}},
			wantErr: "no spiffe:// URI SAN"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := PeerIdentity(tc.cs)
			wantErr(t, "PeerIdentity", err, tc.wantErr)
			if got != tc.want {
				t.Errorf("PeerIdentity = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestTLSConfigSettings(t *testing.T) {
	m := newTestMesh(t)
	for name, cfg := range map[string]*tls.Config{
		"server": m.server.ServerTLSConfig(),
		"client": m.client.ClientTLSConfig(PeerExpectation{}),
	} {
		if cfg.MinVersion != tls.VersionTLS13 || cfg.MaxVersion != tls.VersionTLS13 {
			t.Errorf("%s: versions %x..%x, want TLS 1.3 only", name, cfg.MinVersion, cfg.MaxVersion)
		}
		if len(cfg.NextProtos) != 1 || cfg.NextProtos[0] != "h2" {
			t.Errorf("%s: NextProtos %q, want [h2]", name, cfg.NextProtos)
		}
		if !cfg.DynamicRecordSizingDisabled {
			t.Errorf("%s: dynamic record sizing enabled", name)
		}
	}
	if got := m.server.ServerTLSConfig().ClientAuth; got != tls.RequireAnyClientCert {
		t.Errorf("server ClientAuth = %v, want a certificate required", got)
	}
}
