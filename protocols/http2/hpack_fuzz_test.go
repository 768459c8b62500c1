package http2

import (
	"strings"
	"testing"

	"golang.org/x/net/http2/hpack"

	"github.com/gowaypoint/waypoint/protocols/l7"
)

// FuzzHeaderBlock decodes data as two header blocks (cut at split, each
// written in fragments cut at frag) with the engine's headerDecoder under
// fuzzConfig's limits, and with a plain x/net hpack.Decoder as the
// reference. Nothing may panic; a block the reference decodes is no
// COMPRESSION_ERROR for us; a block we accept (under the limits, not
// malformed) is well-formed (RFC 9113 §8.2, §8.3) and carries the
// reference's regular fields, in order, cookie crumbs joined (empty
// ones dropped). The seed corpus
// is real blocks (fuzzSeedsServer's and fuzzSeedsClient's) and
// testdata/fuzz/FuzzHeaderBlock.
func FuzzHeaderBlock(f *testing.F) {
	for _, s := range append(fuzzSeedsServer(), fuzzSeedsClient()...) {
		for _, fr := range fuzzFrames(s) {
			if fr.typ == 1 && fr.flags&0x28 == 0 { // unpadded HEADERS without priority
				f.Add(fr.payload, uint8(blockRequest), uint16(len(fr.payload)), uint16(3))
				f.Add(fr.payload, uint8(blockResponse), uint16(len(fr.payload)/2), uint16(1))
				f.Add(fr.payload, uint8(blockTrailers), uint16(0), uint16(5))
			}
		}
	}
	f.Add(fuzzBlock("cookie", "a=1", ":method", "GET"), uint8(blockRequest), uint16(100), uint16(2))
	f.Add([]byte{0x3f, 0xe1, 0x1f}, uint8(blockRequest), uint16(0), uint16(0)) // table size update
	f.Fuzz(func(t *testing.T, data []byte, kind uint8, split, frag uint16) {
		cfg := fuzzConfig()
		cfg, err := cfg.withDefaults()
		if err != nil {
			t.Fatal(err)
		}
		var d headerDecoder
		d.init(&cfg)
		var ref []hpack.HeaderField
		refDec := hpack.NewDecoder(4096, func(f hpack.HeaderField) { ref = append(ref, f) })
		refDec.SetMaxStringLength(int(cfg.MaxHeaderListSize))
		k := blockKind(kind % 4)
		cut := min(int(split), len(data))
		for _, block := range [][]byte{data[:cut], data[cut:]} {
			ref = ref[:0]
			_, rerr := refDec.Write(block)
			if rerr == nil {
				rerr = refDec.Close()
			}
			var req l7.Request
			var resp l7.Response
			var tr l7.Header
			d.begin(k, &req, &resp, &tr)
			var derr error
			for rest := block; ; {
				n := len(rest)
				if frag > 0 {
					n = min(n, int(frag))
				}
				if derr = d.write(rest[:n]); derr != nil {
					break
				}
				rest = rest[n:]
				if len(rest) == 0 {
					derr = d.end()
					break
				}
			}
			if derr != nil {
				if rerr == nil {
					t.Fatalf("COMPRESSION_ERROR %v on a block the reference decodes", derr)
				}
				return // the connection ends here: HPACK is out of step
			}
			if rerr != nil {
				// Ours may skip what it need not decode (a refused block's
				// Huffman strings): the tables may differ from here on.
				return
			}
			if d.over || d.bad != "" || k == blockDiscard {
				continue
			}
			checkBlock(t, k, &d, &req, &resp, ref)
		}
	})
}

// checkBlock checks an accepted block against the reference's fields.
func checkBlock(t *testing.T, k blockKind, d *headerDecoder, req *l7.Request, resp *l7.Response, ref []hpack.HeaderField) {
	if len(ref) > d.maxCount {
		t.Fatalf("accepted %d fields, over the limit %d", len(ref), d.maxCount)
	}
	hdr := d.hdr
	switch k {
	case blockRequest:
		if req.Method == "" || !validToken(req.Method) {
			t.Fatalf("accepted request with :method %q", req.Method)
		}
		if req.Method == l7.MethodConnect && req.Protocol == "" {
			if len(req.Authority) == 0 || len(req.Path) != 0 || req.Scheme != "" {
				t.Fatalf("accepted CONNECT authority %q path %q scheme %q", req.Authority, req.Path, req.Scheme)
			}
		} else if req.Scheme == "" || len(req.Path) == 0 || (req.Path[0] != '/' && string(req.Path) != "*") {
			t.Fatalf("accepted %s with scheme %q path %q", req.Method, req.Scheme, req.Path)
		}
	case blockResponse:
		if resp.Status < 100 || resp.Status > 999 || resp.Status == 101 {
			t.Fatalf("accepted :status %d", resp.Status)
		}
	}
	var want []string
	var cookies []string
	ncookie := 0
	for _, f := range ref {
		switch {
		case strings.HasPrefix(f.Name, ":"):
			if k == blockTrailers {
				t.Fatalf("accepted trailers with %s", f.Name)
			}
		case f.Name == "host" && k == blockRequest:
		case f.Name == "cookie":
			ncookie++
			if f.Value != "" { // empty crumbs are dropped when crumbs are joined
				cookies = append(cookies, f.Value)
			}
			want = append(want, f.Name, f.Value)
		default:
			want = append(want, f.Name, f.Value)
		}
	}
	if ncookie > 1 {
		var w []string
		for i := 0; i < len(want); i += 2 {
			if want[i] != "cookie" {
				w = append(w, want[i], want[i+1])
			}
		}
		want = append(w, "cookie", strings.Join(cookies, "; "))
	}
	var got []string
	for _, f := range hdr.Fields() {
		name, value := string(f.Name), string(f.Value)
		if !validFieldName(name) || !validFieldValue(value) {
			t.Fatalf("accepted field %q: %q", name, value)
		}
		switch name {
		case "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade":
			t.Fatalf("accepted connection-specific field %q", name)
		}
		got = append(got, name, value)
	}
	if strings.Join(got, "\x00") != strings.Join(want, "\x00") {
		t.Fatalf("fields %q, the reference decoded %q", got, want)
	}
}
