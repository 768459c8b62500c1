package live

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"
)

// call sends an HTTP/1.1 request from source sa through the waypoint to url (a VIP or pod
// address) and returns the status and, on 200, the echo's reply.
func (w *world) call(sa, method, url string, header http.Header) (int, echoReply, error) {
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		return 0, echoReply{}, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := w.source(sa).HTTP().Do(req)
	if err != nil {
		return 0, echoReply{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, echoReply{}, err
	}
	var r echoReply
	if resp.StatusCode == http.StatusOK && resp.Header.Get("x-pod") != "" {
		if err := json.Unmarshal(b, &r); err != nil {
			return resp.StatusCode, r, fmt.Errorf("%s %s: %v: %q", method, url, err, b)
		}
	}
	return resp.StatusCode, r, nil
}

func TestSmoke(t *testing.T) {
	w := newWorld(t, 1, "smoke")
	w.workload("reviews-v1", "reviews", map[string]string{"app": "reviews", "version": "v1"}, 9080)
	w.apply(`
apiVersion: v1
kind: Service
metadata:
  name: reviews
  namespace: {{NS}}
  labels:
    istio.io/use-waypoint: waypoint
spec:
  selector: {app: reviews}
  ports:
  - name: http
    port: 9080
`)
	vip := w.serviceVIP("reviews")
	w.eventually(30*time.Second, "a request through the waypoint", func() error {
		code, r, err := w.call("sleep", "GET", "http://"+vip+":9080/hello", nil)
		if err != nil {
			return err
		}
		if code != 200 || r.Pod != "reviews-v1" {
			return fmt.Errorf("got %d from %q", code, r.Pod)
		}
		return nil
	})
	w.synced()
	_ = context.Background
}
