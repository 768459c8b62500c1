package live

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Dual stack (issue 13). The test machines have one IPv6 address, ::1, and use no other: an
// IPv6 "pod" is ::1, with its ztunnel stand-in on [::1]:15008, so one at a time.
// ipv6Loopback serialises the worlds that take ::1 (held from the start of the first process
// on ::1 until the world's processes are gone).
var ipv6Loopback sync.Mutex

// lockIPv6 takes ::1 for the rest of the test.
func (w *world) lockIPv6() {
	ipv6Loopback.Lock()
	w.t.Cleanup(ipv6Loopback.Unlock) // after the processes started later are stopped
}

// dualStackWaypoints are the namespaces whose waypoint is a dual-stack pod: INSTANCE_IPS
// 127.N.K.5 and ::1, HBONE served on both. Set in init, read when the world starts.
var dualStackWaypoints = map[string]bool{"cat-dualstack-waypoint": true}

// waypointAddrs are the waypoint's --hbone-addr and INSTANCE_IPS.
func (w *world) waypointAddrs() (hbone, podIPs string) {
	hbone, podIPs = net.JoinHostPort(w.waypointIP, "15008"), w.waypointIP
	if dualStackWaypoints[w.ns] {
		w.lockIPv6()
		hbone += ",[::1]:15008"
		podIPs += ",::1"
	}
	return hbone, podIPs
}

// connectTerminateAddrs returns the addresses of the waypoint's connect_terminate listener
// in its config dump: address, then additional_addresses.
func connectTerminateAddrs(t *testing.T, w *world) []string {
	t.Helper()
	dump, err := w.get(w.admin + "/config_dump")
	if err != nil {
		t.Fatal(err)
	}
	type sockAddr struct {
		SocketAddress struct {
			Address string `json:"address"`
			Port    int    `json:"port_value"`
		} `json:"socket_address"`
	}
	var d struct {
		Configs []json.RawMessage `json:"configs"`
	}
	if err := json.Unmarshal([]byte(dump), &d); err != nil {
		t.Fatalf("config_dump: %v", err)
	}
	for _, c := range d.Configs {
		var ls struct {
			DynamicListeners []struct {
				ActiveState struct {
					Listener struct {
						Name                string                       `json:"name"`
						Address             sockAddr                     `json:"address"`
						AdditionalAddresses []struct{ Address sockAddr } `json:"additional_addresses"`
					} `json:"listener"`
				} `json:"active_state"`
			} `json:"dynamic_listeners"`
		}
		if json.Unmarshal(c, &ls) != nil {
			continue
		}
		for _, dl := range ls.DynamicListeners {
			l := dl.ActiveState.Listener
			if l.Name != "connect_terminate" {
				continue
			}
			str := func(a sockAddr) string {
				return net.JoinHostPort(a.SocketAddress.Address, fmt.Sprint(a.SocketAddress.Port))
			}
			out := []string{str(l.Address)}
			for _, aa := range l.AdditionalAddresses {
				out = append(out, str(aa.Address))
			}
			return out
		}
	}
	t.Fatalf("no connect_terminate listener in the config dump:\n%.2000s", dump)
	return nil
}

// getVia sends GET url through the waypoint at waypoint (ip:15008) as productpage, on a
// fresh HBONE connection, and returns the status and the pod that answered.
func getVia(w *world, waypoint, url string) (int, string, error) {
	s, err := newSource(w.identity("productpage"), waypoint)
	if err != nil {
		return 0, "", err
	}
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		return 0, "", err
	}
	resp, err := s.FreshHTTP().Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, resp.Header.Get("x-pod"), nil
}

// dualStackPod makes a Pod (not in the mesh) with the addresses v4 and ::1, Running and Ready
// as a kubelet would report it, and an echo on port on each address; it returns the two
// echoes' pods (named NAME-v4 and NAME-v6) and the IPv4 listener, which the test may close.
func (w *world) dualStackPod(name, v4 string, labels map[string]string, port int) (p4, p6 *pod, ln4 net.Listener) {
	w.t.Helper()
	var lb strings.Builder
	for k, v := range labels {
		fmt.Fprintf(&lb, "\n    %s: %q", k, v)
	}
	w.apply(fmt.Sprintf(`
apiVersion: v1
kind: ServiceAccount
metadata:
  name: %[1]s
  namespace: {{NS}}
---
apiVersion: v1
kind: Pod
metadata:
  name: %[1]s
  namespace: {{NS}}
  labels:
    istio.io/dataplane-mode: none%[2]s
spec:
  serviceAccountName: %[1]s
  automountServiceAccountToken: false
  containers: [{name: app, image: echo}]
`, name, lb.String()))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pods := env.cluster.Client.CoreV1().Pods(w.ns)
	kp, err := pods.Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		w.t.Fatal(err)
	}
	kp.Status = corev1.PodStatus{Phase: corev1.PodRunning, PodIP: v4, PodIPs: []corev1.PodIP{{IP: v4}, {IP: "::1"}},
		Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}}
	if _, err := pods.UpdateStatus(ctx, kp, metav1.UpdateOptions{}); err != nil {
		w.t.Fatal(err)
	}
	p4, p6 = &pod{name: name + "-v4", ip: v4}, &pod{name: name + "-v6", ip: "::1"}
	l, err := net.Listen("tcp", net.JoinHostPort(v4, fmt.Sprint(port)))
	if err != nil {
		w.t.Fatal(err)
	}
	tl := &refusingListener{Listener: l}
	w.serveEcho(p4, tl)
	w.echo(p6, port)
	return p4, p6, tl
}

