package xds

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"sigs.k8s.io/yaml"
)

// Bootstrap is a decoded Envoy v3 bootstrap file. Read-only after
// ParseBootstrap returns.
type Bootstrap struct {
	// Snapshot is built from static_resources; nil when the bootstrap has
	// dynamic_resources.
	Snapshot *Snapshot
	// Dynamic is dynamic_resources, nil when there are none: the config
	// then comes over ADS from Dynamic.ControlPlane, and static_resources
	// holds only that control plane's cluster.
	Dynamic *DynamicResources
	// AdminAddress is admin.address.socket_address as "ip:port", "" when
	// there is no admin section.
	AdminAddress string
	// Overload is overload_manager, nil when there is none (the
	// waypoint's proxy/overload runs it).
	Overload *Overload
	// Raw is the whole bootstrap as parsed (node kept as given). It must not
	// be modified.
	Raw *bootstrapv3.Bootstrap
}

// LoadBootstrapFile reads and decodes the bootstrap file at path (see
// ParseBootstrap). Errors start with path.
func LoadBootstrapFile(path string) (*Bootstrap, error) {
	return BuildOptions{}.LoadBootstrapFile(path)
}

// LoadBootstrapFile is the package's LoadBootstrapFile with o.
func (o BuildOptions) LoadBootstrapFile(path string) (*Bootstrap, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return o.ParseBootstrap(data, path)
}

// ParseBootstrap decodes a bootstrap in JSON (when its first non-blank byte
// is '{') or YAML. Only node, admin.address, static_resources listeners
// and clusters, and dynamic_resources (lds_config and cds_config over ADS,
// ads_config naming a static cluster by envoy_grpc, see DynamicResources)
// are supported; anything else set is an error. With dynamic_resources,
// static_resources may hold only the control plane's cluster (a decision of
// ours: Envoy also merges static listeners and clusters with dynamic ones).
// ads_config.set_node_on_first_message_only is taken as a no-op: the node
// goes on the first request of each stream either way. Each listener and
// cluster is parsed on its own so that a parse error names it, e.g.
// `static_resources.listeners[1] "main": proto: ...unknown field "foo"`;
// type URLs must name a type the waypoint supports. The snapshot's Version is
// a hash of data. Errors start with name (the file name). It builds with
// the zero BuildOptions, as Build does.
func ParseBootstrap(data []byte, name string) (*Bootstrap, error) {
	return BuildOptions{}.ParseBootstrap(data, name)
}

