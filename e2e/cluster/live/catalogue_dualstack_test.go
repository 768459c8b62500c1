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

// workloadAt is world.workload at address ip (::1 for the IPv6 pod).
func (w *world) workloadAt(name, sa, ip string, labels map[string]string, ports ...int) *pod {
	w.t.Helper()
	p := &pod{name: name, ip: ip, sa: sa}
	var lb strings.Builder
	for k, v := range labels {
		fmt.Fprintf(&lb, "\n    %s: %q", k, v)
	}
	w.apply(fmt.Sprintf(`
apiVersion: v1
kind: ServiceAccount
metadata:
  name: %[2]s
  namespace: {{NS}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata:
  name: %[1]s
  namespace: {{NS}}
  annotations:
    ambient.istio.io/redirection: enabled
spec:
  address: %[3]q
  serviceAccount: %[2]s
  labels:
    security.istio.io/tlsMode: disabled%[4]s
`, name, sa, ip, lb.String()))
	w.start("ztunnel-"+name, nil, env.hbone, "serve", "--listen", net.JoinHostPort(ip, "15008"), "--cert-dir", w.identity(sa))
	for _, port := range ports {
		w.echo(p, port)
	}
	return p
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
	)
}
