package dns_test

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/gowaypoint/waypoint/proxy/upstream/dns"
	"github.com/gowaypoint/waypoint/proxy/upstream/dns/dnstest"
	"github.com/gowaypoint/waypoint/xds"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestLookupFamilies(t *testing.T) {
	srv := dnstest.Start(t)
	srv.Set("both.example", 30*time.Second, "127.0.0.2", "::2", "127.0.0.3")
	srv.Set("v4.example", 7*time.Second, "127.0.0.4")
	srv.Set("v6.example", 9*time.Second, "::6")
	srv.Set("none.example", time.Second)
	c := &dns.Client{Server: srv.Addr()}
	tests := []struct {
		name   string
		family xds.DNSLookupFamily
		want   []string
		ttl    time.Duration
	}{
		{"both.example", xds.DNSV4Only, []string{"127.0.0.2", "127.0.0.3"}, 30 * time.Second},
		{"both.example", xds.DNSV6Only, []string{"::2"}, 30 * time.Second},
		{"both.example", xds.DNSAuto, []string{"::2"}, 30 * time.Second},
		{"both.example", xds.DNSV4Preferred, []string{"127.0.0.2", "127.0.0.3"}, 30 * time.Second},
		{"both.example", xds.DNSAll, []string{"127.0.0.2", "127.0.0.3", "::2"}, 30 * time.Second},
		{"v4.example", xds.DNSAuto, []string{"127.0.0.4"}, 7 * time.Second},
		{"v4.example", xds.DNSV6Only, nil, 0},
		{"v6.example", xds.DNSV4Preferred, []string{"::6"}, 9 * time.Second},
		{"V4.Example.", xds.DNSAll, []string{"127.0.0.4"}, 7 * time.Second},
		{"none.example", xds.DNSAll, nil, 0},
		{"nxdomain.example", xds.DNSV4Only, nil, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name+"/"+tc.family.String(), func(t *testing.T) {
			got, ttl, err := c.Lookup(context.Background(), tc.name, tc.family)
			if err != nil {
				t.Fatal(err)
			}
			var want []netip.Addr
			for _, a := range tc.want {
				want = append(want, netip.MustParseAddr(a))
			}
			if !slices.Equal(got, want) || ttl != tc.ttl {
				t.Errorf("got %v ttl %v, want %v ttl %v", got, ttl, want, tc.ttl)
			}
		})
	}
}

func TestLookupFailures(t *testing.T) {
	srv := dnstest.Start(t)
	srv.Fail(true)
	c := &dns.Client{Server: srv.Addr(), Timeout: 200 * time.Millisecond}
	if _, _, err := c.Lookup(context.Background(), "a.example", xds.DNSV4Only); !errors.Is(err, dns.ErrServer) {
		t.Errorf("SERVFAIL: %v, want ErrServer", err)
	}
	// Nobody answers: the timeout.
	silent := &dns.Client{Server: "127.0.0.1:1", Timeout: 200 * time.Millisecond}
	start := time.Now()
	if _, _, err := silent.Lookup(context.Background(), "a.example", xds.DNSV4Only); err == nil {
		t.Error("no server: no error")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("took %v", d)
	}
	// A cancelled context stops the query at once.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := (&dns.Client{Server: srv.Addr()}).Lookup(ctx, "a.example", xds.DNSV4Only); err == nil {
		t.Error("cancelled: no error")
	}
}

func TestSystemServer(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "resolv.conf")
	os.WriteFile(p, []byte("# comment\nsearch x.svc\nnameserver 10.96.0.10\nnameserver 8.8.8.8\n"), 0o644)
	defer dns.SetResolvConf(p)()
	if got := dns.SystemServer(); got != "10.96.0.10:53" {
		t.Errorf("SystemServer() = %q", got)
	}
	dns.SetResolvConf(filepath.Join(dir, "none"))
	if got := dns.SystemServer(); got != "127.0.0.1:53" {
		t.Errorf("without resolv.conf: %q", got)
	}
}
