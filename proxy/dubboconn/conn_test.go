package dubboconn

import (
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	hessian "github.com/apache/dubbo-go-hessian2"

	"github.com/gowaypoint/waypoint/protocols/dubbo"
	"github.com/gowaypoint/waypoint/proxy/dubboconn/dubbotest"
)

func TestCallsAndRoutes(t *testing.T) {
	a := provider(t, podA, "pod-a", nil)
	b := provider(t, podB, "pod-b", nil)
	e := newEnv(t, envOptions{})
	c := e.consumer()
	ctx := ctxTimeout(t, 10*time.Second)
	cases := []struct {
		name    string
		service hessian.Service
		args    []any
		atts    map[string]string
		status  byte
		value   string // the answer, or a substring of the error message
	}{
		{"method route", greeter("toA"), []any{"alice"}, nil, 20, "pod-a: toA(alice)"},
		{"attachment route", greeter("hello"), []any{"bob"}, map[string]string{"x-pod": "b"}, 20, "pod-b: hello(bob)"},
		{"an object argument", greeter("toA"), []any{map[any]any{"k": "v"}, int32(3)}, nil, 20, "pod-a: toA(map[k:v], 3)"},
		{"another interface, the catch-all", hessian.Service{Path: "org.other.Svc", Method: "m"}, nil, map[string]string{"x-pod": "b"}, 20, ": m()"},
		{"fault abort 503", greeter("toA"), nil, map[string]string{"x-envoy-fault-abort-request": "503"}, 80, "fault filter abort (FI)"},
		{"fault abort 404", greeter("toA"), nil, map[string]string{"x-envoy-fault-abort-request": "404"}, 60, "fault filter abort"},
		{"fault abort 429", greeter("toA"), nil, map[string]string{"x-envoy-fault-abort-request": "429"}, 100, "fault filter abort"},
		{"denied", greeter("toA"), nil, map[string]string{"x-deny": "1"}, 40, "RBAC: access denied (UAEX)"},
		{"no healthy upstream", greeter("toEmpty"), nil, nil, 80, "no healthy upstream (UH)"},
		{"no route", hessian.Service{Path: "", Method: "m"}, nil, nil, 60, "no route for //m (NR)"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r, err := c.Call(ctx, tc.service, tc.args, tc.atts)
			if err != nil {
				t.Fatal(err)
			}
			if r.Status != tc.status {
				t.Fatalf("status %d (%q), want %d", r.Status, r.ErrorMessage, tc.status)
			}
			got := r.ErrorMessage
			if r.Status == 20 {
				got = fmt.Sprint(r.Value)
			}
			if !strings.Contains(got, tc.value) {
				t.Fatalf("answer %q, want %q", got, tc.value)
			}
		})
	}
	if a.Calls.Load() == 0 || b.Calls.Load() == 0 {
		t.Fatalf("calls: pod-a %d, pod-b %d", a.Calls.Load(), b.Calls.Load())
	}
}

func TestAttachmentsReachTheProvider(t *testing.T) {
	got := make(chan map[string]string, 2)
	h := func(c *dubbotest.Call) dubbotest.Reply {
		got <- c.Attachments
		return dubbotest.Reply{Value: "ok", Attachments: map[string]string{"dubbo": "2.0.2", "served-by": "a"}}
	}
	provider(t, podA, "pod-a", h)
	provider(t, podB, "pod-b", h)
	e := newEnv(t, envOptions{})
	c := e.consumer()
	ctx := ctxTimeout(t, 10*time.Second)
	for _, tagged := range []bool{false, true} {
		atts := map[string]string{"Trace-Id": "T-1", "timeout": "5000"}
		if tagged {
			atts["tag-me"] = "1"
		}
		r, err := c.Call(ctx, greeter("toA"), []any{"x"}, atts)
		if err != nil || r.Status != 20 || r.Value != "ok" {
			t.Fatalf("tagged %v: %+v %v", tagged, r, err)
		}
		if r.Attachments["served-by"] != "a" {
			t.Fatalf("the provider's attachments did not come back: %v", r.Attachments)
		}
		seen := <-got
		if seen["Trace-Id"] != "T-1" || seen["path"] != "com.example.Greeter" || seen["timeout"] != "5000" {
			t.Fatalf("tagged %v: the provider saw %v", tagged, seen)
		}
		if _, ok := seen["x-tagged"]; ok != tagged {
			t.Fatalf("tagged %v: x-tagged %q", tagged, seen["x-tagged"])
		}
	}
}

