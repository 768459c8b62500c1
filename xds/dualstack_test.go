package xds

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// dualEndpointCluster is cluster backend with one endpoint at primary and
// the additional addresses extra.
func dualEndpointCluster(primary string, port int, extra ...string) string {
	var aas []string
	for _, a := range extra {
		aas = append(aas, fmt.Sprintf(`{address: {socket_address: {address: %q, port_value: %d}}}`, a, port))
	}
	return fmt.Sprintf(`{name: backend, load_assignment: {cluster_name: backend, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: %q, port_value: %d}}, additional_addresses: [%s]}}]}]}}`,
		primary, port, strings.Join(aas, ", "))
}

func TestAdditionalAddressesDecode(t *testing.T) {
	l := mustParse(t, doc("", []string{listenerOn("main", 8080,
		`additional_addresses: [{address: {socket_address: {address: "::1", port_value: 8080}}}, {address: {socket_address: {address: 127.0.0.2, port_value: 0}}}]`,
		tcpChain("a", "backend", ""))}, []string{dualEndpointCluster("127.0.0.3", 9080, "::1")})).Snapshot
	got := l.Listener("main")
	if want := []netip.AddrPort{ap("127.0.0.1:8080"), ap("[::1]:8080"), ap("127.0.0.2:0")}; !cmp.Equal(got.Addresses(), want, cmpOpts) {
		t.Errorf("listener addresses %v, want %v", got.Addresses(), want)
	}
	eps := l.Clusters["backend"].Endpoints
	if len(eps) != 1 || eps[0].Address != ap("127.0.0.3:9080") || !cmp.Equal(eps[0].AdditionalAddresses, []netip.AddrPort{ap("[::1]:9080")}, cmpOpts) {
		t.Errorf("endpoints %+v", eps)
	}
	// HEALTHY, as istiod sets it on a ready pod's endpoints, is taken.
	mustParse(t, doc("", []string{listenerOn("main", 8080, "", tcpChain("a", "backend", ""))}, []string{
		`{name: backend, load_assignment: {cluster_name: backend, endpoints: [{lb_endpoints: [{health_status: HEALTHY, endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: 1}}}}]}]}}`}))
	// Without additional addresses a listener has its one address and an
	// endpoint none.
	plain := mustParse(t, doc("", []string{listenerOn("main", 8080, "", tcpChain("a", "backend", ""))}, []string{backendCluster})).Snapshot
	if got := plain.Listener("main").Addresses(); len(got) != 1 || plain.Listener("main").AdditionalAddresses != nil {
		t.Errorf("plain listener addresses %v", got)
	}
	if ep := plain.Clusters["backend"].Endpoints[0]; ep.AdditionalAddresses != nil {
		t.Errorf("plain endpoint additional addresses %v", ep.AdditionalAddresses)
	}
}

func TestAdditionalAddressesErrors(t *testing.T) {
	tests := []struct {
		name, yaml, want string
	}{
		{
			name: "listener: same address twice",
			yaml: doc("", []string{listenerOn("main", 8080, `additional_addresses: [{address: {socket_address: {address: 127.0.0.1, port_value: 8080}}}]`,
				tcpChain("a", "backend", ""))}, []string{backendCluster}),
			want: `additional_addresses[0].address: 127.0.0.1:8080 is already an address of the listener`,
		},
		{
			name: "listener: no address",
			yaml: doc("", []string{listenerOn("main", 8080, `additional_addresses: [{}]`, tcpChain("a", "backend", ""))}, []string{backendCluster}),
			want: `additional_addresses[0].address: required`,
		},
		{
			name: "listener: not an IP",
			yaml: doc("", []string{listenerOn("main", 8080, `additional_addresses: [{address: {socket_address: {address: localhost, port_value: 1}}}]`,
				tcpChain("a", "backend", ""))}, []string{backendCluster}),
			want: `additional_addresses[0].address.socket_address.address: "localhost" is not an IP address`,
		},
		{
			name: "listener: socket_options not supported",
			yaml: doc("", []string{listenerOn("main", 8080, `additional_addresses: [{address: {socket_address: {address: "::1", port_value: 8080}}, socket_options: {}}]`,
				tcpChain("a", "backend", ""))}, []string{backendCluster}),
			want: `socket_options`,
		},
		{
			name: "internal listener",
			yaml: doc("", []string{`{name: main_internal, internal_listener: {}, additional_addresses: [{address: {socket_address: {address: "::1", port_value: 1}}}], filter_chains: [` +
				tcpChain("a", "backend", "") + `]}`}, []string{backendCluster}),
			want: `additional_addresses: not supported on an internal_listener`,
		},
		{
			name: "endpoint: same address twice",
			yaml: doc("", []string{listenerOn("main", 8080, "", tcpChain("a", "backend", ""))}, []string{dualEndpointCluster("::1", 9080, "127.0.0.1", "::1")}),
			want: `endpoint.additional_addresses[1].address: [::1]:9080 is already an address of the endpoint`,
		},
		{
			name: "endpoint: health_status DRAINING",
			yaml: doc("", []string{listenerOn("main", 8080, "", tcpChain("a", "backend", ""))}, []string{
				`{name: backend, load_assignment: {cluster_name: backend, endpoints: [{lb_endpoints: [{health_status: DRAINING, endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: 1}}}}]}]}}`}),
			want: `lb_endpoints[0].health_status: DRAINING is not supported yet (only HEALTHY and UNKNOWN)`,
		},
		{
			name: "endpoint: port 0",
			yaml: doc("", []string{listenerOn("main", 8080, "", tcpChain("a", "backend", ""))}, []string{
				`{name: backend, load_assignment: {cluster_name: backend, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: 1}}, additional_addresses: [{address: {socket_address: {address: "::1"}}}]}}]}]}}`}),
			want: `endpoint.additional_addresses[0].address.socket_address.port_value: must be > 0`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseBootstrap([]byte(tt.yaml), "test.yaml")
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one with %q", err, tt.want)
			}
		})
	}
}
