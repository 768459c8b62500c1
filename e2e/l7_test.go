package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	grpcstatus "google.golang.org/grpc/status"

	"github.com/gowaypoint/waypoint/protocols/http2/h2spectest"
)

// client is a keep-alive HTTP/1.1 client for the tests.
func httpClient() *http.Client {
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true}}
}

func getResp(t *testing.T, c *http.Client, url string, header ...string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(body)
}

func TestL7Routing(t *testing.T) {
	t.Parallel()
	e := newL7Env(t, 11)
	c := httpClient()
	base := "http://" + e.web()

	cases := []struct {
		name, path      string
		header          []string
		wantPod, wantIn string
		wantStatus      int
		wantSeenPath    string
		wantProto       string
	}{
		{"default route to pod a over HTTP/1.1", "/hello", nil, "pod-a", "hello from pod-a /hello", 200, "/hello", "HTTP/1.1"},
		{"header route to pod b over HTTP/2 upstream", "/hello", []string{"x-pod", "b"}, "pod-b", "hello from pod-b /hello", 200, "/hello", "HTTP/2.0"},
		{"path route with prefix rewrite", "/b/x?q=1", nil, "pod-b", "hello from pod-b /x", 200, "/x?q=1", "HTTP/2.0"},
		{"direct response", "/anything", []string{"x-forbid", "yes"}, "", "forbidden here", 403, "", ""},
		{"fault abort per route", "/teapot", nil, "", "fault filter abort", 418, "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := getResp(t, c, base+tc.path, tc.header...)
			if resp.StatusCode != tc.wantStatus || resp.Header.Get("x-pod") != tc.wantPod || body != tc.wantIn {
				t.Errorf("got %d from %q: %q; want %d from %q: %q", resp.StatusCode, resp.Header.Get("x-pod"), body, tc.wantStatus, tc.wantPod, tc.wantIn)
			}
			if tc.wantSeenPath != "" && (resp.Header.Get("x-seen-path") != tc.wantSeenPath || resp.Header.Get("x-seen-proto") != tc.wantProto) {
				t.Errorf("backend saw %s %q, want %s %q", resp.Header.Get("x-seen-proto"), resp.Header.Get("x-seen-path"), tc.wantProto, tc.wantSeenPath)
			}
			// Route configuration response headers apply to what the router
			// answers, upstream or direct, not to a filter's local reply.
			wantVersion := "v1"
			if tc.wantStatus == 418 {
				wantVersion = ""
			}
			if resp.Header.Get("x-config-version") != wantVersion {
				t.Errorf("x-config-version %q, want %q", resp.Header.Get("x-config-version"), wantVersion)
			}
		})
	}

	t.Run("80/20 split over 10,000 requests", func(t *testing.T) {
		const n, workers = 10000, 8
		var mu sync.Mutex
		counts := map[string]int{}
		var wg sync.WaitGroup
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := w; i < n; i += workers {
					resp, err := c.Get(base + "/split/x")
					if err != nil {
						t.Error(err)
						return
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					mu.Lock()
					counts[resp.Header.Get("x-pod")]++
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		share := float64(counts["pod-a"]) / n
		t.Logf("split: %v (pod-a %.2f%%)", counts, 100*share)
		if counts["pod-a"]+counts["pod-b"] != n || share < 0.77 || share > 0.83 {
			t.Errorf("split %v: pod-a share %.3f, want 0.80 ± 0.03 of %d", counts, share, n)
		}
	})
}

func TestL7RetriesAndTimeouts(t *testing.T) {
	t.Parallel()
	e := newL7Env(t, 12)
	c := httpClient()
	base := "http://" + e.web()
	pod := e.pods["pod-a"]

	t.Run("half the answers 503, retried", func(t *testing.T) {
		const n, workers = 2000, 8
		var okCount atomic.Int64
		var wg sync.WaitGroup
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := w; i < n; i += workers {
					resp, _ := getResp(t, c, base+"/flaky/x")
					if resp.StatusCode == 200 {
						okCount.Add(1)
					}
				}
			}()
		}
		wg.Wait()
		ok := int(okCount.Load())
		seen := pod.requests("/flaky/")
		t.Logf("flaky: %d of %d succeeded; backend answered %d requests, half of them 503", ok, n, seen)
		if float64(ok)/n < 0.995 || seen < 2*n {
			t.Errorf("%d of %d succeeded, want >= 99.5%%", ok, n)
		}
	})

	t.Run("per-try timeout, then 504", func(t *testing.T) {
		before := pod.requests("/per-try/")
		start := time.Now()
		resp, _ := getResp(t, c, base+"/per-try/x")
		took := time.Since(start)
		tries := pod.requests("/per-try/") - before
		if resp.StatusCode != 504 || tries != 2 {
			t.Errorf("status %d after %d tries in %v; want 504 after 2 tries of 0.3s", resp.StatusCode, tries, took)
		}
	})

	t.Run("route timeout, 504", func(t *testing.T) {
		resp, body := getResp(t, c, base+"/slow/x")
		if resp.StatusCode != 504 || !strings.Contains(body, "upstream request timeout") {
			t.Errorf("got %d %q, want 504 upstream request timeout", resp.StatusCode, body)
		}
	})

	t.Run("a POST over the retry buffer is not retried", func(t *testing.T) {
		for _, tc := range []struct {
			size      int
			wantTries int
		}{{1 << 10, 4}, {2 << 20, 1}} {
			before := pod.requests("/upload/")
			resp, err := c.Post(base+"/upload/x", "application/octet-stream", bytes.NewReader(make([]byte, tc.size)))
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if tries := pod.requests("/upload/") - before; resp.StatusCode != 503 || tries != tc.wantTries {
				t.Errorf("POST of %d bytes: %d after %d tries, want 503 after %d", tc.size, resp.StatusCode, tries, tc.wantTries)
			}
		}
	})
}

