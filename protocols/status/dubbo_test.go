package status

import "testing"

func TestDubboFromHTTPAndLocal(t *testing.T) {
	for code, want := range map[int]int{200: 20, 204: 20, 400: 40, 401: 40, 403: 40, 404: 60, 408: 31, 418: 40,
		429: 100, 499: 40, 500: 80, 502: 80, 503: 80, 504: 31} {
		if got := DubboFromHTTP(code); got != want {
			t.Errorf("DubboFromHTTP(%d) = %d, want %d", code, got, want)
		}
	}
	cases := []struct {
		kind Kind
		http int
		flag string
		want int
	}{
		{Denied, 403, "RBAC", 40}, {NoRoute, 404, "NR", 60}, {Timeout, 504, "UT", 31}, {NoHealthyUpstream, 503, "UH", 80},
		{Unknown, 503, "UH", 80}, {Unknown, 503, "UO", 100}, {Unknown, 404, "NR", 60}, {Unknown, 504, "UT", 31},
		{Unknown, 403, "RBAC", 40}, {Unknown, 503, "FI", 80}, {Unknown, 429, "FI", 100}, {Unknown, 400, "", 40},
	}
	for _, c := range cases {
		if got := DubboFromLocal(c.kind, c.http, c.flag); got != c.want {
			t.Errorf("DubboFromLocal(%v, %d, %q) = %d, want %d", c.kind, c.http, c.flag, got, c.want)
		}
	}
	for s, want := range map[uint8]int{20: 200, 30: 504, 31: 504, 40: 400, 50: 502, 60: 404, 70: 500, 80: 500, 90: 400, 100: 503, 7: 500} {
		if got := HTTPFromDubbo(s); got != want {
			t.Errorf("HTTPFromDubbo(%d) = %d, want %d", s, got, want)
		}
	}
}
