package live

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/encoding/protowire"
)

// The authorization service of the mesh config's providers ext-authz-http (:8000) and
// ext-authz-grpc (:9000): Service ext-authz.istio-system over one WorkloadEntry (ambient,
// service account ext-authz) on extAuthzIP, with its ztunnel stand-in and both servers. The
// Service lives in istio-system, shared by every world, so the workload is one for the whole
// run, started by the first case that needs it; it counts its checks per checked authority (a
// world's reviews VIP), so that parallel worlds count apart. It allows a request carrying
// x-ext-authz: allow (the gRPC answer adds x-ext-authz-check-result: allowed upstream) and denies
// the others with 403, x-ext-authz-check-result: denied and a body of its own. A connection's
// check (the gRPC provider's network filter on TCP chains) is allowed unless the source's service
// account is tcp-denied.
var extAuthzIP = liveNet + ".9.20"

var extAuthz struct {
	once   sync.Once
	err    error
	mu     sync.Mutex
	checks map[string]int // by checked authority
}

const extAuthzDeniedBody = "denied by ext-authz"

// extAuthzYAML is the Service and its workload.
var extAuthzYAML = `
apiVersion: v1
kind: Service
metadata: {name: ext-authz, namespace: istio-system}
spec:
  selector: {app: ext-authz}
  ports:
  - {name: http, port: 8000}
  - {name: grpc, port: 9000}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: ext-authz, namespace: istio-system}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata:
  name: ext-authz
  namespace: istio-system
  annotations:
    ambient.istio.io/redirection: enabled
spec:
  address: ` + extAuthzIP + `
  serviceAccount: ext-authz
  labels:
    security.istio.io/tlsMode: disabled
    app: ext-authz
`

// extAuthzChecks is how many checks the service made of requests to authority.
func extAuthzChecks(authority string) int {
	extAuthz.mu.Lock()
	defer extAuthz.mu.Unlock()
	return extAuthz.checks[authority]
}

func extAuthzCount(authority string) {
	extAuthz.mu.Lock()
	defer extAuthz.mu.Unlock()
	extAuthz.checks[authority]++
}

// startExtAuthz starts the service once for the run: its processes end with the test binary.
func startExtAuthz(t *testing.T) {
	t.Helper()
	extAuthz.once.Do(func() { extAuthz.err = runExtAuthz() })
	if extAuthz.err != nil {
		t.Fatal(extAuthz.err)
	}
}

func runExtAuthz() error {
	extAuthz.checks = map[string]int{}
	hl, err := net.Listen("tcp", net.JoinHostPort(extAuthzIP, "8000"))
	if err != nil {
		return err
	}
	go http.Serve(hl, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		extAuthzCount(r.Host)
		if r.Header.Get("x-ext-authz") == "allow" {
			w.Header().Set("x-ext-authz-check-result", "allowed")
			return
		}
		w.Header().Set("x-ext-authz-check-result", "denied")
		w.WriteHeader(http.StatusForbidden)
		io.WriteString(w, extAuthzDeniedBody)
	}))
	gl, err := net.Listen("tcp", net.JoinHostPort(extAuthzIP, "9000"))
	if err != nil {
		return err
	}
	srv := grpc.NewServer(grpc.ForceServerCodec(rawCodec{}), grpc.UnknownServiceHandler(func(_ any, ss grpc.ServerStream) error {
		method, _ := grpc.MethodFromServerStream(ss)
		if method != "/envoy.service.auth.v3.Authorization/Check" {
			return fmt.Errorf("unexpected method %s", method)
		}
		var msg []byte
		if err := ss.RecvMsg(&msg); err != nil {
			return err
		}
		headers := checkHeaders(msg)
		if _, ok := headers[":authority"]; !ok {
			// A connection's check (envoy.filters.network.ext_authz): by the source's identity.
			principal := string(field(field(field(msg, 1)[0], 1)[0], 4)[0])
			extAuthzCount("tcp " + principal)
			resp := checkResponse(!strings.HasSuffix(principal, "/sa/tcp-denied"))
			return ss.SendMsg(&resp)
		}
		extAuthzCount(headers[":authority"])
		resp := checkResponse(headers["x-ext-authz"] == "allow")
		return ss.SendMsg(&resp)
	}))
	go srv.Serve(gl)
	// The ztunnel stand-in, for when istiod reaches the workload over HBONE.
	out, err := exec.Command(env.waypoint, "certs", "--out", env.meshCA, "istio-system/ext-authz").CombinedOutput()
	if err != nil {
		return fmt.Errorf("waypoint certs: %v: %s", err, out)
	}
	cmd := exec.Command(env.hbone, "serve", "--listen", net.JoinHostPort(extAuthzIP, "15008"),
		"--cert-dir", env.meshCA+"/istio-system/ext-authz")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return err
	}
	go cmd.Wait()
	return nil
}