// fortioResult is the part of fortio's JSON result the tests read.
type fortioResult struct {
	RetCodes          map[string]int64
	ActualQPS         float64
	DurationHistogram struct {
		Count       int64
		Percentiles []struct {
			Percentile float64
			Value      float64
		}
	}
}

// fortioLoad runs fortio load and returns its JSON result.
func fortioLoad(t *testing.T, args ...string) fortioResult {
	t.Helper()
	out := filepath.Join(t.TempDir(), "result.json")
	cmd := exec.Command(tool(t, "fortio"), append([]string{"load", "-quiet", "-json", out}, args...)...)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("fortio %v: %v\n%s", args, err, b)
	}
	raw, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var r fortioResult
	if err := json.Unmarshal(raw, &r); err != nil {
		t.Fatal(err)
	}
	return r
}

func (r fortioResult) errors() int64 {
	var bad int64
	for code, n := range r.RetCodes {
		if code != "200" {
			bad += n
		}
	}
	return bad
}

func TestL7FortioLoad(t *testing.T) {
	t.Parallel()
	e := newL7Env(t, 13)
	for _, tc := range []struct {
		name  string
		extra []string
	}{{"HTTP/1.1", nil}, {"h2c", []string{"-h2"}}} {
		t.Run(tc.name, func(t *testing.T) {
			// A count, not a duration: a loaded machine makes the run
			// longer, never the assertion weaker.
			args := append([]string{"-qps", "1000", "-n", "10000", "-c", "16"}, tc.extra...)
			r := fortioLoad(t, append(args, "http://"+e.web()+"/load")...)
			t.Logf("%s: %v requests at %.0f qps, codes %v", tc.name, r.DurationHistogram.Count, r.ActualQPS, r.RetCodes)
			if r.errors() != 0 || r.RetCodes["200"] != 10000 {
				t.Errorf("codes %v, want 10,000 200s", r.RetCodes)
			}
		})
	}
}

