package render

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
	"sigs.k8s.io/yaml"
)

var update = flag.Bool("update", false, "rewrite the golden files testdata/*.golden.yaml")

// testOptions are the controller's options in the golden files.
var testOptions = Options{
	ControllerName: "waypoint.gowaypoint.io/controller",
	Image:          "localhost/waypoint:test",
}

// readInput reads testdata/NAME.in.yaml: a Gateway, then ConfigMaps, those
// labelled defaults-for-class as class defaults and the one the Gateway's
// parametersRef names as its parameters.
func readInput(t *testing.T, name string) Input {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name+".in.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var in Input
	for _, doc := range strings.Split(string(b), "\n---\n") {
		var tm struct{ Kind string }
		if err := yaml.Unmarshal([]byte(doc), &tm); err != nil {
			t.Fatal(err)
		}
		switch tm.Kind {
		case "Gateway":
			in.Gateway = &gwv1.Gateway{}
			if err := yaml.UnmarshalStrict([]byte(doc), in.Gateway); err != nil {
				t.Fatal(err)
			}
		case "ConfigMap":
			var cm corev1.ConfigMap
			if err := yaml.UnmarshalStrict([]byte(doc), &cm); err != nil {
				t.Fatal(err)
			}
			if _, ok := cm.Labels[LabelDefaultsForClass]; ok {
				in.ClassDefaults = append(in.ClassDefaults, cm)
			} else {
				in.Parameters = &cm
			}
		default:
			t.Fatalf("%s: unexpected kind %q", name, tm.Kind)
		}
	}
	return in
}

func marshalAll(t *testing.T, objs []*unstructured.Unstructured) []byte {
	t.Helper()
	var buf bytes.Buffer
	for i, o := range objs {
		if i > 0 {
			buf.WriteString("---\n")
		}
		b, err := yaml.Marshal(o.Object)
		if err != nil {
			t.Fatal(err)
		}
		buf.Write(b)
	}
	return buf.Bytes()
}

// TestGolden renders each testdata/NAME.in.yaml and compares it with
// testdata/NAME.golden.yaml (go test -update rewrites them).
func TestGolden(t *testing.T) {
	for _, name := range []string{"plain", "overlays", "proxyimage"} {
		t.Run(name, func(t *testing.T) {
			objs, err := Render(readInput(t, name), testOptions)
			if err != nil {
				t.Fatal(err)
			}
			got := marshalAll(t, objs)
			golden := filepath.Join("testdata", name+".golden.yaml")
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(string(want), string(got)); d != "" {
				t.Errorf("%s differs (-want +got; go test -update rewrites it):\n%s", golden, d)
			}
		})
	}
}

func kinds(objs []*unstructured.Unstructured) []string {
	var out []string
	for _, o := range objs {
		out = append(out, o.GetKind()+"/"+o.GetName())
	}
	return out
}

func container(t *testing.T, objs []*unstructured.Unstructured) map[string]any {
	t.Helper()
	for _, o := range objs {
		if o.GetKind() != "Deployment" {
			continue
		}
		cs, _, _ := unstructured.NestedSlice(o.Object, "spec", "template", "spec", "containers")
		for _, c := range cs {
			if m := c.(map[string]any); m["name"] == "istio-proxy" {
				return m
			}
		}
	}
	t.Fatal("no Deployment with a container istio-proxy")
	return nil
}

func env(c map[string]any, name string) (string, bool) {
	for _, e := range c["env"].([]any) {
		if m := e.(map[string]any); m["name"] == name {
			v, _ := m["value"].(string)
			return v, true
		}
	}
	return "", false
}

