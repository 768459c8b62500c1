package live

import (
	"testing"
)

// Dubbo's cases. Dubbo 2 on a TCP port is e2e/cluster/live/dubbo_test.go (it needs providers
// and a consumer of its own); Triple, Dubbo 3's protocol, is gRPC on the wire (HTTP/2, content
// type application/grpc+proto, path /<interface>/<method>, the version in the header
// tri-service-version), so it takes the HTTP chain istiod writes for a grpc port and is a case
// of the catalogue like the others.
func init() {
	catalogue = append(catalogue,
		compatCase{
			name: "dubbo-triple",
			resources: "DestinationRule subsets v1/v2; VirtualService on the grpc port: header `tri-service-version: v2` (a Triple " +
				"consumer's version) to v2, the rest to v1",
			checks: "Triple calls (gRPC, `/org.apache.dubbo.samples.Greeter/sayHello`) naming version v2 are answered by v2, " +
				"the others by v1, 10 times each",
			yaml: subsets + `---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: "{{NS}}"}
spec:
  hosts: [reviews]
  http:
  - match:
    - headers:
        tri-service-version: {exact: v2}
    route:
    - destination: {host: reviews, subset: v2, port: {number: 9090}}
  - route:
    - destination: {host: reviews, subset: v1, port: {number: 9090}}
`,
			check: func(t *testing.T, w *world, b *base) {
				const method = "/org.apache.dubbo.samples.Greeter/sayHello"
				for i := 0; i < 10; i++ {
					if pod, err := w.grpcCall("productpage", b.vip+":9090", method, "tri-service-version", "v2"); err != nil || pod != "reviews-v2" {
						t.Errorf("Triple call with version v2: %q %v, want reviews-v2", pod, err)
					}
					if pod, err := w.grpcCall("productpage", b.vip+":9090", method); err != nil || pod != "reviews-v1" {
						t.Errorf("Triple call without a version: %q %v, want reviews-v1", pod, err)
					}
				}
			},
		},
	)
}
