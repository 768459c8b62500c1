package waypointcmd

import (
	"bytes"
	"strings"
	"testing"
)

// TestGenerate checks the Gateway of apply's and generate's flags, as YAML. The
// expected texts of the flags istioctl has are what `istioctl waypoint
// generate` of the pinned Istio prints for them (e2e/cluster/live,
// TestWaypointApply, compares the two binaries' outputs).
func TestGenerate(t *testing.T) {
	const listeners = `spec:
  gatewayClassName: %s
  listeners:
  - name: mesh
    port: 15008
    protocol: HBONE
`
	spec := func(class string) string { return strings.Replace(listeners, "%s", class, 1) }
	tests := []struct {
		name    string
		args    []string
		want    string
		wantErr string
	}{
		{name: "no flags", args: nil, want: `apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: waypoint
` + spec("istio-waypoint")},
		{name: "namespace", args: []string{"-n", "apps"}, want: `apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: waypoint
  namespace: apps
` + spec("istio-waypoint")},
		{name: "every istioctl flag", args: []string{"--namespace", "apps", "--name", "reviews-wp", "--for", "workload", "-r", "canary"},
			want: `apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  labels:
    istio.io/rev: canary
    istio.io/waypoint-for: workload
  name: reviews-wp
  namespace: apps
` + spec("istio-waypoint")},
		{name: "empty name is the default", args: []string{"--name", "", "--for", "none"}, want: `apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  labels:
    istio.io/waypoint-for: none
  name: waypoint
` + spec("istio-waypoint")},
		{name: "class istio-mesh and an image", args: []string{"-n", "apps", "--class", "istio-mesh", "--image", "localhost/waypoint:v1", "--for", "all"},
			want: `apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  annotations:
    sidecar.istio.io/proxyImage: localhost/waypoint:v1
  labels:
    istio.io/waypoint-for: all
  name: waypoint
  namespace: apps
` + spec("istio-mesh")},

		{name: "reserved name", args: []string{"--name", "none"}, wantErr: "invalid name provided for waypoint, 'none' is a reserved value"},
		{name: "unknown traffic type", args: []string{"--for", "pods"}, wantErr: "invalid traffic type: pods. Valid options are: [all none service workload]"},
		{name: "unknown class", args: []string{"--class", "istio"}, wantErr: `--class "istio": want istio-waypoint (istiod deploys it) or istio-mesh`},
		{name: "image without a slash", args: []string{"--image", "waypoint:v1"}, wantErr: `--image "waypoint:v1": want a reference with a "/"`},
		{name: "image with a space", args: []string{"--image", "localhost/waypoint :v1"}, wantErr: `--image "localhost/waypoint :v1"`},
		{name: "stray argument", args: []string{"-n", "apps", "extra"}, wantErr: `generate: unexpected arguments ["extra"]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			err := generate(tt.args, &out)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if out.String() != tt.want {
				t.Errorf("got\n%s\nwant\n%s", out.String(), tt.want)
			}
		})
	}
}