func TestManyCallsInFlight(t *testing.T) {
	const n = 1000
	var mu sync.Mutex
	arrived := 0
	all, giveUp := make(chan struct{}), make(chan struct{})
	h := func(c *dubbotest.Call) dubbotest.Reply {
		mu.Lock()
		if arrived++; arrived == n {
			close(all)
		}
		mu.Unlock()
		select { // every call is in flight before any is answered
		case <-all:
		case <-giveUp: // a call was lost: answer, so the providers can close
		}
		time.Sleep(time.Duration(rand.IntN(20)) * time.Millisecond)
		return dubbotest.Reply{Value: fmt.Sprintf("%s-%v", c.Method, c.Args[0])}
	}
	provider(t, podA, "pod-a", h)
	provider(t, podB, "pod-b", h)
	e := newEnv(t, envOptions{})
	c := e.consumer()
	ctx := ctxTimeout(t, 30*time.Second)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := c.Call(ctx, greeter("hello"), []any{int32(i)}, nil)
			switch {
			case err != nil:
				errs <- err
			case r.Status != 20 || r.Value != fmt.Sprintf("hello-%d", i):
				errs <- fmt.Errorf("call %d: status %d, answer %v", i, r.Status, r.Value)
			}
		}()
	}
	wg.Wait()
	close(giveUp)
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if c.Unmatched.Load() != 0 {
		t.Fatalf("%d answers matched no call", c.Unmatched.Load())
	}
}

func TestHeartbeats(t *testing.T) {
	a := provider(t, podA, "pod-a", nil)
	e := newEnv(t, envOptions{upstream: UpstreamConfig{HeartbeatInterval: 100 * time.Millisecond}})
	c := e.consumer()
	ctx := ctxTimeout(t, 10*time.Second)
	// Downstream: the waypoint answers the consumer's heartbeat itself.
	r, err := c.Heartbeat(ctx)
	if err != nil || !r.Event || r.Status != 20 {
		t.Fatalf("heartbeat: %+v %v", r, err)
	}
	if _, err := c.Call(ctx, greeter("toA"), nil, nil); err != nil {
		t.Fatal(err)
	}
	if a.Heartbeats.Load() != 0 {
		t.Fatal("the consumer's heartbeat was forwarded")
	}
	// Upstream: the waypoint answers the provider's heartbeats, and
	// sends its own on a quiet connection.
	if a.SendHeartbeats() != 1 {
		t.Fatal("the provider has no connection from the waypoint")
	}
	waitFor(t, "the waypoint's answer to the provider's heartbeat", func() bool { return a.HeartbeatAnswers.Load() == 1 })
	waitFor(t, "a heartbeat from the waypoint", func() bool { return a.Heartbeats.Load() > 0 })
	if c.Heartbeats.Load() != 0 {
		t.Fatal("a heartbeat reached the consumer")
	}
}

