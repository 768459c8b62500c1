package pbcheck

import (
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/types/known/durationpb"
)

var testList = Allowlist{
	"envoy.config.core.v3.Address":       F("socket_address"),
	"envoy.config.core.v3.SocketAddress": F("address", "port_value"),
}

func TestCheck(t *testing.T) {
	cases := []struct {
		name string
		msg  *corev3.Address
		want string
	}{
		{"allowed", &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{Address: "1.2.3.4", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 80}}}}, ""},
		{"nested field not allowed", &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{Ipv4Compat: true}}}, "socket_address.ipv4_compat: not supported yet"},
		{"message type not listed", &corev3.Address{Address: &corev3.Address_Pipe{Pipe: &corev3.Pipe{Path: "/x"}}}, "pipe: not supported yet"},
	}
	for _, c := range cases {
		err := testList.Check(c.msg.ProtoReflect())
		if (c.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
}

func TestVerify(t *testing.T) {
	if errs := testList.Verify((&corev3.Address{}).ProtoReflect().Descriptor()); len(errs) != 0 {
		t.Errorf("consistent list reported %v", errs)
	}
	bad := Allowlist{"envoy.config.core.v3.Address": F("socket_address", "nope")}
	errs := bad.Verify((&corev3.Address{}).ProtoReflect().Descriptor())
	if len(errs) != 2 { // a missing field, and SocketAddress reachable but unlisted
		t.Errorf("got %v, want two problems", errs)
	}
}

func TestPathsAndDuration(t *testing.T) {
	err := At(Idx("filters", 2), At("typed_config", ErrAt("cluster", "unknown %q", "x")))
	if got := err.Error(); got != `filters[2].typed_config.cluster: unknown "x"` {
		t.Errorf("path %q", got)
	}
	if d, err := Duration(nil, time.Second); d != time.Second || err != nil {
		t.Errorf("absent duration: %v %v", d, err)
	}
	if _, err := Duration(durationpb.New(-time.Second), 0); err == nil {
		t.Error("negative duration accepted")
	}
}