// TestRenderFacts checks single facts of the rendering, each against the
// plain Gateway changed in one way.
func TestRenderFacts(t *testing.T) {
	cases := []struct {
		name   string
		change func(*Input, *Options)
		check  func(t *testing.T, objs []*unstructured.Unstructured)
	}{
		{
			name: "three objects without overlays, managed by our controller, owned by the Gateway",
			check: func(t *testing.T, objs []*unstructured.Unstructured) {
				if d := cmp.Diff([]string{"ServiceAccount/waypoint", "Deployment/waypoint", "Service/waypoint"}, kinds(objs)); d != "" {
					t.Error(d)
				}
				for _, o := range objs {
					if v := o.GetLabels()[LabelManaged]; v != "waypoint.gowaypoint.io-controller" {
						t.Errorf("%s: managed label %q", o.GetKind(), v)
					}
					refs := o.GetOwnerReferences()
					if len(refs) != 1 || refs[0].Kind != "Gateway" || refs[0].UID != "6f1c2a9e-0b7d-4c1e-9a43-2d5e8f7b1c00" || refs[0].Controller == nil || !*refs[0].Controller {
						t.Errorf("%s: owner references %+v", o.GetKind(), refs)
					}
				}
				pod, _, _ := unstructured.NestedStringMap(objs[1].Object, "spec", "template", "metadata", "labels")
				if pod[LabelManaged] != WaypointPodManaged || pod["istio.io/dataplane-mode"] != "none" || pod["sidecar.istio.io/inject"] != "false" || pod[LabelWaypointFor] != "service" {
					t.Errorf("pod labels %v", pod)
				}
			},
		},
		{
			name: "an annotation without a / leaves the default image",
			change: func(in *Input, _ *Options) {
				in.Gateway.Annotations = map[string]string{AnnotationProxyImage: "proxyv2"}
			},
			check: func(t *testing.T, objs []*unstructured.Unstructured) {
				if img := container(t, objs)["image"]; img != "localhost/waypoint:test" {
					t.Errorf("image %v", img)
				}
			},
		},
		{
			name:   "a non-default istiod address goes into CA_ADDR and PROXY_CONFIG",
			change: func(_ *Input, o *Options) { o.IstiodAddress = "istiod-canary.istio-system.svc:15012" },
			check: func(t *testing.T, objs []*unstructured.Unstructured) {
				c := container(t, objs)
				if v, _ := env(c, "CA_ADDR"); v != "istiod-canary.istio-system.svc:15012" {
					t.Errorf("CA_ADDR %q", v)
				}
				if v, _ := env(c, "PROXY_CONFIG"); v != "{\"discoveryAddress\":\"istiod-canary.istio-system.svc:15012\"}\n" {
					t.Errorf("PROXY_CONFIG %q", v)
				}
			},
		},
		{
			name: "trust domain, mesh id, cluster id, network and JSON logs",
			change: func(_ *Input, o *Options) {
				o.TrustDomain, o.ClusterID, o.Network, o.LogAsJSON = "example.org", "east", "net1", true
			},
			check: func(t *testing.T, objs []*unstructured.Unstructured) {
				c := container(t, objs)
				for name, want := range map[string]string{"TRUST_DOMAIN": "example.org", "ISTIO_META_MESH_ID": "example.org",
					"ISTIO_META_CLUSTER_ID": "east", "ISTIO_META_NETWORK": "net1"} {
					if v, _ := env(c, name); v != want {
						t.Errorf("%s %q, want %q", name, v, want)
					}
				}
				args := c["args"].([]any)
				if args[len(args)-1] != "--log_as_json" {
					t.Errorf("args %v", args)
				}
				if objs[2].GetLabels()[LabelTopologyNetwork] != "net1" {
					t.Errorf("Service labels %v", objs[2].GetLabels())
				}
			},
		},
		{
			name: "name and service account overrides",
			change: func(in *Input, _ *Options) {
				in.Gateway.Annotations = map[string]string{AnnotationNameOverride: "wp", AnnotationServiceAccount: "wp-sa"}
			},
			check: func(t *testing.T, objs []*unstructured.Unstructured) {
				if d := cmp.Diff([]string{"ServiceAccount/wp-sa", "Deployment/wp", "Service/wp"}, kinds(objs)); d != "" {
					t.Error(d)
				}
				for _, o := range objs {
					if _, ok := o.GetAnnotations()[AnnotationNameOverride]; ok {
						t.Errorf("%s carries the name-override annotation", o.GetKind())
					}
				}
			},
		},
		{
			name: "listener ports: duplicates dropped, names sanitized and made unique",
			change: func(in *Input, _ *Options) {
				in.Gateway.Spec.Listeners = append(in.Gateway.Spec.Listeners,
					gwv1.Listener{Name: "status-port", Port: 8080, Protocol: gwv1.HTTPProtocolType},
					gwv1.Listener{Name: "mesh.again", Port: 15008, Protocol: "HBONE"},
					gwv1.Listener{Name: "a.b", Port: 9090, Protocol: gwv1.TCPProtocolType})
			},
			check: func(t *testing.T, objs []*unstructured.Unstructured) {
				ports, _, _ := unstructured.NestedSlice(objs[2].Object, "spec", "ports")
				var got []string
				for _, p := range ports {
					m := p.(map[string]any)
					got = append(got, m["name"].(string)+"/"+m["appProtocol"].(string))
				}
				want := []string{"status-port/tcp", "mesh/hbone", "status-port-8080/http", "a-b/tcp"}
				if d := cmp.Diff(want, got); d != "" {
					t.Error(d)
				}
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in, o := readInput(t, "plain"), testOptions
			if tc.change != nil {
				tc.change(&in, &o)
			}
			objs, err := Render(in, o)
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, objs)
		})
	}
}