func TestOneWay(t *testing.T) {
	got := make(chan string, 1)
	provider(t, podA, "pod-a", func(c *dubbotest.Call) dubbotest.Reply {
		if !c.TwoWay {
			got <- c.Method
		}
		return dubbotest.Reply{Value: "two-way"}
	})
	e := newEnv(t, envOptions{})
	c := e.consumer()
	ctx := ctxTimeout(t, 10*time.Second)
	frame, err := dubbotest.Request(c.NextID(), false, greeter("toA"), []any{"fire"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Send(frame); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-got:
		if m != "toA" {
			t.Fatalf("one-way call %q", m)
		}
	case <-ctx.Done():
		t.Fatal("the one-way call did not reach the provider")
	}
	// A one-way call the waypoint refuses gets no answer either.
	frame, _ = dubbotest.Request(c.NextID(), false, hessian.Service{Path: "nowhere", Method: "m"}, nil,
		map[string]string{"x-envoy-fault-abort-request": "503"})
	c.Send(frame)
	r, err := c.Call(ctx, greeter("toA"), nil, nil)
	if err != nil || r.Value != "two-way" {
		t.Fatalf("a call after: %+v %v", r, err)
	}
	if c.Unmatched.Load() != 0 {
		t.Fatalf("%d answers to one-way calls", c.Unmatched.Load())
	}
}

func TestRefusals(t *testing.T) {
	provider(t, podA, "pod-a", nil)
	provider(t, podB, "pod-b", nil)
	e := newEnv(t, envOptions{env: &Env{MaxBodyBytes: 4096}})
	ctx := ctxTimeout(t, 10*time.Second)
	good := func(c *dubbotest.Consumer) {
		t.Helper()
		r, err := c.Call(ctx, greeter("toA"), []any{"still"}, nil)
		if err != nil || r.Status != 20 || r.Value != "pod-a: toA(still)" {
			t.Fatalf("the call after: %+v %v", r, err)
		}
	}
	body := func(frame []byte, mutate func([]byte) []byte) []byte {
		b := mutate(append([]byte{}, frame[dubbo.HeaderLen:]...))
		out := append(append([]byte{}, frame[:dubbo.HeaderLen]...), b...)
		binary.BigEndian.PutUint32(out[12:], uint32(len(b)))
		return out
	}
	req := func(id int64, svc hessian.Service, args ...any) []byte {
		f, err := dubbotest.Request(id, true, svc, args, nil)
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	cases := []struct {
		name   string
		frame  func(id int64) []byte
		status byte
		msg    string
	}{
		{"over the body limit", func(id int64) []byte { return req(id, greeter("toA"), strings.Repeat("x", 5000)) },
			40, "body over the size limit"},
		{"a body cut short inside the frame", func(id int64) []byte {
			return body(req(id, greeter("toA"), "abc"), func(b []byte) []byte { return b[:len(b)-6] })
		}, 40, "request attachments"},
		{"a malformed argument", func(id int64) []byte {
			return body(req(id, greeter("toA"), "abc"), func(b []byte) []byte {
				i := strings.Index(string(b), "abc")
				b[i-1] = 0x40 // a reserved tag where the argument starts
				return b
			})
		}, 40, "request argument 0"},
		{"kryo falls back to the service-level route", func(id int64) []byte {
			f := req(id, greeter("toA"), "abc")
			f[2] = f[2]&^0x1f | 8 // the provider reads it as Hessian2 whatever the header says
			return f
		}, 20, ""},
		{"an unrouted service", func(id int64) []byte {
			return req(id, hessian.Service{Path: "", Method: "m"})
		}, 60, "no route for //m"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := e.consumer()
			id := c.NextID()
			r, err := c.RoundTrip(ctx, id, tc.frame(id))
			if err != nil {
				t.Fatal(err)
			}
			if r.Status != tc.status || !strings.Contains(r.ErrorMessage, tc.msg) {
				t.Fatalf("status %d %q, want %d and %q", r.Status, r.ErrorMessage, tc.status, tc.msg)
			}
			good(c)
		})
	}

	t.Run("bad magic", func(t *testing.T) {
		c := e.consumer()
		good(c)
		c.Send([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
		select {
		case <-c.Done():
		case <-ctx.Done():
			t.Fatal("the connection stayed open after bytes that are not Dubbo's")
		}
	})
	t.Run("a stream cut inside a body", func(t *testing.T) {
		c := e.consumer()
		id := c.NextID()
		ch, _ := c.Expect(id)
		f := req(id, greeter("toA"), "abc")
		c.Send(f[:len(f)-3])
		c.CloseWrite()
		r, err := c.Wait(ctx, id, ch)
		if err != nil || r.Status != 40 || !strings.Contains(r.ErrorMessage, "inside the body") {
			t.Fatalf("%+v %v", r, err)
		}
		<-c.Done()
	})
}

func TestTimeoutAttachment(t *testing.T) {
	release := make(chan struct{})
	provider(t, podA, "pod-a", func(c *dubbotest.Call) dubbotest.Reply {
		if c.Method == "slow" {
			<-release
		}
		return dubbotest.Reply{Value: "late"}
	})
	defer close(release)
	e := newEnv(t, envOptions{clusters: []clusterT{{"a", addrs(podA)}, {"b", addrs(podA)}, {"ab", addrs(podA)}, {"empty", nil}}})
	c := e.consumer()
	ctx := ctxTimeout(t, 10*time.Second)
	start := time.Now()
	r, err := c.Call(ctx, greeter("slow"), nil, map[string]string{"timeout": "200"})
	if err != nil {
		t.Fatal(err)
	}
	if r.Status != 31 || !strings.Contains(r.ErrorMessage, "upstream timeout") {
		t.Fatalf("status %d %q, want 31", r.Status, r.ErrorMessage)
	}
	if d := time.Since(start); d < 200*time.Millisecond {
		t.Fatalf("answered after %v, before the timeout", d)
	}
	if r, err := c.Call(ctx, greeter("fast"), nil, nil); err != nil || r.Value != "late" {
		t.Fatalf("after a timeout: %+v %v", r, err)
	}
}

func TestRetries(t *testing.T) {
	busy := provider(t, podA, "pod-a", func(c *dubbotest.Call) dubbotest.Reply {
		return dubbotest.Reply{Status: 100, ErrorMessage: "pod-a: threadpool exhausted"}
	})
	provider(t, podB, "pod-b", nil)
	e := newEnv(t, envOptions{})
	c := e.consumer()
	ctx := ctxTimeout(t, 10*time.Second)
	for i := range 10 {
		r, err := c.Call(ctx, greeter("hello"), []any{int32(i)}, nil)
		if err != nil || r.Status != 20 || !strings.HasPrefix(fmt.Sprint(r.Value), "pod-b") {
			t.Fatalf("call %d: %+v %v", i, r, err)
		}
	}
	if busy.Calls.Load() == 0 {
		t.Fatal("the busy provider was never tried")
	}
}

func TestProviderKilledMidCall(t *testing.T) {
	inA := make(chan struct{}, 1)
	var a *dubbotest.Provider
	a = provider(t, podA, "pod-a", func(c *dubbotest.Call) dubbotest.Reply {
		if len(c.Args) > 0 && c.Args[0] == "hang" {
			inA <- struct{}{}
			<-a.Killed() // never answers: the provider dies first
		}
		return dubbotest.Reply{Value: "pod-a"}
	})
	provider(t, podB, "pod-b", func(c *dubbotest.Call) dubbotest.Reply { return dubbotest.Reply{Value: "pod-b"} })
	e := newEnv(t, envOptions{})
	c := e.consumer()
	ctx := ctxTimeout(t, 10*time.Second)
	type result struct {
		r   *dubbotest.Response
		err error
	}
	hung := make(chan result, 1)
	go func() {
		r, err := c.Call(ctx, greeter("toA"), []any{"hang"}, map[string]string{"timeout": "8000"})
		hung <- result{r, err}
	}()
	<-inA
	a.Kill()
	start := time.Now()
	res := <-hung
	if res.err != nil {
		t.Fatal(res.err)
	}
	if res.r.Status != 80 || !strings.Contains(res.r.ErrorMessage, "closed") {
		t.Fatalf("the call in flight: status %d %q, want 80", res.r.Status, res.r.ErrorMessage)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("the call in flight was answered %v after the provider died", d)
	}
	// Later calls: a try on the dead pod fails to connect and is retried
	// on the other.
	for i := range 10 {
		r, err := c.Call(ctx, greeter("hello"), []any{int32(i)}, nil)
		if err != nil || r.Status != 20 || r.Value != "pod-b" {
			t.Fatalf("call %d after the kill: %+v %v", i, r, err)
		}
	}
}

func TestReadonlyProvider(t *testing.T) {
	a := provider(t, podA, "pod-a", func(*dubbotest.Call) dubbotest.Reply { return dubbotest.Reply{Value: "pod-a"} })
	provider(t, podB, "pod-b", func(*dubbotest.Call) dubbotest.Reply { return dubbotest.Reply{Value: "pod-b"} })
	e := newEnv(t, envOptions{})
	c := e.consumer()
	ctx := ctxTimeout(t, 10*time.Second)
	seen := map[any]int{}
	for i := range 10 {
		r, err := c.Call(ctx, greeter("hello"), []any{int32(i)}, nil)
		if err != nil {
			t.Fatal(err)
		}
		seen[r.Value]++
	}
	if seen["pod-a"] == 0 || seen["pod-b"] == 0 {
		t.Fatalf("before: %v", seen)
	}
	if a.SendReadonly() != 1 {
		t.Fatal("pod-a has no connection from the waypoint")
	}
	waitFor(t, "the readonly event to be seen", func() bool { return e.ups.pool("ab", netip.MustParseAddrPort(podA)).isReadonly() })
	before := a.Calls.Load()
	for i := range 20 {
		r, err := c.Call(ctx, greeter("hello"), []any{int32(i)}, nil)
		if err != nil || r.Value != "pod-b" {
			t.Fatalf("call %d after readonly: %+v %v", i, r, err)
		}
	}
	if a.Calls.Load() != before {
		t.Fatalf("%d calls reached the read-only provider", a.Calls.Load()-before)
	}
}

func TestInFlightLimit(t *testing.T) {
	release := make(chan struct{})
	provider(t, podA, "pod-a", func(c *dubbotest.Call) dubbotest.Reply {
		<-release
		return dubbotest.Reply{Value: "ok"}
	})
	e := newEnv(t, envOptions{env: &Env{MaxInFlight: 2}, clusters: []clusterT{{"a", addrs(podA)}, {"b", addrs(podA)}, {"ab", addrs(podA)}, {"empty", nil}}})
	c := e.consumer()
	ctx := ctxTimeout(t, 10*time.Second)
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if r, err := c.Call(ctx, greeter("toA"), nil, nil); err != nil || r.Value != "ok" {
				t.Errorf("%+v %v", r, err)
			}
		}()
	}
	waitFor(t, "two calls in flight", func() bool { return e.ups.pool("a", netip.MustParseAddrPort(podA)).inFlight() == 2 })
	r, err := c.Call(ctx, greeter("toA"), nil, nil)
	if err != nil || r.Status != 100 || !strings.Contains(r.ErrorMessage, "more than 2 calls in flight") {
		t.Fatalf("the third call: %+v %v", r, err)
	}
	close(release)
	wg.Wait()
}

func addrs(s ...string) []netip.AddrPort {
	var out []netip.AddrPort
	for _, a := range s {
		out = append(out, netip.MustParseAddrPort(a))
	}
	return out
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestNotDubboRelayedAsTCP(t *testing.T) {
	provider(t, podA, "pod-a", nil)
	echoAddr := "127.0.50.13:20880"
	serveTCP(t, echoAddr, func(c net.Conn) { io.Copy(c, c) })
	// The service-level route (interface "*", no conditions) goes to
	// cluster ab: here the echo server.
	e := newEnv(t, envOptions{clusters: []clusterT{{"a", addrs(podA)}, {"b", addrs(podA)}, {"ab", addrs(echoAddr)}, {"empty", nil}}})
	c, err := net.Dial("tcp", e.ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	msg := "GET / HTTP/1.1\r\nHost: not-dubbo\r\n\r\n"
	if _, err := io.WriteString(c, msg); err != nil {
		t.Fatal(err)
	}
	c.(*net.TCPConn).CloseWrite()
	got, err := io.ReadAll(c)
	if err != nil || string(got) != msg {
		t.Fatalf("relayed back %q, %v", got, err)
	}
	// Dubbo on another connection is still served as Dubbo.
	d := e.consumer()
	if r, err := d.Call(ctxTimeout(t, 10*time.Second), greeter("toA"), nil, nil); err != nil || r.Value != "pod-a: toA()" {
		t.Fatalf("%+v %v", r, err)
	}
}

func TestSilentProviderClosedByHeartbeat(t *testing.T) {
	// A provider that reads and never writes, not even heartbeats.
	serveTCP(t, podA, func(c net.Conn) { io.Copy(io.Discard, c) })
	e := newEnv(t, envOptions{upstream: UpstreamConfig{HeartbeatInterval: 50 * time.Millisecond}})
	c := e.consumer()
	start := time.Now()
	r, err := c.Call(ctxTimeout(t, 10*time.Second), greeter("toA"), nil, map[string]string{"timeout": "5000"})
	if err != nil {
		t.Fatal(err)
	}
	if r.Status != 80 || !strings.Contains(r.ErrorMessage, "no heartbeat from the provider") {
		t.Fatalf("status %d %q, want 80 for a dead connection", r.Status, r.ErrorMessage)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("answered after %v: the dead connection was not noticed by its heartbeats", d)
	}
}

// serveTCP serves every connection to addr with handle, on goroutines
// that end, with the listener, when the test does; handle's connection is
// closed when it returns.
func serveTCP(t *testing.T, addr string, handle func(net.Conn)) {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				handle(c)
			}()
		}
	}()
}
