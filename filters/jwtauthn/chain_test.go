package jwtauthn

import (
	"os"
	"strconv"
	"sync"
	"testing"

	httprbacv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/gowaypoint/waypoint/filters"
	"github.com/gowaypoint/waypoint/filters/rbac"
)

// istiod's two filters for a RequestAuthentication and an
// AuthorizationPolicy on request.auth.claims[groups] (both from a live
// istiod), in the chain's order: jwt_authn's payload reaches RBAC through
// the stream's dynamic metadata.
func TestWithIstiodRBAC(t *testing.T) {
	keys(t)
	jf := newFilter(t, istiodConfig(t, jwksOf(t, rsaKey)))
	raw, err := os.ReadFile("../rbac/testdata/istiod-jwt.json")
	if err != nil {
		t.Fatal(err)
	}
	var pb httprbacv3.RBAC
	if err := protojson.Unmarshal(raw, &pb); err != nil {
		t.Fatal(err)
	}
	reg, err := filters.Lookup(rbac.Name, rbac.TypeURL)
	if err != nil {
		t.Fatal(err)
	}
	rf, err := reg.New(filters.BuildContext{Name: rbac.Name}, &pb)
	if err != nil {
		t.Fatal(err)
	}
	chain := []filters.RequestFilter{jf, rf.(filters.RequestFilter)}
	run := func(h ...string) string {
		s := request(t, "/", h...)
		for _, f := range chain {
			if f.OnRequest(s) == filters.Stop {
				return strconv.Itoa(s.Local.Status) + " " + s.Local.Body
			}
		}
		return ""
	}
	for _, c := range []struct {
		name string
		h    []string
		want string
	}{
		{"group1", bearer(rsaKey.sign(t, claims(issuer, "groups", []any{"group1"}))), ""},
		{"group1 as a string", bearer(rsaKey.sign(t, claims(issuer, "groups", "group1"))), ""},
		{"no claim", bearer(rsaKey.sign(t, claims(issuer))), "403 RBAC: access denied"},
		{"bad signature", bearer(rsaOther.sign(t, claims(issuer, "groups", []any{"group1"}))), "401 Jwt verification fails"},
		{"no token", nil, "403 RBAC: access denied"},
	} {
		if o := run(c.h...); o != c.want {
			t.Errorf("%s: got %q, want %q", c.name, o, c.want)
		}
	}
}

// Many streams needing the remote keys at once share one fetch.
func TestRemoteJWKSOneFetch(t *testing.T) {
	keys(t)
	srv := serveJWKS(t, jwksOf(t, rsaKey))
	up := newUpstream(t, srv.addr)
	f := newFilter(t, remoteConfig(""))
	tok := rsaKey.sign(t, claims("iss"))
	var wg sync.WaitGroup
	errs := make(chan string, 20)
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := request(t, "/", bearer(tok)...)
			s.Upstream = up
			if o := outcome(f, s); o != "" {
				errs <- o
			}
		}()
	}
	wg.Wait()
	close(errs)
	for o := range errs {
		t.Errorf("refused: %s", o)
	}
	if n := srv.fetches.Load(); n != 1 {
		t.Errorf("%d fetches, want 1", n)
	}
}
