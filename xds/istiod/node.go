package istiod

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"

	"github.com/gowaypoint/waypoint/xds/adsclient"
)

// The node a waypoint describes itself with is the one Istio's agent
// (pilot-agent, pkg/bootstrap GetNodeMetaData) sends for the pod of the
// Deployment istiod renders for a Gateway of class istio-waypoint. That
// Deployment gives it:
//
//   - env POD_NAME, POD_NAMESPACE, INSTANCE_IP, SERVICE_ACCOUNT (the
//     downward API): the node id and NAME, NAMESPACE, INSTANCE_IPS,
//     SERVICE_ACCOUNT; INSTANCE_IPS also takes env INSTANCE_IPS (a
//     dual-stack pod's status.podIPs) after INSTANCE_IP;
//   - env ISTIO_META_<KEY>=value: metadata KEY, a string (CLUSTER_ID,
//     MESH_ID, WORKLOAD_NAME, OWNER, NODE_NAME, INTERCEPTION_MODE,
//     NETWORK, ISTIO_VERSION...); env ISTIO_METAJSON_<KEY>=json: metadata
//     KEY, that JSON value (LABELS and ANNOTATIONS: objects of strings,
//     merged under the pod's files). Istio's agent merges an
//     ISTIO_METAJSON_ object into the top level of the metadata (and reads
//     ISTIO_METAJSON_LABELS as the labels besides); only the labels, the
//     annotations and the keys of the metadata are read here, not such
//     stray top-level copies;
//   - the files labels and annotations of the downward API volume mounted
//     at /etc/istio/pod (key="value" per line, the value quoted with Go's
//     escapes): LABELS (the gateway name among them:
//     gateway.networking.k8s.io/gateway-name) and ANNOTATIONS. Istio drops
//     the label pod-template-hash, and so do we.
//
// ISTIO_VERSION, unless given, is the version of the istio.io/api module
// this binary was built with: the Istio API it implements.

// DefaultPodInfoDir is where istiod's waypoint Deployment mounts the pod's
// labels and annotations (the downward API volume istio-podinfo).
const DefaultPodInfoDir = "/etc/istio/pod"

// The downward API files of the pod info directory.
const (
	PodLabelsFile      = "labels"
	PodAnnotationsFile = "annotations"
)

// The environment variables of node metadata.
const (
	MetaEnvPrefix     = "ISTIO_META_"
	MetaJSONEnvPrefix = "ISTIO_METAJSON_"
)

// istioAPIModule is the module whose version is the default ISTIO_VERSION.
const istioAPIModule = "istio.io/api"

// NodeFlags are the parts of the node a command line sets.
type NodeFlags struct {
	IP, PodName, Namespace, ServiceAccount, ClusterID string
	// IPs are the pod's addresses, separated by commas (INSTANCE_IPS: the
	// node IP's is first; a dual-stack pod's other family after it).
	IPs string
	// DNSDomain is the node id's domain (pilot-agent's --domain); default
	// <Namespace>.svc.cluster.local.
	DNSDomain string
	// ServiceCluster is node.cluster (pilot-agent's --serviceCluster);
	// default <ServiceAccount>.<Namespace>, as istiod's waypoint
	// Deployment passes it.
	ServiceCluster string
	IstioVersion   string
	// Labels are set over the pod's labels.
	Labels map[string]string
}

// NodeSource says where BuildNode reads the node from.
type NodeSource struct {
	// Flags win over the environment and the files.
	Flags NodeFlags
	// Defaults stand for IP, PodName, Namespace, ServiceAccount and
	// ClusterID when neither the flags nor the environment say (a waypoint
	// outside Kubernetes); their other fields are not read.
	Defaults NodeFlags
	// Environ is the environment, in os.Environ's form (the first of
	// repeated names counts, as for os.Getenv).
	Environ []string
	// PodInfoDir holds the downward API files labels and annotations;
	// default DefaultPodInfoDir. A missing directory or file is no error.
	PodInfoDir string
	// BuildInfo gives the binary's modules, for the default
	// ISTIO_VERSION; default debug.ReadBuildInfo.
	BuildInfo func() (*debug.BuildInfo, bool)
}

// typed are the metadata keys NodeConfig has fields for; an environment
// entry of one of them sets the field, not NodeConfig.Meta.
var typed = map[string]bool{"NAME": true, "NAMESPACE": true, "INSTANCE_IPS": true, "SERVICE_ACCOUNT": true,
	"CLUSTER_ID": true, "MESH_ID": true, "NETWORK": true, "ISTIO_VERSION": true, "WORKLOAD_NAME": true,
	"OWNER": true, "NODE_NAME": true, "LABELS": true, "ANNOTATIONS": true}

