package kubeapply

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

// testPKI is a CA and a certificate it signed, as PEM.
type testPKI struct {
	caPEM, certPEM, keyPEM []byte
	ca                     *x509.Certificate
	caKey                  *ecdsa.PrivateKey
}

func newTestPKI(t *testing.T) *testPKI {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test-ca"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	p := &testPKI{ca: ca, caKey: caKey, caPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})}
	p.certPEM, p.keyPEM = p.issue(t, "admin", x509.ExtKeyUsageClientAuth)
	return p
}

// issue signs a certificate for cn (also its IP SAN when cn is an IP).
func (p *testPKI) issue(t *testing.T, cn string, usage x509.ExtKeyUsage) (certPEM, keyPEM []byte) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage}}
	if ip := net.ParseIP(cn); ip != nil {
		tmpl.IPAddresses = []net.IP{ip}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca, &key.PublicKey, p.caKey)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

func TestParseKubeconfig(t *testing.T) {
	pki := newTestPKI(t)
	dir := t.TempDir()
	for name, data := range map[string][]byte{"ca.crt": pki.caPEM, "certs/client.crt": pki.certPEM, "certs/client.key": pki.keyPEM,
		"token": []byte("file-token\n"), "bad.crt": []byte("not a certificate")} {
		os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755)
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// kc is a kubeconfig of one context "c" of cluster "k" and user "u".
	kc := func(cluster, user string) string {
		return "apiVersion: v1\nkind: Config\ncurrent-context: c\n" +
			"contexts:\n- name: c\n  context: {cluster: k, user: u, namespace: team}\n" +
			"- name: other\n  context: {cluster: k2, user: u}\n" +
			"clusters:\n- name: k\n  cluster:\n" + indent(cluster) +
			"- name: k2\n  cluster: {server: 'https://other.example:6443', insecure-skip-tls-verify: true}\n" +
			"users:\n- name: u\n  user:\n" + indent(user)
	}
	const server = "server: https://127.0.0.1:6443\n"
	tests := []struct {
		name    string
		text    string
		context string
		check   func(t *testing.T, c *Config)
		wantErr string
	}{
		{name: "token and CA data", text: kc(server+"certificate-authority-data: "+b64(pki.caPEM)+"\n", "token: abc\n"),
			check: func(t *testing.T, c *Config) {
				if c.Server != "https://127.0.0.1:6443" || c.Token != "abc" || c.Namespace != "team" || c.TLS.RootCAs == nil || c.TLS.InsecureSkipVerify {
					t.Errorf("config %+v", c)
				}
				if !strings.Contains(c.Source, `context "c"`) {
					t.Errorf("source %q", c.Source)
				}
			}},
		{name: "relative CA file, client certificate files and tokenFile", text: kc(server+"certificate-authority: ca.crt\ntls-server-name: api.local\n",
			"client-certificate: certs/client.crt\nclient-key: certs/client.key\ntokenFile: token\n"),
			check: func(t *testing.T, c *Config) {
				if c.TLS.RootCAs == nil || len(c.TLS.Certificates) != 1 || c.TLS.ServerName != "api.local" {
					t.Errorf("tls %+v", c.TLS)
				}
				if c.TokenFile != filepath.Join(dir, "token") {
					t.Errorf("tokenFile %q", c.TokenFile)
				}
			}},
		{name: "client certificate data, a path prefix kept", text: kc("server: https://h.example/k8s/clusters/c1/\ninsecure-skip-tls-verify: true\n",
			"client-certificate-data: "+b64(pki.certPEM)+"\nclient-key-data: "+b64(pki.keyPEM)+"\n"),
			check: func(t *testing.T, c *Config) {
				if c.Server != "https://h.example/k8s/clusters/c1" || !c.TLS.InsecureSkipVerify || len(c.TLS.Certificates) != 1 {
					t.Errorf("config %+v", c)
				}
			}},
		{name: "basic auth and a proxy", text: kc(server+"proxy-url: http://proxy.local:3128\n", "username: me\npassword: pw\n"),
			check: func(t *testing.T, c *Config) {
				if c.Username != "me" || c.Password != "pw" || c.ProxyURL == nil || c.ProxyURL.Host != "proxy.local:3128" {
					t.Errorf("config %+v", c)
				}
			}},
		{name: "--context over current-context", context: "other", text: kc(server, "token: abc\n"),
			check: func(t *testing.T, c *Config) {
				if c.Server != "https://other.example:6443" || c.Namespace != "" {
					t.Errorf("config %+v", c)
				}
			}},
		{name: "unknown fields skipped", text: kc(server+"extensions: [{name: x, extension: {a: 1}}]\n", "token: abc\nextensions: []\n"),
			check: func(t *testing.T, c *Config) {}},

		{name: "exec plugin", text: kc(server, "exec: {apiVersion: client.authentication.k8s.io/v1, command: gke-gcloud-auth-plugin}\n"),
			wantErr: `user "u": authenticates with an exec plugin ("gke-gcloud-auth-plugin"), which waypoint does not run`},
		{name: "auth-provider plugin", text: kc(server, "auth-provider: {name: oidc, config: {}}\n"),
			wantErr: `user "u": authenticates with the auth-provider plugin "oidc"`},
		{name: "impersonation", text: kc(server, "token: abc\nas: someone\n"), wantErr: `user "u": impersonation`},
		{name: "token and basic auth", text: kc(server, "token: abc\nusername: me\n"), wantErr: "a token and a username/password"},
		{name: "certificate without key", text: kc(server, "client-certificate: certs/client.crt\n"), wantErr: "a client-certificate without a client-key"},
		{name: "key without certificate", text: kc(server, "client-key-data: "+b64(pki.keyPEM)+"\n"), wantErr: "a client-key without a client-certificate"},
		{name: "mismatched certificate and key", text: kc(server, "client-certificate-data: "+b64(pki.caPEM)+"\nclient-key-data: "+b64(pki.keyPEM)+"\n"),
			wantErr: "client-certificate and client-key"},
		{name: "missing tokenFile", text: kc(server, "tokenFile: nope\n"), wantErr: "tokenFile: stat " + filepath.Join(dir, "nope")},
		{name: "insecure and a CA", text: kc(server+"insecure-skip-tls-verify: true\ncertificate-authority: ca.crt\n", "token: x\n"),
			wantErr: `cluster "k": insecure-skip-tls-verify with a certificate-authority`},
		{name: "CA that is no certificate", text: kc(server+"certificate-authority: bad.crt\n", "token: x\n"), wantErr: "certificate-authority: no PEM certificate"},
		{name: "missing CA file", text: kc(server+"certificate-authority: missing.crt\n", "token: x\n"), wantErr: "certificate-authority: open " + filepath.Join(dir, "missing.crt")},
		{name: "server without scheme", text: kc("server: 127.0.0.1:6443\n", "token: x\n"), wantErr: `server "127.0.0.1:6443": want https://host[:port]`},
		{name: "no server", text: kc("insecure-skip-tls-verify: true\n", "token: x\n"), wantErr: `server "": want https://host[:port]`},
		{name: "unknown context", context: "nope", text: kc(server, "token: x\n"), wantErr: `no context "nope"`},
		{name: "no current-context", text: "apiVersion: v1\nkind: Config\nclusters: []\n", wantErr: "no current-context, and no --context"},
		{name: "context naming a missing cluster", text: "current-context: c\ncontexts: [{name: c, context: {cluster: gone, user: u}}]\n",
			wantErr: `context "c" names cluster "gone", which the file does not define`},
		{name: "context naming a missing user", text: "current-context: c\ncontexts: [{name: c, context: {cluster: k, user: gone}}]\nclusters: [{name: k, cluster: {server: 'https://h:1'}}]\n",
			wantErr: `context "c" names user "gone", which the file does not define`},
		{name: "not YAML", text: "clusters: {", wantErr: "kubeconfig " + filepath.Join(dir, "config") + ": "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ParseKubeconfig([]byte(tt.text), filepath.Join(dir, "config"), tt.context)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, c)
		})
	}
}

