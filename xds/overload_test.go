package xds

import (
	"strings"
	"testing"
	"time"
)

func TestDecodeOverload(t *testing.T) {
	const conns = `{name: envoy.resource_monitors.global_downstream_max_connections, typed_config: {"@type": type.googleapis.com/envoy.extensions.resource_monitors.downstream_connections.v3.DownstreamConnectionsConfig, max_active_downstream_connections: 1000}}`
	const heap = `{name: envoy.resource_monitors.fixed_heap, typed_config: {"@type": type.googleapis.com/envoy.extensions.resource_monitors.fixed_heap.v3.FixedHeapConfig, max_heap_size_bytes: 1073741824}}`
	tests := []struct {
		name    string
		om      string // the overload_manager's YAML
		want    *Overload
		wantErr string
	}{
		{
			name: "monitors and actions",
			om: `{refresh_interval: 0.25s, resource_monitors: [` + conns + `, ` + heap + `], actions: [
				{name: envoy.overload_actions.stop_accepting_requests, triggers: [{name: envoy.resource_monitors.fixed_heap, threshold: {value: 0.95}}]},
				{name: envoy.overload_actions.reset_high_memory_stream, triggers: [{name: envoy.resource_monitors.fixed_heap, scaled: {scaling_threshold: 0.85, saturation_threshold: 0.95}}]}]}`,
			want: &Overload{RefreshInterval: 250 * time.Millisecond, MaxDownstreamConnections: 1000, HeapMonitor: true, MaxHeapBytes: 1 << 30,
				Actions: []OverloadAction{
					{Name: ActionStopAcceptingRequests, Triggers: []OverloadTrigger{{Monitor: MonitorFixedHeap, Threshold: 0.95}}},
					{Name: ActionResetHighMemoryStream, Triggers: []OverloadTrigger{{Monitor: MonitorFixedHeap, Scaled: true, Scaling: 0.85, Saturation: 0.95}}},
				}},
		},
		{
			name: "heap without a size: GOMEMLIMIT, default refresh",
			om:   `{resource_monitors: [{name: envoy.resource_monitors.fixed_heap}]}`,
			want: &Overload{RefreshInterval: time.Second, HeapMonitor: true},
		},
		{
			name:    "unknown monitor",
			om:      `{resource_monitors: [{name: envoy.resource_monitors.cpu_utilization}]}`,
			wantErr: `overload_manager.resource_monitors[0].name: resource monitor "envoy.resource_monitors.cpu_utilization" not supported`,
		},
		{
			name:    "unknown action",
			om:      `{resource_monitors: [` + heap + `], actions: [{name: envoy.overload_actions.reduce_timeouts, triggers: [{name: envoy.resource_monitors.fixed_heap, threshold: {value: 0.9}}]}]}`,
			wantErr: `overload_manager.actions[0].name: overload action "envoy.overload_actions.reduce_timeouts" not supported`,
		},
		{
			name:    "trigger on a monitor not configured",
			om:      `{resource_monitors: [` + heap + `], actions: [{name: envoy.overload_actions.stop_accepting_connections, triggers: [{name: envoy.resource_monitors.global_downstream_max_connections, threshold: {value: 0.9}}]}]}`,
			wantErr: `overload_manager.actions[0].triggers[0].name: no resource monitor "envoy.resource_monitors.global_downstream_max_connections"`,
		},
		{
			name:    "scaled thresholds reversed",
			om:      `{resource_monitors: [` + heap + `], actions: [{name: envoy.overload_actions.disable_http_keepalive, triggers: [{name: envoy.resource_monitors.fixed_heap, scaled: {scaling_threshold: 0.9, saturation_threshold: 0.8}}]}]}`,
			wantErr: `overload_manager.actions[0].triggers[0].scaled: want 0 <= scaling_threshold < saturation_threshold <= 1`,
		},
		{
			name:    "threshold above 1",
			om:      `{resource_monitors: [` + heap + `], actions: [{name: envoy.overload_actions.stop_accepting_requests, triggers: [{name: envoy.resource_monitors.fixed_heap, threshold: {value: 1.5}}]}]}`,
			wantErr: `invalid ThresholdTrigger.Value: value must be inside range [0, 1]`, // the proto's own validation
		},
		{
			name:    "connections monitor without a limit",
			om:      `{resource_monitors: [{name: envoy.resource_monitors.global_downstream_max_connections, typed_config: {"@type": type.googleapis.com/envoy.extensions.resource_monitors.downstream_connections.v3.DownstreamConnectionsConfig}}]}`,
			wantErr: `overload_manager.resource_monitors[0].typed_config.max_active_downstream_connections: must be positive`,
		},
		{
			name:    "the wrong typed_config",
			om:      `{resource_monitors: [{name: envoy.resource_monitors.global_downstream_max_connections, typed_config: {"@type": type.googleapis.com/envoy.extensions.resource_monitors.fixed_heap.v3.FixedHeapConfig, max_heap_size_bytes: 10}}]}`,
			wantErr: `overload_manager.resource_monitors[0].typed_config: want envoy.extensions.resource_monitors.downstream_connections.v3.DownstreamConnectionsConfig`,
		},
		{
			name:    "an action without triggers",
			om:      `{resource_monitors: [` + heap + `], actions: [{name: envoy.overload_actions.stop_accepting_requests}]}`,
			wantErr: `invalid OverloadAction.Triggers: value must contain at least 1 item(s)`,
		},
		{
			name:    "load shed points are not supported",
			om:      `{resource_monitors: [` + heap + `], loadshed_points: [{name: envoy.load_shed_points.tcp_listener_accept}]}`,
			wantErr: `overload_manager.loadshed_points: not supported yet`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			y := doc("overload_manager: "+strings.ReplaceAll(tc.om, "\n", " "), []string{listenerOn("main", 8080, "", tcpChain("a", "backend", ""))},
				[]string{`{name: backend, load_assignment: {cluster_name: backend, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 10.0.0.1, port_value: 80}}}}]}]}}`})
			b, err := ParseBootstrap([]byte(y), "test.yaml")
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := b.Overload
			if got == nil || got.RefreshInterval != tc.want.RefreshInterval || got.MaxDownstreamConnections != tc.want.MaxDownstreamConnections ||
				got.HeapMonitor != tc.want.HeapMonitor || got.MaxHeapBytes != tc.want.MaxHeapBytes || len(got.Actions) != len(tc.want.Actions) {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
			for i, a := range tc.want.Actions {
				g := got.Actions[i]
				if g.Name != a.Name || len(g.Triggers) != len(a.Triggers) {
					t.Fatalf("action %d = %+v, want %+v", i, g, a)
				}
				for j := range a.Triggers {
					if g.Triggers[j] != a.Triggers[j] {
						t.Errorf("action %d trigger %d = %+v, want %+v", i, j, g.Triggers[j], a.Triggers[j])
					}
				}
			}
		})
	}
}