// BuildNode describes the waypoint as Istio's agent does, from src. An
// ISTIO_METAJSON_ variable that is not JSON (or, for LABELS and
// ANNOTATIONS, not an object of strings), and a pod info file that cannot
// be read or parsed, are errors naming it.
func BuildNode(src NodeSource) (adsclient.NodeConfig, error) {
	env := map[string]string{}
	var names []string // in order, for stable errors
	for _, kv := range src.Environ {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			continue
		}
		if _, dup := env[k]; !dup {
			env[k] = v
			names = append(names, k)
		}
	}

	meta := map[string]any{}
	var jsonLabels, jsonAnnotations map[string]string
	for _, k := range names {
		if key, ok := strings.CutPrefix(k, MetaEnvPrefix); ok && key != "" {
			meta[key] = env[k]
		}
	}
	for _, k := range names { // after the strings: ISTIO_METAJSON_ wins, as in Istio
		key, ok := strings.CutPrefix(k, MetaJSONEnvPrefix)
		if !ok || key == "" {
			continue
		}
		switch key {
		case "LABELS", "ANNOTATIONS":
			var m map[string]string
			if err := json.Unmarshal([]byte(env[k]), &m); err != nil {
				return adsclient.NodeConfig{}, fmt.Errorf("node metadata: %s: want a JSON object of strings: %v", k, err)
			}
			if key == "LABELS" {
				jsonLabels = m
			} else {
				jsonAnnotations = m
			}
			delete(meta, key)
		default:
			var v any
			if err := json.Unmarshal([]byte(env[k]), &v); err != nil {
				return adsclient.NodeConfig{}, fmt.Errorf("node metadata: %s: %v", k, err)
			}
			meta[key] = v
		}
	}
	str := func(key string) (string, error) {
		v, ok := meta[key]
		if !ok {
			return "", nil
		}
		s, ok := v.(string)
		if !ok {
			return "", fmt.Errorf("node metadata: %s%s: want a string, got %T", MetaJSONEnvPrefix, key, v)
		}
		return s, nil
	}
	for _, key := range []string{"LABELS", "ANNOTATIONS"} {
		if _, ok := meta[key]; ok {
			return adsclient.NodeConfig{}, fmt.Errorf("node metadata: %s%s: %s is an object: set %s%s", MetaEnvPrefix, key, key, MetaJSONEnvPrefix, key)
		}
	}

	var n adsclient.NodeConfig
	f, d := src.Flags, src.Defaults
	// first is the first of vals that is not empty.
	first := func(vals ...string) string {
		for _, v := range vals {
			if v != "" {
				return v
			}
		}
		return ""
	}
	fields := []struct {
		dst             *string
		flag, envVar    string
		key, defaultVal string
	}{
		{&n.IP, f.IP, "INSTANCE_IP", "", d.IP},
		{&n.PodName, f.PodName, "POD_NAME", "NAME", d.PodName},
		{&n.Namespace, f.Namespace, "POD_NAMESPACE", "NAMESPACE", d.Namespace},
		{&n.ServiceAccount, f.ServiceAccount, "SERVICE_ACCOUNT", "SERVICE_ACCOUNT", d.ServiceAccount},
		{&n.ClusterID, f.ClusterID, "", "CLUSTER_ID", d.ClusterID},
		{&n.IstioVersion, f.IstioVersion, "", "ISTIO_VERSION", ""},
		{&n.MeshID, "", "", "MESH_ID", ""},
		{&n.Network, "", "", "NETWORK", ""},
		{&n.WorkloadName, "", "", "WORKLOAD_NAME", ""},
		{&n.Owner, "", "", "OWNER", ""},
		{&n.NodeName, "", "", "NODE_NAME", ""},
	}
	for _, fl := range fields {
		var fromMeta string
		if fl.key != "" {
			var err error
			if fromMeta, err = str(fl.key); err != nil {
				return adsclient.NodeConfig{}, err
			}
		}
		var fromEnv string
		if fl.envVar != "" {
			fromEnv = env[fl.envVar]
		}
		*fl.dst = first(fl.flag, fromEnv, fromMeta, fl.defaultVal)
	}
	if n.IstioVersion == "" {
		read := src.BuildInfo
		if read == nil {
			read = debug.ReadBuildInfo
		}
		if bi, ok := read(); ok {
			n.IstioVersion = IstioVersionOf(bi)
		}
	}
	n.DNSDomain, n.ServiceCluster = f.DNSDomain, f.ServiceCluster
	// INSTANCE_IPS: --node-ips, else $INSTANCE_IPS (the downward API's
	// status.podIPs), IP first.
	for _, ip := range strings.Split(first(f.IPs, env["INSTANCE_IPS"]), ",") {
		if ip = strings.TrimSpace(ip); ip == "" || ip == n.IP {
			continue
		}
		if _, err := netip.ParseAddr(ip); err != nil {
			return adsclient.NodeConfig{}, fmt.Errorf("node INSTANCE_IPS: %q is not an IP address", ip)
		}
		n.OtherIPs = append(n.OtherIPs, ip)
	}

	dir := src.PodInfoDir
	if dir == "" {
		dir = DefaultPodInfoDir
	}
	podLabels, err := readDownwardAPI(filepath.Join(dir, PodLabelsFile))
	if err != nil {
		return adsclient.NodeConfig{}, err
	}
	delete(podLabels, "pod-template-hash") // as Istio's agent does
	podAnnotations, err := readDownwardAPI(filepath.Join(dir, PodAnnotationsFile))
	if err != nil {
		return adsclient.NodeConfig{}, err
	}
	n.Labels = merge(jsonLabels, podLabels, f.Labels)
	n.Annotations = merge(jsonAnnotations, podAnnotations)
	n.Locality = localityOf(n.Labels)

	for k := range meta {
		if typed[k] {
			delete(meta, k)
		}
	}
	if len(meta) > 0 {
		n.Meta = meta
	}
	return n, nil
}