func TestL7ReloadUnderLoad(t *testing.T) {
	t.Parallel()
	e := newL7Env(t, 14)
	done := make(chan fortioResult, 1)
	go func() { done <- fortioLoad(t, "-qps", "1000", "-t", "12s", "-c", "16", "http://"+e.web()+"/load") }()
	c := httpClient()
	// served waits until pod a has answered n more of the load's requests
	// than when it was called: the load is flowing through the config in
	// force.
	served := func(n int, what string) {
		t.Helper()
		target := e.pods["pod-a"].requests("/load") + n
		deadline := time.Now().Add(10 * time.Second)
		for e.pods["pod-a"].requests("/load") < target {
			if time.Now().After(deadline) {
				t.Fatalf("%s: the load did not reach pod a", what)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	served(100, "before the first reload")
	for i := 1; i <= 20; i++ {
		version := fmt.Sprintf("v%d", i+1)
		e.writeL7Config(version)
		e.waypoint.cmd.Process.Signal(sighup)
		deadline := time.Now().Add(10 * time.Second)
		for {
			resp, _ := getResp(t, c, "http://"+e.web()+"/probe")
			if resp.Header.Get("x-config-version") == version {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("reload %d never took effect", i)
			}
			time.Sleep(20 * time.Millisecond)
		}
		served(100, fmt.Sprintf("after reload %d", i))
	}
	// A config that does not validate is refused; the last good one serves.
	bad := strings.Replace(l7Template, "cluster: pod-a}", "cluster: no-such-cluster}", 1)
	e.writeConfigFrom(strings.ReplaceAll(bad, "CONFIG_VERSION", "bad"), e)
	e.waypoint.cmd.Process.Signal(sighup)
	waitLog(t, e.waypoint, "config reload refused", `unknown cluster \"no-such-cluster\"`)
	resp, _ := getResp(t, c, "http://"+e.web()+"/probe")
	if resp.StatusCode != 200 || resp.Header.Get("x-config-version") != "v21" {
		t.Errorf("after a refused reload: %d version %q, want 200 from v21", resp.StatusCode, resp.Header.Get("x-config-version"))
	}
	r := <-done
	t.Logf("under 20 reloads: %d requests, codes %v", r.DurationHistogram.Count, r.RetCodes)
	if r.errors() != 0 {
		t.Errorf("failed requests during reloads: %v", r.RetCodes)
	}
}

func TestL7GRPCInterop(t *testing.T) {
	t.Parallel()
	e := newL7Env(t, 15)
	host, port, _ := strings.Cut(e.grpcSvc(), ":")
	cases := []string{"empty_unary", "large_unary", "client_streaming", "server_streaming", "ping_pong", "empty_stream",
		"timeout_on_sleeping_server", "cancel_after_begin", "cancel_after_first_response", "status_code_and_message",
		"special_status_message", "custom_metadata", "unimplemented_method", "unimplemented_service", "rpc_soak"}
	for _, tc := range cases {
		t.Run(tc, func(t *testing.T) {
			cmd := exec.Command(tool(t, "interop-client"), "--server_host", host, "--server_port", port, "--test_case", tc)
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("%s failed: %v\n%s", tc, err, out)
			}
		})
	}
}

func TestL7LocalReplyPerProtocol(t *testing.T) {
	t.Parallel()
	e := newL7Env(t, 16)
	resp, body := getResp(t, httpClient(), "http://"+e.web()+"/x", "x-forbid", "yes")
	if resp.StatusCode != 403 || body != "forbidden here" {
		t.Errorf("HTTP/1.1 client: %d %q, want 403", resp.StatusCode, body)
	}
	conn, err := grpc.NewClient(e.grpcSvc(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	client := testgrpc.NewTestServiceClient(conn)
	if _, err := client.EmptyCall(ctx, &testgrpc.Empty{}); err != nil {
		t.Fatalf("gRPC through the waypoint: %v", err)
	}
	_, err = client.EmptyCall(metadata.AppendToOutgoingContext(ctx, "x-forbid", "yes"), &testgrpc.Empty{})
	st := grpcstatus.Convert(err)
	if st.Code() != codes.PermissionDenied || st.Message() != "forbidden here" {
		t.Errorf("gRPC client: %v %q, want PermissionDenied (7) %q", st.Code(), st.Message(), "forbidden here")
	}
}

// TestL7H2Spec runs h2spec (see protocols/http2/h2spectest) through a
// tunnel: h2spec → hbone connect → HBONE → the waypoint's HTTP/2 engine →
// the router → pod a's backend. Every case must pass. The backend reads
// each request whole before it answers: an answer that could end a stream
// before h2spec is done with it (a direct response) would have the engine
// reset the stream with NO_ERROR and ignore what h2spec sends next on it,
// as RFC 9113 allows, where h2spec waits for an error (bench/README.md,
// "h2spec").
func TestL7H2Spec(t *testing.T) {
	t.Parallel()
	e := newL7Env(t, 17)
	host, port, _ := strings.Cut(e.h2only(), ":")
	r := h2spectest.Run(t, host, port, 5*time.Second)
	h2spectest.Check(t, r, nil)
}
