package tcpproxy

import (
	"net/netip"
	"testing"

	"github.com/cespare/xxhash/v2"

	"github.com/gowaypoint/waypoint/filters"
	"github.com/gowaypoint/waypoint/xds"
)

func TestHash(t *testing.T) {
	from := &filters.Downstream{RemoteAddr: netip.MustParseAddrPort("10.1.2.3:40000")}
	other := &filters.Downstream{RemoteAddr: netip.MustParseAddrPort("10.1.2.3:40001")}
	for _, tc := range []struct {
		name   string
		tp     xds.TCPProxy
		down   *filters.Downstream
		want   uint64
		wantOK bool
	}{
		{"no policy", xds.TCPProxy{}, from, 0, false},
		{"source_ip: the address as text, the port left out", xds.TCPProxy{HashSourceIP: true}, from, xxhash.Sum64String("10.1.2.3"), true},
		{"source_ip, another port of the same address", xds.TCPProxy{HashSourceIP: true}, other, xxhash.Sum64String("10.1.2.3"), true},
		{"source_ip without an address", xds.TCPProxy{HashSourceIP: true}, &filters.Downstream{}, 0, false},
		{"source_ip without a downstream", xds.TCPProxy{HashSourceIP: true}, nil, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, ok := hash(&tc.tp, tc.down)
			if h != tc.want || ok != tc.wantOK {
				t.Errorf("hash = %#x, %v; want %#x, %v", h, ok, tc.want, tc.wantOK)
			}
		})
	}
}
