package metrics

import (
	"net/netip"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/goleak"

	"github.com/gowaypoint/waypoint/filters"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type fixedDest Destination

func (d fixedDest) Destination(Key) Destination { return Destination(d) }

var reviews = fixedDest{
	Peer:    Peer{Workload: "reviews-v1", Namespace: "default", App: "reviews", Version: "v1", CanonicalService: "reviews", CanonicalRevision: "v1", Cluster: "Kubernetes", Principal: "spiffe://cluster.local/ns/default/sa/reviews"},
	Service: Service{Host: "reviews.mesh.local", Name: "reviews.mesh.local", Namespace: "default"},
}

const baggage = "k8s.cluster.name=Kubernetes,k8s.namespace.name=default,k8s.deployment.name=productpage-v1,service.name=productpage,service.version=v1"

func series(t *testing.T, reg *prometheus.Registry, name string) []*dto.Metric {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()
		}
	}
	return nil
}

func labels(m *dto.Metric) map[string]string {
	l := map[string]string{}
	for _, p := range m.GetLabel() {
		l[p.GetName()] = p.GetValue()
	}
	return l
}

func TestRecordHTTP(t *testing.T) {
	reg := prometheus.NewRegistry()
	r := New(reg, 100)
	k := Key{Version: "v1", Protocol: HTTP, PeerURI: "spiffe://cluster.local/ns/default/sa/productpage", Baggage: baggage,
		Cluster: "reviews", Host: netip.MustParseAddrPort("127.0.60.11:9080"), MutualTLS: true}
	ls := r.LabelSet(k, reviews)
	for range 3 {
		ls.RecordHTTP(200, -1, 0, 3*time.Millisecond, 100, 2000)
	}
	r.LabelSet(k, reviews).RecordHTTP(503, -1, filters.FlagUF, time.Millisecond, 100, 20)
	ms := series(t, reg, "istio_requests_total")
	if len(ms) != 2 {
		t.Fatalf("%d series, want 2", len(ms))
	}
	byCode := map[string]*dto.Metric{}
	for _, m := range ms {
		byCode[labels(m)["response_code"]] = m
	}
	l := labels(byCode["200"])
	want := map[string]string{
		"reporter": "waypoint", "source_workload": "productpage-v1", "source_workload_namespace": "default",
		"source_principal": "spiffe://cluster.local/ns/default/sa/productpage", "source_app": "productpage", "source_version": "v1",
		"source_canonical_service": "productpage", "source_canonical_revision": "v1", "source_cluster": "Kubernetes",
		"destination_workload": "reviews-v1", "destination_workload_namespace": "default", "destination_app": "reviews",
		"destination_version": "v1", "destination_service": "reviews.mesh.local", "destination_service_name": "reviews.mesh.local",
		"destination_service_namespace": "default", "destination_canonical_service": "reviews", "destination_canonical_revision": "v1",
		"destination_cluster": "Kubernetes", "destination_principal": "spiffe://cluster.local/ns/default/sa/reviews",
		"request_protocol": "http", "response_code": "200", "grpc_response_status": "", "response_flags": "-",
		"connection_security_policy": "mutual_tls",
	}
	for n, v := range want {
		if l[n] != v {
			t.Errorf("%s = %q, want %q", n, l[n], v)
		}
	}
	if len(l) != len(want) {
		t.Errorf("%d labels, want %d: %v", len(l), len(want), l)
	}
	if v := byCode["200"].GetCounter().GetValue(); v != 3 {
		t.Errorf("200s: %v, want 3", v)
	}
	if f := labels(byCode["503"])["response_flags"]; f != "UF" {
		t.Errorf("503 flags %q", f)
	}
	h := series(t, reg, "istio_request_duration_milliseconds")
	if len(h) != 2 || len(h[0].GetHistogram().GetBucket()) != len(Buckets) {
		t.Errorf("duration histogram: %d series", len(h))
	}
}

func TestUnknownAndTCP(t *testing.T) {
	reg := prometheus.NewRegistry()
	r := New(reg, 100)
	k := Key{Version: "v1", Protocol: TCP, Cluster: "db"}
	ls := r.LabelSet(k, fixedDest{})
	ls.TCPOpened()
	ls.TCPClosed(10, 20)
	m := series(t, reg, "istio_tcp_sent_bytes_total")
	if len(m) != 1 || m[0].GetCounter().GetValue() != 10 {
		t.Fatalf("sent bytes: %v", m)
	}
	l := labels(m[0])
	for _, n := range []string{"source_workload", "source_principal", "destination_workload", "destination_service"} {
		if l[n] != Unknown {
			t.Errorf("%s = %q, want unknown", n, l[n])
		}
	}
	if l["request_protocol"] != "tcp" || l["connection_security_policy"] != "none" {
		t.Errorf("labels %v", l)
	}
	if m := series(t, reg, "istio_tcp_received_bytes_total"); m[0].GetCounter().GetValue() != 20 {
		t.Error("received bytes")
	}
}

func TestSeriesCap(t *testing.T) {
	reg := prometheus.NewRegistry()
	r := New(reg, 2)
	k := Key{Version: "v1", Cluster: "c"}
	ls := r.LabelSet(k, fixedDest{})
	for code := 200; code < 205; code++ {
		ls.RecordHTTP(code, -1, 0, 0, 0, 0)
	}
	if n := len(series(t, reg, "istio_requests_total")); n != 2 {
		t.Errorf("%d series, want the cap of 2", n)
	}
	if v := series(t, reg, "waypoint_metrics_overflow_total")[0].GetCounter().GetValue(); v != 3 {
		t.Errorf("overflow %v, want 3", v)
	}
}

func TestSourcePeer(t *testing.T) {
	p := SourcePeer("spiffe://cluster.local/ns/shop/sa/cart", "k8s.namespace.name=shop, k8s.statefulset.name=cart-0;p=1,app.name=cart-app,service.version=v9")
	want := Peer{Workload: "cart-0", Namespace: "shop", Principal: "spiffe://cluster.local/ns/shop/sa/cart", App: "cart-app",
		Version: "v9", CanonicalService: Unknown, CanonicalRevision: "v9", Cluster: Unknown}
	if p != want {
		t.Errorf("got %+v\nwant %+v", p, want)
	}
}

func BenchmarkRecordHTTP(b *testing.B) {
	r := New(prometheus.NewRegistry(), 100)
	k := Key{Version: "v1", Protocol: HTTP, PeerURI: "spiffe://cluster.local/ns/default/sa/productpage", Baggage: baggage,
		Cluster: "reviews", Host: netip.MustParseAddrPort("127.0.60.11:9080"), MutualTLS: true}
	res := &reviews // a pointer, as the proxy's resolver is: no boxing
	b.ReportAllocs()
	for range b.N {
		r.LabelSet(k, res).RecordHTTP(200, -1, 0, 3*time.Millisecond, 100, 2000)
	}
}
