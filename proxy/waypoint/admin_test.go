package waypoint

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/gowaypoint/waypoint/protocols/spiffe"
	"github.com/gowaypoint/waypoint/proxy/certs"
	"github.com/gowaypoint/waypoint/xds/adsclient"
	"github.com/gowaypoint/waypoint/xds/xdstest"
)

func adminGet(t *testing.T, method, url string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// The admin port answers from the start: 503 and INITIALIZING while the
// control plane has sent nothing, LIVE once Start returns.
func TestAdminListensBeforeFirstConfig(t *testing.T) {
	const admin = "127.0.8.40:15000"
	dir := t.TempDir()
	id := spiffe.ID{TrustDomain: "cluster.local", Namespace: "ns", ServiceAccount: "waypoint"}
	if err := certs.WriteMesh(certs.MeshOptions{Dir: dir, IDs: []spiffe.ID{id}}); err != nil {
		t.Fatal(err)
	}
	silent := xdstest.Silent(t, "127.0.8.40:15010")
	conn, err := grpc.NewClient(silent.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()

	type started struct {
		w   *Waypoint
		err error
	}
	done := make(chan started, 1)
	go func() {
		w, err := Start(Options{CertDir: certs.IdentityDir(dir, id), HBONEAddr: "127.0.8.40:0", AdminAddr: admin, Logger: quietLog(),
			ADS: &ADSOptions{Client: adsclient.Config{Conn: conn, Node: &corev3.Node{Id: "waypoint~127.0.8.40~w.ns~ns.svc.cluster.local"},
				InitialFetchTimeout: 1500 * time.Millisecond}}})
		done <- started{w, err}
	}()
	deadline := time.Now().Add(5 * time.Second)
	for {
		// PRE_INITIALIZING until the waypoint asks for its config (the
		// certificates first), then INITIALIZING until the config is in.
		code, body := adminGet(t, "GET", "http://"+admin+"/ready")
		if code == 503 && body == "INITIALIZING\n" {
			break
		}
		if code == 503 && body != "PRE_INITIALIZING\n" {
			t.Fatalf("/ready before config: %q", body)
		}
		if time.Now().After(deadline) {
			t.Fatalf("/ready: %d %q, want 503 before the first config", code, body)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if code, body := adminGet(t, "GET", "http://"+admin+"/server_info"); code != 200 || !strings.Contains(body, `"state": "INITIALIZING"`) {
		t.Errorf("/server_info before config: %d %s", code, body)
	}
	// No config yet: the dump has the identity's secrets only.
	if code, body := adminGet(t, "GET", "http://"+admin+"/config_dump"); code != 200 || !strings.Contains(body, "SecretsConfigDump") ||
		strings.Contains(body, "ListenersConfigDump") {
		t.Errorf("/config_dump before config: %d %s", code, body)
	}
	for _, path := range []string{"/listeners", "/clusters", "/certs", "/stats"} {
		if code, body := adminGet(t, "GET", "http://"+admin+path); code != 200 {
			t.Errorf("%s before config: %d %s", path, code, body)
		}
	}
	if code, body := adminGet(t, "POST", "http://"+admin+"/drain_listeners"); code != 400 {
		t.Errorf("/drain_listeners before config: %d %s, want 400", code, body)
	}
	s := <-done // the initial fetch timeout passed
	if s.err != nil {
		t.Fatal(s.err)
	}
	defer s.w.Shutdown(context.Background())
	if code, body := adminGet(t, "GET", "http://"+admin+"/ready"); code != 200 || body != "LIVE\n" {
		t.Errorf("/ready after Start: %d %q", code, body)
	}
}

func TestAdminEndpointsOfAWaypoint(t *testing.T) {
	greeter(t, "127.0.8.41:7000", "hello")
	w, _ := startWaypoint(t, plaintextConfig("127.0.8.42:7100", "127.0.8.41:7000"))
	base := "http://" + w.AdminAddr().String()
	if got := readAll(t, "127.0.8.42:7100"); got != "hello" {
		t.Fatalf("through the waypoint: %q", got)
	}
	dir := w.certs.Dir()

	for _, tc := range []struct {
		name, method, path string
		code               int
		has                []string
	}{
		{name: "ready", method: "GET", path: "/ready", code: 200, has: []string{"LIVE"}},
		{name: "server_info", method: "GET", path: "/server_info", code: 200,
			has: []string{`"state": "LIVE"`, `"uptime_current_epoch"`, `config.yaml"`, `"drain_time": "5s"`}},
		{name: "clusters", method: "GET", path: "/clusters", code: 200, has: []string{
			"backend::observability_name::backend\n", "backend::default_priority::max_connections::1024\n", "backend::added_via_api::false\n",
			"backend::127.0.8.41:7000::health_flags::healthy\n", "backend::127.0.8.41:7000::rq_total::1\n", "backend::127.0.8.41:7000::rq_success::1\n"}},
		{name: "clusters json", method: "GET", path: "/clusters?format=json", code: 200, has: []string{`"address": "127.0.8.41"`, `"eds_health_status": "HEALTHY"`}},
		{name: "listeners", method: "GET", path: "/listeners", code: 200, has: []string{"front::127.0.8.42:7100\n"}},
		{name: "listeners json", method: "GET", path: "/listeners?format=json", code: 200, has: []string{`"name": "front"`, `"port_value": 7100`}},
		{name: "resource", method: "GET", path: "/config_dump?resource=static_listeners", code: 200,
			has: []string{"ListenersConfigDump.StaticListener", `"name": "front"`}},
		{name: "certs", method: "GET", path: "/certs", code: 200, has: []string{`"ca_cert"`, `"cert_chain"`,
			`"uri": "spiffe://cluster.local/ns/ns/sa/waypoint"`, `"days_until_expiration"`, `"path": "` + filepath.Join(dir, certs.CertChainFile) + `"`}},
		{name: "stats", method: "GET", path: "/stats?filter=^listener\\.front\\.", code: 200, has: []string{"listener.front.downstream_cx_total: "}},
		{name: "drain by GET", method: "GET", path: "/drain_listeners", code: 405},
		{name: "quit by GET", method: "GET", path: "/quitquitquit", code: 405},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := adminGet(t, tc.method, base+tc.path)
			if code != tc.code {
				t.Fatalf("%d %s", code, body)
			}
			for _, s := range tc.has {
				if !strings.Contains(body, s) {
					t.Errorf("no %q in\n%s", s, body)
				}
			}
		})
	}

	t.Run("secrets", func(t *testing.T) {
		code, body := adminGet(t, "GET", base+"/config_dump?resource=dynamic_active_secrets")
		if code != 200 {
			t.Fatalf("%d %s", code, body)
		}
		var dump adminv3.ConfigDump
		if err := protojson.Unmarshal([]byte(body), &dump); err != nil || len(dump.GetConfigs()) != 2 {
			t.Fatalf("%v: %s", err, body)
		}
		chainPEM, _ := os.ReadFile(filepath.Join(dir, certs.CertChainFile))
		rootPEM, _ := os.ReadFile(filepath.Join(dir, certs.RootCertFile))
		for i, want := range []struct {
			name string
			pem  []byte
		}{{"default", chainPEM}, {"ROOTCA", rootPEM}} {
			var ds adminv3.SecretsConfigDump_DynamicSecret
			var s tlsv3.Secret
			if err := dump.GetConfigs()[i].UnmarshalTo(&ds); err != nil || ds.GetSecret().UnmarshalTo(&s) != nil {
				t.Fatalf("configs[%d]: %v", i, err)
			}
			got := s.GetTlsCertificate().GetCertificateChain().GetInlineBytes()
			if want.name == "ROOTCA" {
				got = s.GetValidationContext().GetTrustedCa().GetInlineBytes()
			}
			if ds.GetName() != want.name || s.GetName() != want.name || !samePEM(t, got, want.pem) {
				t.Errorf("configs[%d]: %s, want %s with the file's certificates", i, ds.GetName(), want.name)
			}
			if want.name == "default" && s.GetTlsCertificate().GetPrivateKey().GetInlineString() != "[redacted]" {
				t.Errorf("the private key is not redacted")
			}
		}
	})

	t.Run("drain_listeners", func(t *testing.T) {
		if code, body := adminGet(t, "POST", base+"/drain_listeners?graceful"); code != 200 || body != "OK\n" {
			t.Fatalf("%d %q", code, body)
		}
		deadline := time.Now().Add(5 * time.Second)
		for !strings.Contains(readAll(t, "127.0.8.42:7100"), "dial error") {
			if time.Now().After(deadline) {
				t.Fatal("the listener still accepts after /drain_listeners")
			}
			time.Sleep(20 * time.Millisecond)
		}
		if code, body := adminGet(t, "GET", base+"/ready"); code != 503 || body != "DRAINING\n" {
			t.Errorf("/ready after the drain: %d %q", code, body)
		}
	})

	t.Run("quitquitquit", func(t *testing.T) {
		if code, body := adminGet(t, "POST", base+"/quitquitquit"); code != 200 {
			t.Fatalf("%d %q", code, body)
		}
		select {
		case <-w.QuitRequested():
		case <-time.After(5 * time.Second):
			t.Fatal("QuitRequested not closed")
		}
	})
}

// samePEM reports whether two PEM texts hold the same certificates.
func samePEM(t *testing.T, a, b []byte) bool {
	t.Helper()
	parse := func(p []byte) (out []*x509.Certificate) {
		for {
			var blk *pem.Block
			if blk, p = pem.Decode(p); blk == nil {
				return out
			}
			c, err := x509.ParseCertificate(blk.Bytes)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, c)
		}
	}
	ca, cb := parse(a), parse(b)
	if len(ca) != len(cb) || len(ca) == 0 {
		return false
	}
	for i := range ca {
		if !ca[i].Equal(cb[i]) {
			return false
		}
	}
	return true
}

// MarkDraining turns /ready to 503 DRAINING while the waypoint serves on.
func TestMarkDrainingServesOn(t *testing.T) {
	greeter(t, "127.0.8.51:7000", "hello")
	w, _ := startWaypoint(t, plaintextConfig("127.0.8.52:7100", "127.0.8.51:7000"))
	base := "http://" + w.AdminAddr().String()
	w.MarkDraining()
	if code, body := adminGet(t, "GET", base+"/ready"); code != 503 || !strings.Contains(body, "DRAINING") {
		t.Errorf("/ready after MarkDraining: %d %q, want 503 DRAINING", code, body)
	}
	if got := readAll(t, "127.0.8.52:7100"); got != "hello" {
		t.Errorf("through the waypoint while marked draining: %q", got)
	}
}
