package httpconn

import (
	"encoding/binary"
	"testing"
)

func grpcMessage(n int) []byte {
	b := make([]byte, 5+n)
	binary.BigEndian.PutUint32(b[1:5], uint32(n))
	return b
}

func TestGRPCFrames(t *testing.T) {
	var three []byte
	for _, n := range []int{3, 0, 70000} {
		three = append(three, grpcMessage(n)...)
	}
	for _, tc := range []struct {
		name   string
		body   []byte
		chunks []int // sizes the body is read in; the rest in one
		want   int64
	}{
		{"nothing", nil, nil, 0},
		{"one message, one read", grpcMessage(4), nil, 1},
		{"three messages, one read", three, nil, 3},
		{"three messages a byte at a time", three, repeat(1, len(three)), 3},
		{"the prefix split", three, []int{2, 3, 1, 4}, 3},
		{"an empty message at the end", append(grpcMessage(2), grpcMessage(0)...), []int{7}, 2},
		{"a message begun, not finished", grpcMessage(10)[:8], nil, 1},
		{"a prefix begun", append(grpcMessage(1), 0, 0), nil, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var g grpcFrames
			rest := tc.body
			for _, n := range tc.chunks {
				n = min(n, len(rest))
				g.scan(rest[:n])
				rest = rest[n:]
			}
			g.scan(rest)
			if g.messages != tc.want {
				t.Errorf("%d messages, want %d", g.messages, tc.want)
			}
		})
	}
}

func repeat(v, n int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = v
	}
	return s
}
