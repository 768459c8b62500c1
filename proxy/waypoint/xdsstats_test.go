package waypoint

import (
	"bufio"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/gowaypoint/waypoint/xds/xdstest"
)

// xdsStatFamilies are the families of the xDS client's stats.
var xdsStatFamilies = []string{"envoy_cluster_manager_cds_", "envoy_listener_manager_lds_", "envoy_control_plane_connected_state",
	"waypoint_xds_update_rejected_total"}

// xdsStats scrapes the xDS client's stats from the admin's
// /stats/prometheus: name (with type_url for the waypoint's family) to
// value.
func xdsStats(t *testing.T, hc *http.Client) map[string]float64 {
	t.Helper()
	resp, err := hc.Get("http://" + adminAddr + "/stats/prometheus")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var text strings.Builder
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		l := sc.Text()
		name := strings.TrimPrefix(strings.TrimPrefix(l, "# HELP "), "# TYPE ")
		for _, p := range xdsStatFamilies {
			if strings.HasPrefix(name, p) {
				text.WriteString(l + "\n")
				break
			}
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(text.String()))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for name, f := range fams {
		for _, m := range f.GetMetric() {
			key := name
			for _, l := range m.GetLabel() {
				key += "/" + l.GetValue()
			}
			out[key] = m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	return out
}

// A push the waypoint refuses is counted at the admin's /stats/prometheus
// under Envoy's names (envoy_cluster_manager_cds_update_rejected for a
// cluster), while the config in force keeps serving.
func TestRefusedPushCounted(t *testing.T) {
	e := startFixture(t, withDirectChains(t, xdstest.Reviews(t)), false)
	hc := &http.Client{Timeout: 10 * time.Second}
	before := xdsStats(t, hc)
	const clusterType = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
	if before["envoy_control_plane_connected_state"] != 1 || before["envoy_cluster_manager_cds_update_success"] < 1 ||
		before["envoy_listener_manager_lds_update_success"] < 1 {
		t.Fatalf("with the first config applied: %v", before)
	}

	bad := withDirectChains(t, xdstest.Reviews(t))
	for _, cl := range bad.Clusters {
		if cl.GetName() == "inbound-vip|9080|http/v2|reviews.mesh.local" {
			cl.LbPolicy = clusterv3.Cluster_CLUSTER_PROVIDED
		}
	}
	if err := e.cp.Push(bad); err != nil {
		t.Fatal(err)
	}
	// The client counts a refusal in each family in turn: wait until a scrape sees them all
	// agree with the refusals the client noted.
	deadline := time.Now().Add(10 * time.Second)
	for {
		after := xdsStats(t, hc)
		n, _ := e.w.ads.NACKs()
		var wrong []string
		for name, want := range map[string]float64{
			"envoy_cluster_manager_cds_update_rejected":         before["envoy_cluster_manager_cds_update_rejected"] + float64(n),
			"waypoint_xds_update_rejected_total/" + clusterType: before["waypoint_xds_update_rejected_total/"+clusterType] + float64(n),
			"envoy_listener_manager_lds_update_rejected":        before["envoy_listener_manager_lds_update_rejected"],
			"envoy_control_plane_connected_state":               1,
		} {
			if after[name] != want {
				wrong = append(wrong, fmt.Sprintf("%s = %v, want %v", name, after[name], want))
			}
		}
		if n > 0 && len(wrong) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %d refusals: %s", n, strings.Join(wrong, "; "))
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The refused CDS version is not in force (the snapshot's version is
	// LDS/CDS).
	if v := e.w.Snapshot().Version; strings.HasSuffix(v, "/"+e.cp.Version()) {
		t.Errorf("the refused CDS version is in force: %s", v)
	}
}
