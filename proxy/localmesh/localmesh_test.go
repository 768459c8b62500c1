package localmesh

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

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
	// An edit of the served files is pushed over ADS and taken live.
	lf := filepath.Join(m.XDSDir(), "listeners.json")
	data, err := os.ReadFile(lf)
	if err != nil || !strings.Contains(string(data), `"/b/"`) {
		t.Fatalf("listeners.json: %v, or no /b/ route in it", err)
	}
	if err := os.WriteFile(lf, []byte(strings.Replace(string(data), `"/b/"`, `"/bee/"`, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(get("http://"+Entries[0].Listen+"/bee/hello"), "hello from echo-b (GET /hello)") {
		if time.Now().After(deadline) {
			t.Fatal("the edited route was not pushed within 10 s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if v := m.Waypoint.ADSClient().Versions(); len(v) == 0 {
		t.Errorf("the waypoint holds no xDS versions")
	}
	var guide strings.Builder
	PrintGuide(&guide, m.Dir)
	for _, e := range Entries {
		if !strings.Contains(guide.String(), "curl -s http://"+e.Listen) {
			t.Errorf("the guide does not tell how to try %s", e.Listen)
		}
	}
}
