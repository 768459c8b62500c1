package status

import "testing"

func TestDubboMapping(t *testing.T) {
	for k, want := range map[Kind]uint8{
		Unknown: 80, BadRequest: 40, Denied: 40, NoRoute: 60, NoCluster: 80, NoHealthyUpstream: 80,
		ConnectFailure: 80, UpstreamReset: 80, Timeout: 31, Overflow: 100, RefusedStream: 80, DownstreamGone: 80,
	} {
		if got := k.DubboStatus(); got != want {
			t.Errorf("%v.DubboStatus() = %d, want %d", k, got, want)
		}
	}
	for code, want := range map[int]uint8{200: 20, 204: 20, 400: 40, 401: 40, 403: 40, 404: 60, 408: 31, 418: 40,
		429: 100, 499: 40, 500: 80, 502: 80, 503: 80, 504: 31} {
		if got := DubboFromHTTP(code); got != want {
			t.Errorf("DubboFromHTTP(%d) = %d, want %d", code, got, want)
		}
	}
	cases := []struct {
		http int
		flag string
		want uint8
	}{
		{503, "UH", 80}, {503, "UO", 100}, {404, "NR", 60}, {504, "UT", 31}, {403, "RBAC", 40},
		{503, "FI", 80}, {429, "FI", 100}, {400, "", 40}, {503, "UF", 80},
	}
	for _, c := range cases {
		if got := DubboFromLocal(c.http, c.flag); got != c.want {
			t.Errorf("DubboFromLocal(%d, %q) = %d, want %d", c.http, c.flag, got, c.want)
		}
	}
	for s, want := range map[uint8]int{20: 200, 30: 504, 31: 504, 40: 400, 50: 502, 60: 404, 70: 500, 80: 500, 90: 400, 100: 503, 7: 500} {
		if got := HTTPFromDubbo(s); got != want {
			t.Errorf("HTTPFromDubbo(%d) = %d, want %d", s, got, want)
		}
	}
}