// indent indents every line of s by four spaces.
func indent(s string) string {
	var b strings.Builder
	for _, l := range strings.SplitAfter(s, "\n") {
		if l != "" {
			b.WriteString("    " + l)
		}
	}
	return b.String()
}

func TestLoad(t *testing.T) {
	pki := newTestPKI(t)
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	kc := func(server string) string {
		return "current-context: c\ncontexts: [{name: c, context: {cluster: k, user: u}}]\nclusters: [{name: k, cluster: {server: '" + server +
			"', insecure-skip-tls-verify: true}}]\nusers: [{name: u, user: {token: t}}]\n"
	}
	first := write("one/config", kc("https://one:1"))
	second := write("two/config", kc("https://two:1"))
	write("home/.kube/config", kc("https://home:1"))
	sa := filepath.Join(dir, "sa")
	write("sa/token", "sa-token\n")
	write("sa/ca.crt", string(pki.caPEM))
	write("sa/namespace", "apps\n")
	missing := filepath.Join(dir, "missing")
	list := func(p ...string) string { return strings.Join(p, string(os.PathListSeparator)) }
	inPod := map[string]string{"KUBERNETES_SERVICE_HOST": "fd00::1", "KUBERNETES_SERVICE_PORT": "443"}

	tests := []struct {
		name       string
		s          Sources
		env        map[string]string
		wantServer string
		wantNS     string
		wantErr    string
	}{
		{name: "--kubeconfig over $KUBECONFIG", s: Sources{Kubeconfig: second}, env: map[string]string{"KUBECONFIG": first}, wantServer: "https://two:1"},
		{name: "--kubeconfig missing", s: Sources{Kubeconfig: missing}, wantErr: "kubeconfig: open " + missing},
		{name: "first existing file of $KUBECONFIG", env: map[string]string{"KUBECONFIG": list(missing, "", second, first)}, wantServer: "https://two:1"},
		{name: "$KUBECONFIG over ~/.kube/config", env: map[string]string{"KUBECONFIG": first}, wantServer: "https://one:1"},
		{name: "~/.kube/config", wantServer: "https://home:1"},
		{name: "$KUBECONFIG with no file: in-cluster", env: merge(inPod, map[string]string{"KUBECONFIG": missing}),
			wantServer: "https://[fd00::1]:443", wantNS: "apps"},
		{name: "no kubeconfig: in-cluster", s: Sources{Home: filepath.Join(dir, "nohome")}, env: inPod,
			wantServer: "https://[fd00::1]:443", wantNS: "apps"},
		{name: "nothing at all", s: Sources{Home: filepath.Join(dir, "nohome")},
			wantErr: "no kubeconfig (--kubeconfig, $KUBECONFIG, ~/.kube/config) and not in a pod"},
		{name: "--context without a kubeconfig", s: Sources{Home: filepath.Join(dir, "nohome"), Context: "x"}, env: inPod,
			wantErr: `--context "x": no kubeconfig found`},
		{name: "in a pod without its token", s: Sources{Home: filepath.Join(dir, "nohome"), ServiceAccountDir: filepath.Join(dir, "nosa")}, env: inPod,
			wantErr: "in-cluster config: stat " + filepath.Join(dir, "nosa", "token")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := tt.s
			s.Getenv = func(k string) string { return tt.env[k] }
			if s.Home == "" {
				s.Home = filepath.Join(dir, "home")
			}
			if s.ServiceAccountDir == "" {
				s.ServiceAccountDir = sa
			}
			c, err := Load(s)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.Server != tt.wantServer || c.Namespace != tt.wantNS {
				t.Errorf("server %q namespace %q, want %q %q", c.Server, c.Namespace, tt.wantServer, tt.wantNS)
			}
			if strings.HasPrefix(tt.wantServer, "https://[fd00") && (c.TokenFile != filepath.Join(sa, "token") || c.TLS.RootCAs == nil) {
				t.Errorf("in-cluster config %+v", c)
			}
		})
	}
}

