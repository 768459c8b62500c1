package http2

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"testing"

	"github.com/gowaypoint/waypoint/protocols/l7"
)

// routedHandler is the server side of the interop tests: "/late" reads
// the whole request before answering in four chunks; "/early" answers
// and ends its side at once, then reads the request to its end and
// reports the byte count on early; anything else echoes.
func routedHandler(early chan<- int64) Handler {
	return HandlerFunc(func(st *ServerStream) {
		req := st.Request()
		switch string(req.Path) {
		case "/late":
			body, err := io.ReadAll(req.Body)
			if err != nil {
				return
			}
			if err := st.WriteHeaders(&l7.Response{Status: 200}, false); err != nil {
				return
			}
			for i := 0; i < 4; i++ {
				if _, err := st.Write(body[i*len(body)/4 : (i+1)*len(body)/4]); err != nil {
					return
				}
			}
			st.CloseWrite()
		case "/early":
			resp := &l7.Response{Status: 200, Body: bytes.NewReader([]byte("early")), ContentLength: 5}
			if err := st.WriteResponse(resp); err != nil {
				return
			}
			n, _ := io.Copy(io.Discard, req.Body)
			early <- n
		default:
			echoHandler(st)
		}
	})
}

func TestXNetClientBodies(t *testing.T) {
	ts := startServer(t, Config{}, routedHandler(nil))
	client := xnetClient(t)
	for _, size := range []int{0, 1, 1 << 10, 16<<10 + 1, 64 << 10, 1 << 20, 8 << 20} {
		for _, trailers := range []bool{false, true} {
			t.Run(fmt.Sprintf("%d/trailers=%v", size, trailers), func(t *testing.T) {
				body := pattern(size)
				req, _ := http.NewRequest("POST", "http://"+ts.addr()+"/echo", bytes.NewReader(body))
				req.Header.Set("X-Size", fmt.Sprint(size))
				if trailers {
					req.Trailer = http.Header{"X-Checksum": {"abc"}}
					// net/http drops an empty body (NoBody) and with it the
					// trailers: keep a real one.
					req.Body = io.NopCloser(bytes.NewReader(body))
				}
				resp, err := client.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				got, err := io.ReadAll(resp.Body)
				if err != nil {
					t.Fatal(err)
				}
				if resp.StatusCode != 200 || !bytes.Equal(got, body) {
					t.Fatalf("status %d, body %d bytes, want %d", resp.StatusCode, len(got), size)
				}
				if v := resp.Header.Get("X-Size"); v != fmt.Sprint(size) {
					t.Fatalf("x-size %q", v)
				}
				wantTrailer := ""
				if trailers {
					wantTrailer = "abc"
				}
				if v := resp.Trailer.Get("X-Checksum"); v != wantTrailer {
					t.Fatalf("trailer %q, want %q", v, wantTrailer)
				}
			})
		}
	}
}

func TestXNetClientConcurrentStreams(t *testing.T) {
	ts := startServer(t, Config{MaxConcurrentStreams: 250}, routedHandler(nil))
	client := xnetClient(t)
	// One request first, so that the client has our SETTINGS (250
	// streams) before the burst; until then it assumes 100.
	if resp, err := client.Get("http://" + ts.addr() + "/echo"); err != nil {
		t.Fatal(err)
	} else {
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	const n = 200
	// Every stream waits until all are open, so 200 are in flight at once.
	var started sync.WaitGroup
	started.Add(n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pr, pw := io.Pipe()
			req, _ := http.NewRequest("POST", "http://"+ts.addr()+"/echo", pr)
			go func() {
				pw.Write([]byte("hello"))
				started.Done()
				started.Wait()
				pw.Write([]byte(fmt.Sprint(i)))
				pw.Close()
			}()
			resp, err := client.Do(req)
			if err != nil {
				errs <- err
				return
			}
			defer resp.Body.Close()
			got, err := io.ReadAll(resp.Body)
			if err != nil || string(got) != fmt.Sprint("hello", i) {
				errs <- fmt.Errorf("stream %d: %q, %v", i, got, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	ts.mu.Lock()
	conns := len(ts.conns)
	ts.mu.Unlock()
	if conns != 1 {
		t.Fatalf("%d connections, want 1", conns)
	}
}

// TestXNetClientFullDuplex: each chunk comes back before the next is sent.
func TestXNetClientFullDuplex(t *testing.T) {
	for _, method := range []string{"POST", "CONNECT"} {
		t.Run(method, func(t *testing.T) {
			ts := startServer(t, Config{}, routedHandler(nil))
			client := xnetClient(t)
			pr, pw := io.Pipe()
			req := &http.Request{Method: method, URL: &url.URL{Scheme: "http", Host: ts.addr(), Path: "/echo"},
				Header: http.Header{}, Body: pr, ContentLength: -1}
			if method == "CONNECT" {
				req.Host = "10.0.0.1:8080"
				req.URL.Path = ""
			}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			for i := 0; i < 10; i++ {
				chunk := bytes.Repeat([]byte{byte('a' + i)}, 1000+i)
				if _, err := pw.Write(chunk); err != nil {
					t.Fatal(err)
				}
				got := make([]byte, len(chunk))
				if _, err := io.ReadFull(resp.Body, got); err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, chunk) {
					t.Fatalf("chunk %d differs", i)
				}
			}
			pw.Close()
			if rest, err := io.ReadAll(resp.Body); err != nil || len(rest) != 0 {
				t.Fatalf("after close: %q %v", rest, err)
			}
		})
	}
}

// TestXNetClientHalfClose: the server ends its side while the client
// still sends (early), and the client ends its side while the server
// still sends (late).
func TestXNetClientHalfClose(t *testing.T) {
	early := make(chan int64, 1)
	ts := startServer(t, Config{}, routedHandler(early))
	client := xnetClient(t)

	t.Run("server", func(t *testing.T) {
		pr, pw := io.Pipe()
		req, _ := http.NewRequest("POST", "http://"+ts.addr()+"/early", pr)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(resp.Body)
		if err != nil || string(got) != "early" {
			t.Fatalf("response %q %v", got, err)
		}
		// The response is over; the request still streams.
		for i := 0; i < 5; i++ {
			if _, err := pw.Write(make([]byte, 10000)); err != nil {
				t.Fatal(err)
			}
		}
		pw.Close()
		if n := <-early; n != 50000 {
			t.Fatalf("server read %d bytes after ending its side, want 50000", n)
		}
		resp.Body.Close()
	})
	t.Run("client", func(t *testing.T) {
		body := pattern(100000)
		req, _ := http.NewRequest("POST", "http://"+ts.addr()+"/late", bytes.NewReader(body))
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		got, err := io.ReadAll(resp.Body)
		if err != nil || !bytes.Equal(got, body) {
			t.Fatalf("late response: %d bytes, %v", len(got), err)
		}
	})
	_ = context.Background
}
