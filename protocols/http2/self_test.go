package http2

import (
	"bytes"
	"context"
	"io"
	"testing"

	"github.com/gowaypoint/waypoint/protocols/l7"
)

func TestSelfSmoke(t *testing.T) {
	ts := startServer(t, Config{}, echoHandler)
	cc := dialClient(t, ts.addr(), Config{})
	req := newRequest("POST", "example.com", "/echo")
	req.Header.Add("x-test", "1")
	body := bytes.Repeat([]byte("a"), 100)
	req.Body = bytes.NewReader(body)
	req.ContentLength = int64(len(body))
	resp, err := cc.RoundTrip(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Status != 200 {
		t.Fatalf("status %d", resp.Status)
	}
	got, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, body) {
		t.Fatalf("body %q", got)
	}
	if v := resp.Header.GetString("x-test"); v != "1" {
		t.Fatalf("x-test %q", v)
	}
	_ = l7.HTTP2
}
