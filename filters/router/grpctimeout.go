package router

import "time"

// ParseGRPCTimeout reads a grpc-timeout header value: up to 8 digits and a
// unit (H, M, S, m, u, n), as the gRPC HTTP/2 spec defines it.
func ParseGRPCTimeout(v []byte) (time.Duration, bool) {
	if len(v) < 2 || len(v) > 9 {
		return 0, false
	}
	var n int64
	for _, c := range v[:len(v)-1] {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	var unit time.Duration
	switch v[len(v)-1] {
	case 'H':
		unit = time.Hour
	case 'M':
		unit = time.Minute
	case 'S':
		unit = time.Second
	case 'm':
		unit = time.Millisecond
	case 'u':
		unit = time.Microsecond
	case 'n':
		unit = time.Nanosecond
	default:
		return 0, false
	}
	const maxD = time.Duration(1<<63 - 1)
	if n > int64(maxD/unit) {
		return maxD, true
	}
	return time.Duration(n) * unit, true
}
