package httpconn

import (
	"net/netip"
	"testing"

	"github.com/gowaypoint/waypoint/protocols/l7"
)

func TestTrustedXFF(t *testing.T) {
	for _, c := range []struct {
		xff  []string
		hops uint32
		want string
	}{
		{nil, 0, ""},
		{[]string{"1.2.3.4"}, 0, "1.2.3.4:0"},
		{[]string{"1.2.3.4, 5.6.7.8"}, 0, "5.6.7.8:0"},
		{[]string{"1.2.3.4, 5.6.7.8"}, 1, "1.2.3.4:0"},
		{[]string{"1.2.3.4,5.6.7.8"}, 2, ""},
		{[]string{"9.9.9.9", "1.2.3.4, 5.6.7.8"}, 0, "5.6.7.8:0"},
		{[]string{"not-an-ip"}, 0, ""},
		{[]string{"::ffff:10.0.0.1"}, 0, "10.0.0.1:0"},
	} {
		var h l7.Header
		for _, v := range c.xff {
			h.Add("x-forwarded-for", v)
		}
		got := trustedXFF(&h, c.hops)
		want := netip.AddrPort{}
		if c.want != "" {
			want = netip.MustParseAddrPort(c.want)
		}
		if got != want {
			t.Errorf("%q hops %d: %v, want %v", c.xff, c.hops, got, want)
		}
	}
}