// refusingListener is a listener whose Close also closes the connections it accepted, so
// that its address refuses from then on, pooled connections included.
type refusingListener struct {
	net.Listener
	mu    sync.Mutex
	conns []net.Conn
}

func (l *refusingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.mu.Lock()
		l.conns = append(l.conns, c)
		l.mu.Unlock()
	}
	return c, err
}

func (l *refusingListener) Close() error {
	err := l.Listener.Close()
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, c := range l.conns {
		c.Close()
	}
	return err
}

// endpointAddrs returns, for each endpoint of the waypoint's clusters whose name contains
// cluster, its address and additional addresses, from the config dump.
func endpointAddrs(t *testing.T, w *world, cluster string) [][]string {
	t.Helper()
	dump, err := w.get(w.admin + "/config_dump?include_eds")
	if err != nil {
		t.Fatal(err)
	}
	type sockAddr struct {
		SocketAddress struct {
			Address string `json:"address"`
			Port    int    `json:"port_value"`
		} `json:"socket_address"`
	}
	str := func(a sockAddr) string {
		return net.JoinHostPort(a.SocketAddress.Address, fmt.Sprint(a.SocketAddress.Port))
	}
	var d struct {
		Configs []json.RawMessage `json:"configs"`
	}
	if err := json.Unmarshal([]byte(dump), &d); err != nil {
		t.Fatalf("config_dump: %v", err)
	}
	var out [][]string
	for _, c := range d.Configs {
		var eds struct {
			Dynamic []struct {
				EndpointConfig struct {
					ClusterName string `json:"cluster_name"`
					Endpoints   []struct {
						LbEndpoints []struct {
							Endpoint struct {
								Address             sockAddr                     `json:"address"`
								AdditionalAddresses []struct{ Address sockAddr } `json:"additional_addresses"`
							} `json:"endpoint"`
						} `json:"lb_endpoints"`
					} `json:"endpoints"`
				} `json:"endpoint_config"`
			} `json:"dynamic_endpoint_configs"`
		}
		if json.Unmarshal(c, &eds) != nil {
			continue
		}
		for _, e := range eds.Dynamic {
			if !strings.Contains(e.EndpointConfig.ClusterName, cluster) {
				continue
			}
			for _, le := range e.EndpointConfig.Endpoints {
				for _, lbe := range le.LbEndpoints {
					addrs := []string{str(lbe.Endpoint.Address)}
					for _, aa := range lbe.Endpoint.AdditionalAddresses {
						addrs = append(addrs, str(aa.Address))
					}
					out = append(out, addrs)
				}
			}
		}
	}
	return out
}

