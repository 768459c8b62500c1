package localmesh

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestDemoMesh runs the demo exactly as `make demo` does and tries what its
// guide tells a newcomer to try.
func TestDemoMesh(t *testing.T) {
	m, err := Start(Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close(context.Background())
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	get := func(url string) string {
		t.Helper()
		resp, err := client.Get(url)
		if err != nil {
			t.Fatalf("GET %s: %v", url, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	cases := []struct{ url, want string }{
		{"http://" + Entries[0].Listen + "/", "hello from echo-a"},
		{"http://" + Entries[0].Listen + "/b/hello", "hello from echo-b (GET /hello)"},
		{"http://" + Entries[1].Listen + "/", "hello from echo-b"},
		{"http://" + Entries[2].Listen + "/", "hello from echo-b"},
		{"http://" + PlaintextAddr + "/", "hello from echo-a"},
		{"http://" + AdminAddr + "/healthz/ready", "LIVE"},
		{"http://" + AdminAddr + "/config_dump", "main_internal"},
	}
	for _, c := range cases {
		if got := get(c.url); !strings.Contains(got, c.want) {
			t.Errorf("GET %s = %q, want it to contain %q", c.url, got, c.want)
		}
	}
	teapot, err := client.Get("http://" + Entries[0].Listen + "/teapot")
	if err != nil {
		t.Fatal(err)
	}
	teapot.Body.Close()
	if teapot.StatusCode != 418 {
		t.Errorf("GET /teapot = %d, want 418 from the fault filter", teapot.StatusCode)
	}
	resp, err := client.Post("http://"+Entries[0].Listen+"/", "text/plain", strings.NewReader("posted through the mesh"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "posted through the mesh" {
		t.Errorf("POST echoed %q", b)
	}
	var guide strings.Builder
	PrintGuide(&guide, m.Dir)
	for _, e := range Entries {
		if !strings.Contains(guide.String(), "curl -s http://"+e.Listen) {
			t.Errorf("the guide does not tell how to try %s", e.Listen)
		}
	}
}
