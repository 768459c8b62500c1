package httpconn

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/gowaypoint/waypoint/filters"
	"github.com/gowaypoint/waypoint/protocols/l7"
	"github.com/gowaypoint/waypoint/protocols/status"
)

// renderLocal writes s's local reply into resp in the request's protocol:
// for gRPC a trailers-only 200 with grpc-status (mapped from the HTTP
// status as Envoy maps it, unless the reply names one) and grpc-message;
// otherwise the status with a text body.
func renderLocal(s *filters.Stream, resp *l7.Response) {
	l := s.Local
	resp.Reset()
	for _, f := range l.Header.Fields() {
		resp.Header.AddBytes(f.Name, f.Value)
	}
	if s.GRPC {
		code := status.GRPCFromHTTP(l.Status)
		if l.GRPCStatus != nil {
			code = *l.GRPCStatus
		}
		msg := l.Body
		if msg == "" && code != status.GRPCOK {
			msg = http.StatusText(l.Status)
		}
		resp.Status = 200
		resp.Header.Set("content-type", "application/grpc")
		resp.Header.Set("grpc-status", strconv.Itoa(code))
		if msg != "" {
			resp.Header.Set("grpc-message", percentEncode(msg))
		}
		resp.ContentLength = 0
		return
	}
	resp.Status = l.Status
	resp.ContentLength = int64(len(l.Body))
	if l.Body != "" {
		if !resp.Header.Has("content-type") {
			resp.Header.Set("content-type", "text/plain")
		}
		resp.Body = strings.NewReader(l.Body)
	}
}

// percentEncode escapes a grpc-message as the gRPC spec asks: bytes outside
// printable ASCII, and '%', as %XX.
func percentEncode(s string) string {
	clean := true
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '%' {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c > 0x7e || c == '%' {
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}