// TestRenderErrors checks that bad input is refused with an error naming
// what is wrong.
func TestRenderErrors(t *testing.T) {
	params := func(data map[string]string) func(*Input, *Options) {
		return func(in *Input, _ *Options) {
			in.Parameters = &corev1.ConfigMap{Data: data}
			in.Parameters.Name, in.Parameters.Namespace = "p", in.Gateway.Namespace
		}
	}
	cases := []struct {
		name   string
		change func(*Input, *Options)
		want   string
	}{
		{"no controller name", func(_ *Input, o *Options) { o.ControllerName = "" }, "ControllerName is required"},
		{"no image", func(_ *Input, o *Options) { o.Image = "" }, "Image is required"},
		{"no uid", func(in *Input, _ *Options) { in.Gateway.UID = "" }, "no name, namespace or uid"},
		{"unsupported overlay key", params(map[string]string{"daemonSet": "{}"}), `ConfigMap ns1/p: unsupported overlay "daemonSet"`},
		{"overlay not YAML", params(map[string]string{"deployment": "spec: [1"}), `ConfigMap ns1/p: overlay "deployment" is not a YAML object`},
		{"overlay renames", params(map[string]string{"service": "metadata: {name: other}"}), `ConfigMap ns1/p: overlay "service" changes the object's name`},
		{"overlay drops owner", params(map[string]string{"serviceAccount": "metadata: {ownerReferences: null}"}), `overlay "serviceAccount" changes`},
		{"parameters elsewhere", func(in *Input, _ *Options) {
			in.Parameters = &corev1.ConfigMap{}
			in.Parameters.Name, in.Parameters.Namespace = "p", "other"
		}, "not in the Gateway's namespace"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in, o := readInput(t, "plain"), testOptions
			tc.change(&in, &o)
			_, err := Render(in, o)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestParametersRef(t *testing.T) {
	cases := []struct {
		name    string
		ref     *gwv1.LocalParametersReference
		want    string
		wantErr string
	}{
		{name: "none"},
		{name: "configmap", ref: &gwv1.LocalParametersReference{Kind: "ConfigMap", Name: "cm"}, want: "cm"},
		{name: "other kind", ref: &gwv1.LocalParametersReference{Group: "example.com", Kind: "Params", Name: "x"}, wantErr: "only a ConfigMap"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			gw := &gwv1.Gateway{}
			if tc.ref != nil {
				gw.Spec.Infrastructure = &gwv1.GatewayInfrastructure{ParametersRef: tc.ref}
			}
			got, err := ParametersRef(gw)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func TestManaged(t *testing.T) {
	ip, host := gwv1.IPAddressType, gwv1.HostnameAddressType
	cases := []struct {
		name  string
		addrs []gwv1.GatewaySpecAddress
		want  bool
	}{
		{"no address", nil, true},
		{"one IP", []gwv1.GatewaySpecAddress{{Type: &ip, Value: "10.0.0.1"}}, true},
		{"one untyped", []gwv1.GatewaySpecAddress{{Value: "10.0.0.1"}}, true},
		{"a hostname", []gwv1.GatewaySpecAddress{{Type: &host, Value: "wp.ns.svc.cluster.local"}}, false},
		{"two IPs", []gwv1.GatewaySpecAddress{{Type: &ip, Value: "10.0.0.1"}, {Type: &ip, Value: "10.0.0.2"}}, false},
	}
	for _, tc := range cases {
		gw := &gwv1.Gateway{Spec: gwv1.GatewaySpec{Addresses: tc.addrs}}
		if got := Managed(gw); got != tc.want {
			t.Errorf("%s: Managed %v, want %v", tc.name, got, tc.want)
		}
	}
}
