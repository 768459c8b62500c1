package localmesh

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"testing"
)

// benchGet runs b.N keep-alive GETs of url.
func benchGet(b *testing.B, url string) {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
	get := func() {
		resp, err := client.Get(url)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			b.Fatalf("status %d", resp.StatusCode)
		}
	}
	get()
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		get()
	}
	b.StopTimer()
	client.CloseIdleConnections()
}

// BenchmarkMeshRequest is one full request through the whole in-process
// mesh: client → source ztunnel → HBONE → the waypoint's HTTP connection
// manager, filters and router → HBONE → the pod's ztunnel → the backend,
// and the response all the way back. Allocations are the whole process's.
func BenchmarkMeshRequest(b *testing.B) {
	m, err := Start(Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close(context.Background())
	benchGet(b, "http://"+Entries[0].Listen+"/")
}

// BenchmarkBackendDirect is the reference: the same request straight to
// the pod's backend.
func BenchmarkBackendDirect(b *testing.B) {
	m, err := Start(Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close(context.Background())
	benchGet(b, "http://"+Pods[0].IP+":8080/")
}
