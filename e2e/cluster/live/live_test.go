package live

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
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
	if h := header.Get("Host"); h != "" {
		req.Host = h // what a client resolving the name to the VIP sends
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
	if resp.Header.Get("x-pod") != "" {
		if err := json.Unmarshal(b, &r); err != nil {
			return resp.StatusCode, r, fmt.Errorf("%s %s: %v: %q", method, url, err, b)
		}
	}
	return resp.StatusCode, r, nil
}
