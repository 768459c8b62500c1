package extauthz

import (
	"bytes"
	"context"
	"fmt"
	"strconv"

	"github.com/gowaypoint/waypoint/filters"
	"github.com/gowaypoint/waypoint/protocols/l7"
)

// httpDefaultHeaders always go in an HTTP check, besides the allowed ones
// (Envoy's Host, Method, Path, Content-Length and Authorization; the
// first three travel as the check's own :authority, method and path).
var httpDefaultHeaders = [][]byte{[]byte("authorization")}

// clientDefaultHeaders go on a denial besides allowed_client_headers.
var clientDefaultHeaders = [][]byte{[]byte("www-authenticate"), []byte("location")}

// checkHTTP asks the HTTP service: the request's method, path_prefix then
// its path, its authority, the allowed headers, headers_to_add, and the
// buffered body. 200 allows; a 5xx fails; any other status denies.
func (f *Filter) checkHTTP(ctx context.Context, s *filters.Stream, body []byte) (decision, error) {
	r := s.Request
	req := &l7.Request{Method: r.Method, Scheme: "http", Authority: r.Authority, Proto: l7.HTTP11}
	req.SetPath(append([]byte(f.pathPrefix), r.Path...))
	for _, fl := range r.Header.Fields() {
		if f.httpHeaderAllowed(fl.Name) {
			req.Header.AddBytes(fl.Name, fl.Value)
		}
	}
	for _, h := range f.headersToAdd {
		req.Header.Set(h.key, h.value)
	}
	req.Header.Set("content-length", strconv.Itoa(len(body)))
	req.ContentLength = int64(len(body))
	if len(body) > 0 {
		req.Body = bytes.NewReader(body)
	}
	deadline, _ := ctx.Deadline()
	var d decision
	err := filters.CallWhole(ctx, f.upstreamOf(s), &filters.UpstreamRequest{Cluster: f.cluster, Request: req, Deadline: deadline}, maxCheckResponse,
		func(resp *l7.Response, data []byte) (err error) {
			d, err = f.httpDecision(resp, data)
			return err
		})
	return d, err
}

// httpDecision reads an HTTP authorization service's answer.
func (f *Filter) httpDecision(resp *l7.Response, data []byte) (decision, error) {
	switch {
	case resp.Status >= 500:
		return decision{}, fmt.Errorf("check: HTTP status %d", resp.Status)
	case resp.Status == 200:
		d := decision{kind: kindOK}
		for _, fl := range resp.Header.Fields() {
			switch {
			case f.upstream.match(fl.Name):
				d.setHeaders = append(d.setHeaders, kv{string(fl.Name), string(fl.Value)})
			case f.upstreamAppend.match(fl.Name):
				d.appendHeaders = append(d.appendHeaders, kv{string(fl.Name), string(fl.Value)})
			}
		}
		return d, nil
	}
	d := decision{kind: kindDenied, status: resp.Status, body: string(data)}
	for _, fl := range resp.Header.Fields() {
		if f.clientHeaderAllowed(fl.Name) {
			d.clientHeaders = append(d.clientHeaders, kv{string(fl.Name), string(fl.Value)})
		}
	}
	return d, nil
}

// httpHeaderAllowed says whether a request header goes in an HTTP check.
func (f *Filter) httpHeaderAllowed(name []byte) bool {
	if string(name) == "content-length" || f.disallowed.match(name) {
		return false
	}
	for _, d := range httpDefaultHeaders {
		if bytes.Equal(name, d) {
			return true
		}
	}
	return f.allowed.match(name)
}

// clientHeaderAllowed says whether a header of the service's denial is
// relayed to the caller: all but the framing ones when
// allowed_client_headers is not set.
func (f *Filter) clientHeaderAllowed(name []byte) bool {
	switch string(name) {
	case "content-length", "host":
		return false
	}
	if f.client == nil {
		return true
	}
	for _, d := range clientDefaultHeaders {
		if bytes.Equal(name, d) {
			return true
		}
	}
	return f.client.match(name)
}
