package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"
)

// SyncStatus is one proxy's entry in istiod's /debug/syncz: the nonce last sent and last
// ACKed per type, and the last NACK's error.
type SyncStatus struct {
	ClusterID    string                    `json:"cluster_id"`
	ProxyID      string                    `json:"proxy"`
	ProxyType    string                    `json:"proxy_type"`
	IstioVersion string                    `json:"istio_version"`
	Resources    map[string]ResourceStatus `json:"resources"`
}

// ResourceStatus is what istiod knows of one type it pushes to a proxy.
type ResourceStatus struct {
	Sent      string    `json:"sent"`
	Acked     string    `json:"acked"`
	SentTime  time.Time `json:"sentTime"`
	LastError string    `json:"lastError"`
}

// Type URLs of the xDS types istiod pushes a waypoint.
const (
	ListenerType = "type.googleapis.com/envoy.config.listener.v3.Listener"
	ClusterType  = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
	EndpointType = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
	RouteType    = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
)

// Synced reports whether every type sent has been ACKed with the nonce last sent; if not,
// why (the types pending and the last NACK's error).
func (s SyncStatus) Synced() (bool, string) {
	var pending []string
	for t, r := range s.Resources {
		if r.LastError != "" {
			pending = append(pending, fmt.Sprintf("%s NACKed: %s", shortType(t), r.LastError))
		} else if r.Sent != "" && r.Sent != r.Acked {
			pending = append(pending, fmt.Sprintf("%s sent %s, acked %q", shortType(t), r.Sent, r.Acked))
		}
	}
	sort.Strings(pending)
	return len(pending) == 0, strings.Join(pending, "; ")
}

func shortType(t string) string { return t[strings.LastIndex(t, ".")+1:] }

// SyncZ reads istiod's /debug/syncz.
func (c *Cluster) SyncZ(ctx context.Context) ([]SyncStatus, error) {
	var out []SyncStatus
	err := c.istiodDebug(ctx, "/debug/syncz", &out)
	return out, err
}

// ProxySync is the sync status of the proxy whose id ends with suffix (e.g. "POD.NS"), or
// false when istiod has no such proxy connected.
func (c *Cluster) ProxySync(ctx context.Context, suffix string) (SyncStatus, bool, error) {
	all, err := c.SyncZ(ctx)
	if err != nil {
		return SyncStatus{}, false, err
	}
	for _, s := range all {
		if strings.HasSuffix(s.ProxyID, suffix) || strings.Contains(s.ProxyID, "~"+suffix+"~") {
			return s, true, nil
		}
	}
	return SyncStatus{}, false, nil
}

// ConfigDump is istiod's view of what it pushes a proxy (/debug/config_dump?proxyID=ID),
// as Envoy's admin config dump JSON.
func (c *Cluster) ConfigDump(ctx context.Context, proxyID string) (json.RawMessage, error) {
	var out json.RawMessage
	err := c.istiodDebug(ctx, "/debug/config_dump?proxyID="+url.QueryEscape(proxyID), &out)
	return out, err
}

// AmbientZ is istiod's /debug/ambientz (workloads, services and their waypoints).
func (c *Cluster) AmbientZ(ctx context.Context) (json.RawMessage, error) {
	var out json.RawMessage
	err := c.istiodDebug(ctx, "/debug/ambientz", &out)
	return out, err
}

func (c *Cluster) istiodDebug(ctx context.Context, path string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.IstiodMonitoring()+path, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("istiod %s: %w", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("istiod %s: %d %s", path, resp.StatusCode, b)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("istiod %s: %w", path, err)
	}
	return nil
}
