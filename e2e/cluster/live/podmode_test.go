package live

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestPodModeUnderIstiod is mode A of issue 14, the drop-in by image swap: the container
// istio-proxy of the Deployment istiod renders for the Gateway of class istio-waypoint, run
// as the kubelet would run it with our binary as its image (named by the Gateway's annotation
// sidecar.istio.io/proxyImage, which istiod renders in): the argv and env read from that
// Deployment (the downward API's values filled in, $(VAR) in the args expanded), its volumes
// materialised under a relocated root (the token from the TokenRequest API, the root
// certificate from the ConfigMap istio-ca-root-cert istiod writes, the pod's labels and
// annotations). Readiness on 15021 goes from 503 to 200; traffic from the hbone source to a
// Service with istio.io/use-waypoint flows through it under an AuthorizationPolicy; the
// metrics are on 15020 and 15090; SIGTERM turns readiness 503 at once and the process exits
// within the pod's grace period, the requests in flight answered.
//
// Two things differ from a pod, both for loopback: istiod's Service name in CA_ADDR and
// PROXY_CONFIG's discoveryAddress is replaced by istiod's loopback address (with ISTIOD_SAN
// naming the Service, as Istio's agent takes it on a VM), and WAYPOINT_BIND_INSTANCE_IP binds
// the listeners to the pod's IP (WAYPOINT_POD_ROOT relocates its files).
func TestPodModeUnderIstiod(t *testing.T) {
	w := newWorldNoWaypoint(t, 4, "podmode", nil)
	// The image swap: the Gateway's annotation names our image (one with a "/"), and istiod
	// renders it into the container istio-proxy.
	const image = "localhost/gowaypoint/waypoint:dev"
	w.apply(`
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: waypoint
  namespace: {{NS}}
  labels:
    istio.io/waypoint-for: service
  annotations:
    sidecar.istio.io/proxyImage: ` + image + `
spec:
  gatewayClassName: istio-waypoint
  listeners:
  - name: mesh
    port: 15008
    protocol: HBONE
`)
	w.eventually(time.Minute, "istiod renders the Deployment with the annotation's image", func() error {
		d, err := env.cluster.Client.AppsV1().Deployments(w.ns).Get(context.Background(), w.gateway, metav1.GetOptions{})
		if err != nil {
			return err
		}
		for _, c := range d.Spec.Template.Spec.Containers {
			if c.Name == "istio-proxy" && c.Image == image {
				return nil
			}
		}
		return fmt.Errorf("containers %v", d.Spec.Template.Spec.Containers)
	})
	p := w.startPodWaypoint()

	// Readiness: 503 (or not yet listening) first, then 200.
	ready := "http://" + net.JoinHostPort(w.waypointIP, "15021") + "/healthz/ready"
	var seen []int
	deadline := time.Now().Add(time.Minute)
	for {
		code := statusOf(ready)
		if len(seen) == 0 || seen[len(seen)-1] != code {
			seen = append(seen, code)
		}
		if code == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("readiness never 200: %v\n%s", seen, tail(p.log, 40))
		}
		time.Sleep(2 * time.Millisecond)
	}
	if !containsInt(seen, 503) {
		t.Errorf("readiness went %v: want 503 before 200", seen)
	}
	t.Logf("readiness on 15021: %v", seen)

	// Traffic through it, under a policy.
	w.workload("reviews-v1", "bookinfo-reviews", map[string]string{"app": "reviews"}, 9080)
	w.apply(reviewsViewers("waypoint"))
	url := "http://" + w.serviceVIP("reviews") + ":9080/reviews/0"
	w.viewersOnly(url, "the pod-mode waypoint")
	w.synced()

	t.Run("node", func(t *testing.T) {
		s, ok, err := env.cluster.ProxySync(context.Background(), w.proxyID())
		if err != nil || !ok {
			t.Fatalf("istiod does not see the pod %s: %v %v", w.proxyID(), ok, err)
		}
		if s.IstioVersion == "" {
			t.Errorf("istiod sees no ISTIO_VERSION from the waypoint")
		}
	})

	t.Run("metrics", func(t *testing.T) {
		for _, port := range []string{"15020", "15090"} {
			body, err := w.get("http://" + net.JoinHostPort(w.waypointIP, port) + "/stats/prometheus")
			if err != nil {
				t.Fatalf("%s: %v", port, err)
			}
			if !strings.Contains(body, "istio_requests_total{") || !strings.Contains(body, `response_code="200"`) {
				t.Errorf("%s/stats/prometheus has no istio_requests_total of the 200s", port)
			}
		}
	})

	t.Run("sigterm-drains", func(t *testing.T) {
		// On SIGTERM readiness is 503 at once; for terminationDrainDuration (2 s here) the
		// waypoint serves on, new requests too, as Envoy keeps its listeners open while the
		// pod's clients learn it is leaving; then it drains: the requests still in flight are
		// answered, and it exits 0 within the pod's 30 s grace period.
		const inFlight = 6
		var wg sync.WaitGroup
		var failed atomic.Int64
		var firstFailure atomic.Value
		fail := func(what string, code int, err error) {
			failed.Add(1)
			firstFailure.CompareAndSwap(nil, fmt.Sprintf("%s: %d %v", what, code, err))
		}
		started := make(chan struct{}, inFlight)
		for i := 0; i < inFlight; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				started <- struct{}{}
				// Answered 2.7 s after SIGTERM: in the drain, after the 2 s of serving on.
				if code, _, err := w.call("productpage", "GET", url, http.Header{"x-echo-delay": {"3s"}}); err != nil || code != 200 {
					fail("in flight", code, err)
				}
			}()
		}
		for i := 0; i < inFlight; i++ {
			<-started
		}
		time.Sleep(300 * time.Millisecond) // the requests reach the echo
		term := time.Now()
		if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		for code := statusOf(ready); code != 503; code = statusOf(ready) {
			if time.Since(term) > 200*time.Millisecond {
				t.Fatalf("readiness %d 200 ms after SIGTERM, want 503", code)
			}
			time.Sleep(2 * time.Millisecond)
		}
		t.Logf("readiness 503 %v after SIGTERM", time.Since(term).Round(time.Millisecond))
		// A client that has not heard yet keeps sending for 1.5 s.
		var sent atomic.Int64
		for i := 0; i < 2; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for time.Since(term) < 1500*time.Millisecond {
					sent.Add(1)
					if code, _, err := w.call("productpage", "GET", url, nil); err != nil || code != 200 {
						fail("after SIGTERM", code, err)
					}
				}
			}()
		}
		wg.Wait()
		if n := failed.Load(); n != 0 {
			t.Errorf("%d of %d requests failed across SIGTERM, the first: %v", n, inFlight+int(sent.Load()), firstFailure.Load())
		}
		t.Logf("%d requests sent after SIGTERM, %d in flight across it", sent.Load(), inFlight)
		select {
		case <-p.done:
			took := time.Since(term)
			t.Logf("exited %v after SIGTERM: %v", took.Round(time.Millisecond), p.cmd.ProcessState)
			if !p.cmd.ProcessState.Success() {
				t.Errorf("exit status %v, want 0\n%s", p.cmd.ProcessState, tail(p.log, 20))
			}
			if took < 2*time.Second {
				t.Errorf("exited %v after SIGTERM, before terminationDrainDuration (2 s) of serving on", took)
			}
		case <-time.After(6 * time.Second):
			t.Fatalf("still running 6 s after SIGTERM (2 s of serving on, then at most 2 s of drain)\n%s", tail(p.log, 20))
		}
	})
}

