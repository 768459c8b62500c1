package route

import (
	"github.com/gowaypoint/waypoint/filters"
	"github.com/gowaypoint/waypoint/protocols/l7"
)

// OriginalPathHeader is where RewritePath keeps the path it replaced, when
// asked to (Envoy adds it unless the router suppresses Envoy headers).
const OriginalPathHeader = "x-envoy-original-path"

// Finalize applies the route to a request about to go upstream, in
// Envoy's order (RouteEntryImplBase::finalizeRequestHeaders): header
// mutations, then the host rewrite, then the path rewrite.
func (r *Route) Finalize(req *l7.Request, down *filters.Downstream, keepOriginalPath bool) {
	r.ApplyRequestHeaders(req, down)
	r.RewriteHost(req)
	r.RewritePath(req, keepOriginalPath)
}

// ApplyRequestHeaders applies request_headers_to_remove and
// request_headers_to_add: a picked weighted cluster's first (followed by
// its host_rewrite_literal, as Envoy's WeightedClusterEntry does), then the
// route's, the virtual host's and the route configuration's, or the three
// levels in the reverse order when most_specific_header_mutations_wins.
func (r *Route) ApplyRequestHeaders(req *l7.Request, down *filters.Downstream) {
	c := fmtCtx{req: req, down: down}
	var scratch *[]byte
	if r.headersNeedScratch {
		scratch = getScratch()
		defer putScratch(scratch)
	}
	chain := r.reqChain
	if r.picked != nil {
		if r.picked.reqHeaders != nil {
			r.picked.reqHeaders.apply(&req.Header, &c, scratch)
			chain = chain[1:]
		}
		r.setClusterHost(req)
	}
	for _, m := range chain {
		m.apply(&req.Header, &c, scratch)
	}
}

// setClusterHost applies a picked weighted cluster's host_rewrite_literal.
func (r *Route) setClusterHost(req *l7.Request) {
	if r.picked.HostRewrite != "" {
		req.SetAuthority(r.picked.hostRewrite)
	}
}

// ApplyResponseHeaders applies response_headers_to_remove and
// response_headers_to_add to the response of req, in the same order as
// ApplyRequestHeaders.
func (r *Route) ApplyResponseHeaders(resp *l7.Response, req *l7.Request, down *filters.Downstream) {
	if len(r.respChain) == 0 {
		return
	}
	c := fmtCtx{req: req, resp: resp, down: down}
	var scratch *[]byte
	if r.headersNeedScratch {
		scratch = getScratch()
		defer putScratch(scratch)
	}
	for _, m := range r.respChain {
		m.apply(&resp.Header, &c, scratch)
	}
}

// RewriteHost sets :authority to the route's host_rewrite_literal or to
// the first value of host_rewrite_header (when present and not empty), and
// reports whether it did. A picked weighted cluster's host_rewrite_literal
// is ApplyRequestHeaders' to apply; auto_host_rewrite is the router's
// (AutoHostRewrite).
func (r *Route) RewriteHost(req *l7.Request) bool {
	switch {
	case len(r.hostRewrite) > 0:
		req.SetAuthority(r.hostRewrite)
		return true
	case r.hostRewriteHeader != "":
		if v, ok := req.Header.Get(r.hostRewriteHeader); ok && len(v) > 0 {
			req.SetAuthority(v)
			return true
		}
	}
	return false
}

// RewritePath applies prefix_rewrite or regex_rewrite to :path, keeping the
// query string, and reports whether it set a new path (a regex that does
// not match leaves the same path, as in Envoy). A prefix rewrite
// replaces the part of the path the route matched (its prefix or path, or
// the whole path for regex and CONNECT routes); a regex rewrite replaces
// every match in the path without its query. With keepOriginal the
// replaced path is added as x-envoy-original-path. Prefix rewrites
// allocate nothing in steady state; regex rewrites allocate.
func (r *Route) RewritePath(req *l7.Request, keepOriginal bool) bool {
	if r.prefixRewrite == "" && r.regexRewrite == nil {
		return false
	}
	buf := getScratch()
	defer putScratch(buf)
	b := (*buf)[:0]
	if r.prefixRewrite != "" {
		n := min(r.match.matchedLen(req.Path), len(req.Path))
		b = append(b, r.prefixRewrite...)
		b = append(b, req.Path[n:]...)
	} else {
		p, _ := splitPath(req.Path)
		np := r.regexRewrite.replaceAll(p)
		if len(np) == 0 {
			return false
		}
		b = append(b, np...)
		b = append(b, req.Path[len(p):]...)
	}
	*buf = b
	if keepOriginal {
		req.Header.Set(OriginalPathHeader, transientString(req.Path))
	}
	req.SetPath(b)
	return true
}
