package route

import (
	"strconv"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"

	"github.com/gowaypoint/waypoint/protocols/l7"
)

// ActionKind is what a route does with a matched request.
type ActionKind uint8

// Route actions.
const (
	// ActionCluster forwards to one cluster (Route.Cluster).
	ActionCluster ActionKind = iota
	// ActionWeightedClusters forwards to a cluster picked by weight
	// (Route.Weighted, Route.Pick).
	ActionWeightedClusters
	// ActionClusterHeader forwards to the cluster a request header names
	// (Route.ClusterHeader, Route.HeaderCluster).
	ActionClusterHeader
	// ActionRedirect answers with a redirect (Route.Redirect).
	ActionRedirect
	// ActionDirectResponse answers with a fixed response
	// (Route.DirectResponse).
	ActionDirectResponse
)

// Redirect is a decoded RedirectAction. Read-only.
type Redirect struct {
	// Scheme replaces the request's scheme ("https" for https_redirect);
	// empty: keep it.
	Scheme string
	// Host replaces the authority's host; empty: keep it.
	Host string
	// Port replaces the port; 0: keep it (or drop it as Envoy does).
	Port uint32
	// Path replaces the path (and the query, if it has one); empty: keep
	// it, or rewrite it with PrefixRewrite or the regex rewrite.
	Path string
	// PrefixRewrite replaces the matched prefix of the path.
	PrefixRewrite string
	// Status is the response status: 301 (default), 302, 303, 307 or 308.
	Status int
	// StripQuery drops the query string (unless Path has one).
	StripQuery bool

	regexRewrite *regexRewrite
}

var redirectCodes = map[routev3.RedirectAction_RedirectResponseCode]int{
	routev3.RedirectAction_MOVED_PERMANENTLY:  301,
	routev3.RedirectAction_FOUND:              302,
	routev3.RedirectAction_SEE_OTHER:          303,
	routev3.RedirectAction_TEMPORARY_REDIRECT: 307,
	routev3.RedirectAction_PERMANENT_REDIRECT: 308,
}

// DirectResponse is a decoded DirectResponseAction. Read-only.
type DirectResponse struct {
	// Status is the response status, 200-599.
	Status int
	// Body is the inline body (inline_string or inline_bytes), at most
	// the route configuration's max_direct_response_body_size_bytes.
	Body string
}

// RedirectLocation returns the Location of a redirect route's answer to
// req, as Envoy's Http::Utility::newUri after the redirect's path rewrite.
// It allocates; redirects are not a hot path. "" when the route is not a
// redirect.
func (r *Route) RedirectLocation(req *l7.Request) string {
	rd := r.redirect
	if rd == nil {
		return ""
	}
	path := req.Path
	switch {
	case rd.PrefixRewrite != "":
		n := min(r.match.matchedLen(path), len(path))
		path = append([]byte(rd.PrefixRewrite), path[n:]...)
	case rd.regexRewrite != nil:
		p, _ := splitPath(path)
		if np := rd.regexRewrite.replaceAll(p); len(np) > 0 {
			path = append(np, path[len(p):]...)
		}
	}
	scheme := req.Scheme
	if rd.Scheme != "" {
		scheme = rd.Scheme
	}
	port := ""
	if rd.Port != 0 {
		port = ":" + strconv.FormatUint(uint64(rd.Port), 10)
	}
	host := rd.Host
	if host == "" {
		host = requestHost(req, scheme, port)
	}
	final := string(path)
	hasQuery := false
	if rd.Path != "" {
		for i := 0; i < len(rd.Path); i++ {
			if rd.Path[i] == '?' {
				hasQuery = true
			}
		}
		if hasQuery {
			final = rd.Path
		} else {
			final = rd.Path
			for i, c := range path {
				if c == '?' {
					final += string(path[i:])
					break
				}
			}
		}
	}
	if len(final) == 0 || final[0] != '/' {
		final = "/" + final
	}
	if !hasQuery && rd.StripQuery {
		for i := 0; i < len(final); i++ {
			if final[i] == '?' {
				final = final[:i]
				break
			}
		}
	}
	return scheme + "://" + host + port + final
}

// requestHost is the request's authority for a redirect, without its port
// when a new port is given or when the scheme changes away from the port's
// default (Envoy's processRequestHost).
func requestHost(req *l7.Request, newScheme, newPort string) string {
	host := string(req.Authority)
	end := -1
	if len(host) > 0 && host[0] == '[' {
		for i := len(host) - 2; i >= 0; i-- {
			if host[i] == ']' && host[i+1] == ':' {
				end = i + 1
				break
			}
		}
	} else {
		for i := len(host) - 1; i >= 0; i-- {
			if host[i] == ':' {
				end = i
				break
			}
		}
	}
	if end < 0 {
		return host
	}
	port := host[end:]
	remove := newPort != ""
	if newScheme != req.Scheme {
		remove = remove || (req.Scheme == "https" && port == ":443") || (req.Scheme == "http" && port == ":80")
	}
	if remove {
		return host[:end]
	}
	return host
}