func init() {
	catalogue = append(catalogue,
		compatCase{
			name: "ipv6-workload",
			resources: "Service reviews6 (http 9080, `istio.io/use-waypoint`) over WorkloadEntry reviews-v6 at `::1` " +
				"(its ztunnel stand-in on `[::1]:15008`)",
			checks: "a request to reviews6 through the waypoint reaches the IPv6 workload: the waypoint dials `[::1]:15008` " +
				"with `:authority [::1]:9080` (the stand-in serves only `::1`, and the echo listens only there)",
			setup: func(t *testing.T, w *world) {
				w.lockIPv6()
				w.workloadAt("reviews-v6", "bookinfo-reviews", "::1", map[string]string{"app": "reviews6"}, 9080)
			},
			yaml: `
apiVersion: v1
kind: Service
metadata:
  name: reviews6
  namespace: {{NS}}
  labels:
    istio.io/use-waypoint: waypoint
spec:
  selector: {app: reviews6}
  ports:
  - {name: http, port: 9080}
`,
			check: func(t *testing.T, w *world, b *base) {
				url := "http://" + w.serviceVIP("reviews6") + ":9080/v6"
				w.eventually(30*time.Second, "a request to reviews6 through the waypoint", func() error {
					code, r, err := w.call("productpage", "GET", url, nil)
					if err != nil || code != 200 || r.Pod != "reviews-v6" {
						return fmt.Errorf("%d from %q: %v", code, r.Pod, err)
					}
					return nil
				})
			},
		},
		compatCase{
			name: "dualstack-waypoint",
			resources: "the waypoint a dual-stack pod: INSTANCE_IPS `127.N.K.5,::1`, HBONE on both; " +
				"DestinationRule reviews (subsets, to have a push)",
			checks: "istiod renders connect_terminate on `0.0.0.0:15008` with additional_addresses `[::]:15008` and the waypoint " +
				"ACKs it; requests arriving over IPv4 and over IPv6 (`[::1]:15008`) both reach reviews",
			yaml: subsets,
			check: func(t *testing.T, w *world, b *base) {
				got := connectTerminateAddrs(t, w)
				if len(got) != 2 || got[0] != "0.0.0.0:15008" || got[1] != "[::]:15008" {
					t.Errorf("connect_terminate addresses %v, want [0.0.0.0:15008 [::]:15008]", got)
				}
				for _, wp := range []string{net.JoinHostPort(w.waypointIP, "15008"), "[::1]:15008"} {
					w.eventually(30*time.Second, "a request through the waypoint at "+wp, func() error {
						code, pod, err := getVia(w, wp, b.url("/"))
						if err != nil || code != 200 || !strings.HasPrefix(pod, "reviews-v") {
							return fmt.Errorf("%d from %q: %v", code, pod, err)
						}
						return nil
					})
				}
			},
		},
		compatCase{
			name: "dualstack-endpoint",
			resources: "Pod dual (not in the mesh) Running and Ready with podIPs `127.N.K.30` and `::1`; ServiceEntry dual.example.internal " +
				"(`istio.io/use-waypoint`, 240.0.13.1:9080, workloadSelector app=dual); istiod with `ISTIO_DUAL_STACK=true`",
			checks: "the waypoint's endpoint for the pod is `127.N.K.30:9080` with additional_addresses `[::1]:9080`; requests reach the IPv4 " +
				"address; once it refuses, they reach `[::1]:9080` (happy eyeballs: the primary first, then the additional address)",
			setup: func(t *testing.T, w *world) {
				w.lockIPv6()
				dualPod.p4, dualPod.p6, dualPod.ln4 = w.dualStackPod("dual", w.net+".30", map[string]string{"app": "dual"}, 9080)
			},
			yaml: `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: dual
  namespace: "{{NS}}"
  labels: {istio.io/use-waypoint: waypoint}
spec:
  hosts: [dual.example.internal]
  addresses: [240.0.13.1]
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
  - {number: 9080, name: http, protocol: HTTP}
  workloadSelector:
    labels: {app: dual}
`,
			check: func(t *testing.T, w *world, b *base) {
				p4, p6, ln4 := dualPod.p4, dualPod.p6, dualPod.ln4
				w.eventually(30*time.Second, "the pod's dual-stack endpoint in the waypoint's EDS", func() error {
					eps := endpointAddrs(t, w, "dual.example.internal")
					for _, e := range eps {
						if len(e) == 2 && e[0] == net.JoinHostPort(p4.ip, "9080") && e[1] == "[::1]:9080" {
							return nil
						}
					}
					return fmt.Errorf("endpoints %v", eps)
				})
				get := func() error {
					code, _, err := w.call("productpage", "GET", "http://240.0.13.1:9080/dual", nil)
					if err != nil || code != 200 {
						return fmt.Errorf("%d %v", code, err)
					}
					return nil
				}
				w.eventually(30*time.Second, "a request to the dual-stack pod", get)
				if p4.hits.Load() == 0 || p6.hits.Load() != 0 {
					t.Fatalf("hits: IPv4 %d, IPv6 %d; want the primary (IPv4) only", p4.hits.Load(), p6.hits.Load())
				}
				ln4.Close() // the primary refuses from now on
				w.eventually(10*time.Second, "a request reaching [::1]:9080 with the IPv4 address refusing", func() error {
					if err := get(); err != nil {
						return err
					}
					if p6.hits.Load() == 0 {
						return fmt.Errorf("answered, not from [::1]:9080")
					}
					return nil
				})
			},
		},
	)
}

// dualPod is the dualstack-endpoint case's pod, from its setup to its check.
var dualPod struct {
	p4, p6 *pod
	ln4    net.Listener
}