// podProcess is the waypoint running as the pod's container.
type podProcess struct {
	cmd  *exec.Cmd
	done chan struct{}
	log  string
}

// startPodWaypoint runs the container istio-proxy of the Deployment istiod rendered for the
// world's Gateway, with the waypoint binary as its image.
func (w *world) startPodWaypoint() *podProcess {
	w.t.Helper()
	ctx := context.Background()
	var dep struct {
		spec podSpecOf
	}
	w.eventually(time.Minute, "istiod renders the waypoint's Deployment", func() error {
		d, err := env.cluster.Client.AppsV1().Deployments(w.ns).Get(ctx, w.gateway, metav1.GetOptions{})
		if err != nil {
			return err
		}
		dep.spec = podSpecOf{labels: d.Spec.Template.Labels, annotations: d.Spec.Template.Annotations,
			sa: d.Spec.Template.Spec.ServiceAccountName, containers: d.Spec.Template.Spec.Containers, volumes: d.Spec.Template.Spec.Volumes}
		return nil
	})
	var c *corev1.Container
	for i := range dep.spec.containers {
		if dep.spec.containers[i].Name == "istio-proxy" {
			c = &dep.spec.containers[i]
		}
	}
	if c == nil {
		w.t.Fatalf("the Deployment has no container istio-proxy")
	}
	w.t.Logf("the Deployment's istio-proxy: args %q", c.Args)

	// The volumes, under a root of their own.
	root := filepath.Join(w.dir, "podroot")
	var tok string
	w.eventually(time.Minute, "a token for the waypoint's ServiceAccount", func() (err error) {
		tok, err = env.cluster.ServiceAccountToken(ctx, w.ns, dep.spec.sa, "istio-ca")
		return err
	})
	var rootCert string
	w.eventually(time.Minute, "istiod writes the ConfigMap istio-ca-root-cert", func() error {
		cm, err := env.cluster.Client.CoreV1().ConfigMaps(w.ns).Get(ctx, "istio-ca-root-cert", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if rootCert = cm.Data["root-cert.pem"]; rootCert == "" {
			return fmt.Errorf("no root-cert.pem in %v", cm.Data)
		}
		return nil
	})
	mounts := map[string]string{} // volume name -> mount path
	for _, m := range c.VolumeMounts {
		mounts[m.Name] = m.MountPath
	}
	write := func(volume, file, content string) {
		dir, ok := mounts[volume]
		if !ok {
			w.t.Fatalf("istio-proxy mounts no volume %s (%v)", volume, mounts)
		}
		p := filepath.Join(root, dir, file)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			w.t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			w.t.Fatal(err)
		}
	}
	write("istio-token", "istio-token", tok)
	write("istiod-ca-cert", "root-cert.pem", rootCert)
	labels := map[string]string{"pod-template-hash": "5d8f7c6b9"}
	for k, v := range dep.spec.labels {
		labels[k] = v
	}
	write("istio-podinfo", "labels", downwardFile(labels))
	write("istio-podinfo", "annotations", downwardFile(dep.spec.annotations))

	// The environment, as the kubelet fills it in.
	field := map[string]string{
		"metadata.name": w.pod, "metadata.namespace": w.ns, "status.podIP": w.waypointIP,
		"spec.serviceAccountName": dep.spec.sa, "spec.nodeName": "node-1", "status.hostIP": w.net + ".1",
	}
	resource := map[string]string{"limits.cpu": "2", "limits.memory": "1073741824"}
	vars := map[string]string{}
	var environ []string
	for _, e := range c.Env {
		v := e.Value
		switch {
		case e.ValueFrom != nil && e.ValueFrom.FieldRef != nil:
			var ok bool
			if v, ok = field[e.ValueFrom.FieldRef.FieldPath]; !ok {
				w.t.Fatalf("env %s: fieldRef %s unknown to the test", e.Name, e.ValueFrom.FieldRef.FieldPath)
			}
		case e.ValueFrom != nil && e.ValueFrom.ResourceFieldRef != nil:
			v = resource[e.ValueFrom.ResourceFieldRef.Resource]
		case e.ValueFrom != nil:
			w.t.Fatalf("env %s: %v unknown to the test", e.Name, e.ValueFrom)
		}
		// The loopback stand-in for istiod's Service name.
		v = strings.ReplaceAll(v, "istiod.istio-system.svc:15012", env.cluster.IstiodXDS())
		vars[e.Name] = v
		environ = append(environ, e.Name+"="+v)
	}
	// istiod renders the ProxyConfig's fields that differ from the mesh's defaults: here none
	// ({}), so the discovery address is the default istiod.istio-system.svc:15012; the
	// loopback's is put in, and a drain of 2 s, as a mesh config's defaultConfig would.
	pc := map[string]any{}
	if err := json.Unmarshal([]byte(vars["PROXY_CONFIG"]), &pc); err != nil {
		w.t.Fatalf("PROXY_CONFIG: %v", err)
	}
	if pc["discoveryAddress"] == nil {
		pc["discoveryAddress"] = env.cluster.IstiodXDS()
	}
	if pc["terminationDrainDuration"] == nil {
		pc["terminationDrainDuration"] = "2s" // the test's; the mesh's default is 5 s
	}
	b, _ := json.Marshal(pc)
	for i, kv := range environ {
		if strings.HasPrefix(kv, "PROXY_CONFIG=") {
			environ[i] = "PROXY_CONFIG=" + string(b)
		}
	}
	w.t.Logf("PROXY_CONFIG %s, CA_ADDR %s", b, vars["CA_ADDR"])
	environ = append(environ, "ISTIOD_SAN=istiod.istio-system.svc", "WAYPOINT_POD_ROOT="+root, "WAYPOINT_BIND_INSTANCE_IP=true",
		"WAYPOINT_DNS_RESOLVER="+w.dnsAddr())
	// The kubelet expands $(VAR) of the container's variables in the args.
	args := make([]string, len(c.Args))
	for i, a := range c.Args {
		for k, v := range vars {
			a = strings.ReplaceAll(a, "$("+k+")", v)
		}
		args[i] = a
	}
	w.admin = "http://" + net.JoinHostPort(w.waypointIP, "15000")

	logPath := filepath.Join(w.dir, "waypoint.log")
	log, err := os.Create(logPath)
	if err != nil {
		w.t.Fatal(err)
	}
	cmd := exec.Command(env.waypoint, args...)
	cmd.Stdout, cmd.Stderr = log, log
	// Only the container's environment (and PATH, HOME): nothing of the test's leaks in.
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}, environ...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		w.t.Fatal(err)
	}
	p := &podProcess{cmd: cmd, done: make(chan struct{}), log: logPath}
	go func() { cmd.Wait(); log.Close(); close(p.done) }()
	w.t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-p.done
		}
		if w.t.Failed() {
			w.t.Logf("--- waypoint (%s), last lines:\n%s", logPath, tail(logPath, 40))
		}
	})
	return p
}