// The pod labels that give the waypoint's locality, as Istio's agent reads
// them: the first wins.
const (
	LocalityLabel       = "topology.istio.io/locality"
	LegacyLocalityLabel = "istio-locality"
)

// localityOf is node.locality as Istio's agent derives it from the pod's
// labels: topology.istio.io/locality, else istio-locality, its value
// region.zone.subzone (dots, as a label value cannot hold "/") or
// region/zone/subzone. As the agent does, it writes the value with "/"
// back into labels' istio-locality, which istiod reads before
// node.locality. istiod reads topology.istio.io/locality first and as it
// is (it sets that label itself on workloads), so a dotted value there
// reaches it as a region, as it does from Istio's agent: istio-locality is
// the label for a pod to carry. Zero when neither label is set.
func localityOf(labels map[string]string) adsclient.Locality {
	v, ok := labels[LocalityLabel]
	if !ok {
		v = labels[LegacyLocalityLabel]
	}
	if v == "" {
		return adsclient.Locality{}
	}
	if !strings.Contains(v, "/") {
		v = strings.ReplaceAll(v, ".", "/")
	}
	labels[LegacyLocalityLabel] = v
	parts := strings.SplitN(v, "/", 3)
	parts = append(parts, "", "")
	return adsclient.Locality{Region: parts[0], Zone: parts[1], SubZone: parts[2]}
}

// merge returns the union of ms, a later map's value winning; nil if all
// are empty.
func merge(ms ...map[string]string) map[string]string {
	var out map[string]string
	for _, m := range ms {
		if len(m) == 0 {
			continue
		}
		if out == nil {
			out = map[string]string{}
		}
		maps.Copy(out, m)
	}
	return out
}

// IstioVersionOf is the version of the istio.io/api module in bi ("v1.32.0"
// gives "1.32.0"; its replacement's, if replaced), "" if bi has none.
func IstioVersionOf(bi *debug.BuildInfo) string {
	if bi == nil {
		return ""
	}
	mods := append([]*debug.Module{&bi.Main}, bi.Deps...)
	for _, m := range mods {
		if m == nil || m.Path != istioAPIModule {
			continue
		}
		v := m.Version
		if m.Replace != nil && m.Replace.Version != "" {
			v = m.Replace.Version
		}
		if v == "(devel)" {
			return ""
		}
		return strings.TrimPrefix(v, "v")
	}
	return ""
}

// readDownwardAPI reads a downward API file; a missing one is empty.
func readDownwardAPI(path string) (map[string]string, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("pod info: %w", err)
	}
	m, err := ParseDownwardAPI(data)
	if err != nil {
		return nil, fmt.Errorf("pod info %s: %w", path, err)
	}
	return m, nil
}

// ParseDownwardAPI parses a Kubernetes downward API file of labels or
// annotations: a key="value" line per entry, the value quoted as Go's %q
// quotes it (a newline in a value is \n). Blank lines are skipped; any
// other line that is not key="value" is an error naming its line.
func ParseDownwardAPI(data []byte) (map[string]string, error) {
	out := map[string]string{}
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		k, q, ok := strings.Cut(line, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("line %d: want key=\"value\"", i+1)
		}
		v, err := strconv.Unquote(q)
		if err != nil || !strings.HasPrefix(q, `"`) {
			return nil, fmt.Errorf("line %d: %s: the value is not a quoted string: %s", i+1, k, q)
		}
		out[k] = v
	}
	return out, nil
}
