package dubboconn

import (
	"context"
	"net/netip"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gowaypoint/waypoint/filters"
	"github.com/gowaypoint/waypoint/protocols/dubbo"
	"github.com/gowaypoint/waypoint/protocols/l7"
	"github.com/gowaypoint/waypoint/telemetry/accesslog"
	"github.com/gowaypoint/waypoint/telemetry/metrics"
	"github.com/gowaypoint/waypoint/xds"
)

// BenchmarkCallTelemetry is what a Dubbo call's telemetry costs once its
// answer is written: the try counted by the Envoy-style cluster counters,
// the standard metrics recorded on the cached label set (metrics), and
// with the listener's two access logs a line each (metrics+accesslog).
// Neither allocates in steady state.
func BenchmarkCallTelemetry(b *testing.B) {
	dir := b.TempDir()
	cfg := strings.ReplaceAll(telemetryConfig, "{{.IstioFormat}}", strings.ReplaceAll(strings.TrimSuffix(accesslog.IstioFormat, "\n"), `"`, `\"`)+`\n`)
	cfg = strings.ReplaceAll(cfg, "{{.Dir}}", dir)
	bs, err := xds.ParseBootstrap([]byte(cfg), "bench.yaml")
	if err != nil {
		b.Fatal(err)
	}
	snap := bs.Snapshot
	full := snap.Listener("dubbo").FilterChains[0].Dubbo
	noLogs := *full
	noLogs.AccessLog = nil
	frame := make([]byte, 160) // a request's frame: only its length is read
	for _, bc := range []struct {
		name string
		d    *xds.DubboProxy
	}{{"metrics", &noLogs}, {"metrics+accesslog", full}} {
		b.Run(bc.name, func(b *testing.B) {
			logs := &accesslog.Sinks{}
			defer logs.Close()
			env := &Env{Metrics: metrics.New(prometheus.NewRegistry(), 100), Logs: logs}
			down := &filters.Downstream{Peer: telConsumer, PeerURI: telConsumer.String(), Baggage: telBaggage,
				RemoteAddr: netip.MustParseAddrPort("127.0.95.1:40000"), Destination: netip.MustParseAddrPort("127.0.95.5:20880")}
			cl := &call{c: &conn{env: env, down: down}, frame: &dubbo.Frame{Raw: frame}, b: &binding{snap: snap, dubbo: bc.d}}
			cl.req.Proto, cl.req.Method, cl.req.Path = l7.Dubbo, "hello", []byte("/com.example.Greeter/hello")
			ureq := filters.UpstreamRequest{Cluster: "tel-greeter", Host: netip.MustParseAddrPort(telPodA)}
			one := func() {
				s := &cl.s
				s.Init(context.Background(), &cl.req, down, cl)
				cl.begin()
				s.Attempts++
				s.UpstreamCluster = ureq.Cluster
				s.Observer.StartAttempt(s, &ureq)
				cl.resp.Reset()
				cl.resp.Proto, cl.resp.Status = l7.Dubbo, 200
				cl.resp.Header.AddBytes(nameStatus, statusBytes[20])
				s.Observer.EndAttempt(s, &ureq, &cl.resp, nil)
				s.UpstreamHost = ureq.Host
				s.Response = &cl.resp
				cl.tel.status, cl.tel.bytesOut = 20, 21
				cl.finish()
				s.End()
			}
			for range 3000 { // the label set, its series, and the log buffers grown past a few flushes
				one()
			}
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				one()
			}
		})
	}
}