// ParseBootstrap is the package's ParseBootstrap with o.
func (o BuildOptions) ParseBootstrap(data []byte, name string) (*Bootstrap, error) {
	b, err := o.parseBootstrap(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return b, nil
}

func (o BuildOptions) parseBootstrap(data []byte) (*Bootstrap, error) {
	js := data
	if !bytes.HasPrefix(bytes.TrimLeft(data, " \t\r\n"), []byte("{")) {
		var err error
		if js, err = yaml.YAMLToJSON(data); err != nil {
			return nil, err
		}
	}
	rest, rawListeners, rawClusters, err := splitStaticResources(js)
	if err != nil {
		return nil, err
	}

	raw := &bootstrapv3.Bootstrap{}
	if err := protojson.Unmarshal(rest, raw); err != nil {
		return nil, err
	}
	if err := checkSupported(raw.ProtoReflect()); err != nil {
		return nil, err
	}
	if err := validate(raw); err != nil {
		return nil, err
	}

	listeners := make([]*listenerv3.Listener, len(rawListeners))
	for i, r := range rawListeners {
		listeners[i] = &listenerv3.Listener{}
		if err := protojson.Unmarshal(r, listeners[i]); err != nil {
			return nil, fmt.Errorf("static_resources.listeners[%d]%s: %w", i, nameSuffix(r), err)
		}
	}
	clusters := make([]*clusterv3.Cluster, len(rawClusters))
	for i, r := range rawClusters {
		clusters[i] = &clusterv3.Cluster{}
		if err := protojson.Unmarshal(r, clusters[i]); err != nil {
			return nil, fmt.Errorf("static_resources.clusters[%d]%s: %w", i, nameSuffix(r), err)
		}
	}

	b := &Bootstrap{Raw: raw}
	if b.Overload, err = decodeOverload(raw); err != nil {
		return nil, err
	}
	if a := raw.GetAdmin().GetAddress(); a != nil {
		ap, err := socketAddress(a, true)
		if err != nil {
			return nil, at("admin.address", err)
		}
		b.AdminAddress = ap.String()
	}

	if dr := raw.GetDynamicResources(); dr != nil {
		d, i, err := decodeDynamic(dr, clusters)
		if err != nil {
			return nil, at("dynamic_resources", err)
		}
		if len(listeners) > 0 || len(clusters) > 1 {
			return nil, errAt("static_resources", "with dynamic_resources, only the control plane's cluster %q is supported (listeners and clusters come over ADS)", clusters[i].GetName())
		}
		raw.StaticResources = &bootstrapv3.Bootstrap_StaticResources{Clusters: clusters}
		b.Dynamic = d
		return b, nil
	}

	sum := sha256.Sum256(data)
	snap, err := o.Build(hex.EncodeToString(sum[:8]), listeners, clusters, nil)
	if err != nil {
		return nil, err
	}
	if len(listeners) > 0 || len(clusters) > 0 {
		raw.StaticResources = &bootstrapv3.Bootstrap_StaticResources{Listeners: listeners, Clusters: clusters}
	}
	snap.bootstrap = raw
	b.Snapshot = snap
	return b, nil
}

// splitStaticResources takes static_resources.listeners and .clusters out of
// a bootstrap JSON object, returning the rest of the document and each
// resource's JSON.
func splitStaticResources(js []byte) (rest []byte, listeners, clusters []json.RawMessage, err error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(js, &top); err != nil {
		return nil, nil, nil, fmt.Errorf("bootstrap is not an object: %w", err)
	}
	if top == nil {
		return nil, nil, nil, errors.New("bootstrap is empty")
	}
	srKey, srJSON, err := field(top, "static_resources", "staticResources")
	if err != nil || srJSON == nil {
		return js, nil, nil, err
	}
	var sr map[string]json.RawMessage
	if err := json.Unmarshal(srJSON, &sr); err != nil {
		return nil, nil, nil, fmt.Errorf("static_resources: not an object: %w", err)
	}
	for _, f := range []struct {
		name string
		out  *[]json.RawMessage
	}{{"listeners", &listeners}, {"clusters", &clusters}} {
		k, v, _ := field(sr, f.name)
		if v == nil {
			continue
		}
		if err := json.Unmarshal(v, f.out); err != nil {
			return nil, nil, nil, fmt.Errorf("static_resources.%s: not a list: %w", f.name, err)
		}
		delete(sr, k)
	}
	if top[srKey], err = json.Marshal(sr); err != nil {
		return nil, nil, nil, err
	}
	rest, err = json.Marshal(top)
	return rest, listeners, clusters, err
}

// field finds a field under any of its JSON names (proto and lowerCamel).
func field(obj map[string]json.RawMessage, names ...string) (string, json.RawMessage, error) {
	var found string
	for _, n := range names {
		if _, ok := obj[n]; ok {
			if found != "" {
				return "", nil, fmt.Errorf("both %s and %s are set", found, n)
			}
			found = n
		}
	}
	if found == "" || bytes.Equal(obj[found], []byte("null")) {
		return found, nil, nil
	}
	return found, obj[found], nil
}

// nameSuffix renders ` "name"` from a resource's JSON, or "" if it has none.
func nameSuffix(js json.RawMessage) string {
	var probe struct {
		Name string `json:"name"`
	}
	if json.Unmarshal(js, &probe) != nil || probe.Name == "" {
		return ""
	}
	return " " + strconv.Quote(probe.Name)
}