func merge(ms ...map[string]string) map[string]string {
	out := map[string]string{}
	for _, m := range ms {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}

func TestPath(t *testing.T) {
	tests := []struct{ apiVersion, resource, ns, name, want string }{
		{"v1", "namespaces", "", "apps", "/api/v1/namespaces/apps"},
		{"gateway.networking.k8s.io/v1", "gateways", "apps", "waypoint", "/apis/gateway.networking.k8s.io/v1/namespaces/apps/gateways/waypoint"},
		{"gateway.networking.k8s.io/v1", "gateways", "apps", "", "/apis/gateway.networking.k8s.io/v1/namespaces/apps/gateways"},
		{"v1", "namespaces", "", "a/b", "/api/v1/namespaces/a%2Fb"},
	}
	for _, tt := range tests {
		if got := Path(tt.apiVersion, tt.resource, tt.ns, tt.name); got != tt.want {
			t.Errorf("Path(%q, %q, %q, %q) = %q, want %q", tt.apiVersion, tt.resource, tt.ns, tt.name, got, tt.want)
		}
	}
}

// TestClientTLS checks, against a TLS server on loopback, that the
// client verifies the server against the kubeconfig's CA, presents the
// kubeconfig's client certificate, and sends a token file's current
// content. (What the API server answers is checked against the real one
// in e2e/cluster/live, TestWaypointApply.)
func TestClientTLS(t *testing.T) {
	pki := newTestPKI(t)
	srvCert, srvKey := pki.issue(t, "127.0.0.1", x509.ExtKeyUsageServerAuth)
	pair, err := tls.X509KeyPair(srvCert, srvKey)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pki.caPEM)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{pair}, ClientCAs: pool,
		ClientAuth: tls.RequireAndVerifyClientCert, NextProtos: []string{"http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type seen struct {
		cn, auth string
	}
	seenc := make(chan seen, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		tc := conn.(*tls.Conn)
		buf := make([]byte, 4096)
		n, _ := tc.Read(buf)
		var s seen
		if st := tc.ConnectionState(); len(st.PeerCertificates) > 0 {
			s.cn = st.PeerCertificates[0].Subject.CommonName
		}
		for _, l := range strings.Split(string(buf[:n]), "\r\n") {
			if v, ok := strings.CutPrefix(l, "Authorization: "); ok {
				s.auth = v
			}
		}
		seenc <- s
		tc.Write([]byte("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}"))
	}()
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	os.WriteFile(tokenFile, []byte("rotated-token\n"), 0o600)
	text := "current-context: c\ncontexts: [{name: c, context: {cluster: k, user: u}}]\n" +
		"clusters: [{name: k, cluster: {server: 'https://" + ln.Addr().String() + "', certificate-authority-data: " + b64(pki.caPEM) + "}}]\n" +
		"users: [{name: u, user: {token: stale, tokenFile: " + tokenFile + ", client-certificate-data: " + b64(pki.certPEM) +
		", client-key-data: " + b64(pki.keyPEM) + "}}]\n"
	cfg, err := ParseKubeconfig([]byte(text), filepath.Join(dir, "config"), "")
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseIdle()
	var out map[string]any
	if err := c.Get(t.Context(), "/api/v1/namespaces/x", &out); err != nil {
		t.Fatal(err)
	}
	if s := <-seenc; s.cn != "admin" || s.auth != "Bearer rotated-token" {
		t.Errorf("the server saw client certificate %q and authorization %q", s.cn, s.auth)
	}
}