type podSpecOf struct {
	labels, annotations map[string]string
	sa                  string
	containers          []corev1.Container
	volumes             []corev1.Volume
}

// downwardFile is a downward API file of labels or annotations: key="value" per line, sorted.
func downwardFile(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%s=%q\n", k, m[k])
	}
	return b.String()
}

// statusOf is the status of a GET of url, 0 when it cannot be fetched.
func statusOf(url string) int {
	c := http.Client{Timeout: time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

func containsInt(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// TestPodModeClassDefaults is the other switch of mode A: every waypoint's image from one
// ConfigMap of class defaults in istio-system, which istiod merges into the Deployment it
// renders for each Gateway of class istio-waypoint.
func TestPodModeClassDefaults(t *testing.T) {
	const image = "localhost/gowaypoint/waypoint:class"
	cm := `
apiVersion: v1
kind: ConfigMap
metadata:
  name: waypoint-image
  namespace: istio-system
  labels:
    gateway.istio.io/defaults-for-class: istio-waypoint
data:
  deployment: |
    spec:
      template:
        spec:
          containers:
          - name: istio-proxy
            image: ` + image + `
`
	ctx := context.Background()
	if err := env.cluster.Apply(ctx, cm); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { env.cluster.Delete(context.Background(), cm) })
	w := newWorldNoWaypoint(t, 5, "podmode-class", nil)
	w.eventually(time.Minute, "istiod renders the Deployment with the class defaults' image", func() error {
		d, err := env.cluster.Client.AppsV1().Deployments(w.ns).Get(ctx, w.gateway, metav1.GetOptions{})
		if err != nil {
			return err
		}
		for _, c := range d.Spec.Template.Spec.Containers {
			if c.Name == "istio-proxy" && c.Image == image && len(c.Args) > 2 && c.Args[0] == "proxy" {
				return nil
			}
		}
		return fmt.Errorf("containers %v", d.Spec.Template.Spec.Containers)
	})
}

// reviewsViewers is Service reviews (http 9080, selecting app=reviews) using waypoint, and an
// AuthorizationPolicy on it that allows only the namespace's productpage.
func reviewsViewers(waypoint string) string {
	return `
apiVersion: v1
kind: Service
metadata:
  name: reviews
  namespace: {{NS}}
  labels:
    istio.io/use-waypoint: ` + waypoint + `
spec:
  selector: {app: reviews}
  ports:
  - name: http
    port: 9080
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: reviews-viewers
  namespace: {{NS}}
spec:
  targetRefs:
  - kind: Service
    group: ""
    name: reviews
  action: ALLOW
  rules:
  - from:
    - source:
        principals: ["cluster.local/ns/{{NS}}/sa/productpage"]
`
}

// viewersOnly waits until url (on reviews, under reviewsViewers) answers productpage 200 from
// reviews-v1 and ratings 403 through the waypoint named in what.
func (w *world) viewersOnly(url, what string) {
	w.t.Helper()
	w.eventually(30*time.Second, "traffic through "+what+" under the policy", func() error {
		if code, r, err := w.call("productpage", "GET", url, nil); err != nil || code != 200 || r.Pod != "reviews-v1" {
			return fmt.Errorf("productpage GET: %d %q %v", code, r.Pod, err)
		}
		if code, _, err := w.call("ratings", "GET", url, nil); err != nil || code != 403 {
			return fmt.Errorf("ratings GET: %d %v", code, err)
		}
		return nil
	})
}