// checkHeaders reads attributes.request.http.headers of an envoy.service.auth.v3.CheckRequest.
func checkHeaders(msg []byte) map[string]string {
	h := map[string]string{}
	// CheckRequest.attributes (1) > AttributeContext.request (4) > Request.http (2) >
	// HttpRequest.headers (3, map entries of key 1 and value 2).
	b := field(field(field(msg, 1)[0], 4)[0], 2)[0]
	for _, e := range field(b, 3) {
		h[string(field(e, 1)[0])] = string(field(e, 2)[0])
	}
	return h
}

// field returns the values of the bytes field n of a message (one empty value if none).
func field(b []byte, n protowire.Number) [][]byte {
	var out [][]byte
	for len(b) > 0 {
		num, typ, l := protowire.ConsumeTag(b)
		if l < 0 {
			break
		}
		b = b[l:]
		if typ == protowire.BytesType {
			v, l := protowire.ConsumeBytes(b)
			if l < 0 {
				break
			}
			if num == n {
				out = append(out, v)
			}
			b = b[l:]
			continue
		}
		l = protowire.ConsumeFieldValue(num, typ, b)
		if l < 0 {
			break
		}
		b = b[l:]
	}
	if len(out) == 0 {
		out = [][]byte{nil}
	}
	return out
}

// checkResponse is an envoy.service.auth.v3.CheckResponse: OK with the header
// x-ext-authz-check-result: allowed for upstream, or PERMISSION_DENIED with a 403, that header
// (denied) and a body.
func checkResponse(allow bool) []byte {
	msg := func(fields ...[]byte) []byte { return bytes.Join(fields, nil) }
	bytesField := func(n protowire.Number, v []byte) []byte {
		return protowire.AppendBytes(protowire.AppendTag(nil, n, protowire.BytesType), v)
	}
	varintField := func(n protowire.Number, v uint64) []byte {
		return protowire.AppendVarint(protowire.AppendTag(nil, n, protowire.VarintType), v)
	}
	// HeaderValueOption.header (1) = HeaderValue{key 1, value 2}.
	header := func(v string) []byte {
		return bytesField(1, msg(bytesField(1, []byte("x-ext-authz-check-result")), bytesField(2, []byte(v))))
	}
	if allow {
		// status (1) empty: OK; ok_response (3) with headers (2).
		return msg(bytesField(1, nil), bytesField(3, bytesField(2, header("allowed"))))
	}
	// status code 7; denied_response (2): status (1) {code 403}, headers (2), body (3).
	return msg(bytesField(1, varintField(1, 7)),
		bytesField(2, msg(bytesField(1, varintField(1, 403)), bytesField(2, header("denied")), bytesField(3, []byte(extAuthzDeniedBody)))))
}

// checkExtAuthz is the check of the CUSTOM cases: under /ext/ a request carrying x-ext-authz:
// allow passes (with the gRPC service's header upstream when grpc), one without it is refused
// by the service (403, its header and body); outside /ext/ no check is made.
func checkExtAuthz(t *testing.T, w *world, b *base, grpc bool) {
	startExtAuthz(t)
	allow := http.Header{"X-Ext-Authz": {"allow"}}
	w.eventually(30*time.Second, "a request allowed by ext-authz", func() error {
		code, _, err := w.call("productpage", "GET", b.url("/ext/ready"), allow)
		if err != nil || code != 200 {
			return fmt.Errorf("%d %v", code, err)
		}
		return nil
	})
	authority := b.vip + ":9080"
	before := extAuthzChecks(authority)
	code, r, err := w.call("productpage", "GET", b.url("/ext/allowed"), allow)
	if err != nil || code != 200 {
		t.Errorf("allowed: %d %v", code, err)
	}
	if grpc && r.Headers.Get("x-ext-authz-check-result") != "allowed" {
		t.Errorf("the service's header did not reach upstream: %v", r.Headers)
	}
	req, _ := http.NewRequest("GET", b.url("/ext/denied"), nil)
	resp, err := w.source("productpage").HTTP().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 403 || string(body) != extAuthzDeniedBody || resp.Header.Get("x-ext-authz-check-result") != "denied" {
		t.Errorf("denied: %d %q %v, want the service's 403", resp.StatusCode, body, resp.Header)
	}
	if code, _, err := w.call("productpage", "GET", b.url("/other"), nil); err != nil || code != 200 {
		t.Errorf("outside /ext/: %d %v", code, err)
	}
	if n := extAuthzChecks(authority) - before; n != 2 {
		t.Errorf("%d checks, want 2 (the /ext/ requests only)", n)
	}
	if n := w.metric("envoy_http_ext_authz_denied"); n < 1 {
		t.Errorf("envoy_http_ext_authz_denied %v", n)
	}
	if grpc {
		// istiod checks TCP connections too (the CUSTOM rule's paths do not apply to TCP).
		secTCP(t, w, "productpage", b.vip+":9300", []*pod{b.v1, b.v2}, true)
		secTCP(t, w, "tcp-denied", b.vip+":9300", []*pod{b.v1, b.v2}, false)
		if n := extAuthzChecks("tcp spiffe://cluster.local/ns/" + w.ns + "/sa/tcp-denied"); n < 1 {
			t.Errorf("%d checks of tcp-denied's connection", n)
		}
	}
}
