package httpconn

import (
	"bytes"

	"github.com/gowaypoint/waypoint/protocols/l7"
	"github.com/gowaypoint/waypoint/xds"
)

// normalizePath applies the HttpConnectionManager's path settings to
// req.Path, as Envoy's PathUtil does: the escaped-slash action first
// (%2F, %5C), then RFC 3986 dot-segment removal when normalize_path is on,
// then merging repeated slashes when merge_slashes is on. The query is left
// alone. It returns false for a path that must be refused (400).
func normalizePath(req *l7.Request, hcm *xds.HTTPConnectionManager) bool {
	if req.Method == l7.MethodConnect && len(req.Path) == 0 {
		return true
	}
	path := req.Path
	if len(path) == 0 || path[0] != '/' {
		return path != nil && string(path) == "*" && req.Method == l7.MethodOptions
	}
	query := []byte(nil)
	if i := bytes.IndexByte(path, '?'); i >= 0 {
		path, query = path[:i], path[i:]
	}
	if hasEscapedSlash(path) {
		switch hcm.EscapedSlashes {
		case xds.EscapedSlashesReject:
			return false
		case xds.EscapedSlashesUnescape:
			path = unescapeSlashes(path)
		}
	}
	changed := false
	if hcm.NormalizePath && needsDotRemoval(path) {
		path = removeDotSegments(path)
		changed = true
	}
	if hcm.MergeSlashes && bytes.Contains(path, []byte("//")) {
		path = mergeSlashes(path)
		changed = true
	}
	if !changed && len(path)+len(query) == len(req.Path) {
		return true
	}
	out := make([]byte, 0, len(path)+len(query))
	out = append(append(out, path...), query...)
	req.SetPath(out)
	return true
}

func hasEscapedSlash(p []byte) bool {
	for i := 0; i+2 < len(p); i++ {
		if p[i] == '%' && (p[i+1] == '2' && (p[i+2] == 'f' || p[i+2] == 'F') || p[i+1] == '5' && (p[i+2] == 'c' || p[i+2] == 'C')) {
			return true
		}
	}
	return false
}

func unescapeSlashes(p []byte) []byte {
	out := make([]byte, 0, len(p))
	for i := 0; i < len(p); i++ {
		if p[i] == '%' && i+2 < len(p) {
			switch {
			case p[i+1] == '2' && (p[i+2] == 'f' || p[i+2] == 'F'):
				out = append(out, '/')
				i += 2
				continue
			case p[i+1] == '5' && (p[i+2] == 'c' || p[i+2] == 'C'):
				out = append(out, '\\')
				i += 2
				continue
			}
		}
		out = append(out, p[i])
	}
	return out
}

// needsDotRemoval reports whether p has a "." or ".." segment.
func needsDotRemoval(p []byte) bool {
	for i := 0; i < len(p); i++ {
		if p[i] != '.' || i == 0 || p[i-1] != '/' {
			continue
		}
		rest := p[i+1:]
		if len(rest) == 0 || rest[0] == '/' || rest[0] == '.' && (len(rest) == 1 || rest[1] == '/') {
			return true
		}
	}
	return false
}

// removeDotSegments is RFC 3986 §5.2.4 on an absolute path.
func removeDotSegments(p []byte) []byte {
	var segs [][]byte
	trailing := false
	for _, seg := range bytes.Split(p[1:], []byte("/")) {
		trailing = false
		switch string(seg) {
		case ".":
			trailing = true
		case "..":
			if len(segs) > 0 {
				segs = segs[:len(segs)-1]
			}
			trailing = true
		default:
			segs = append(segs, seg)
		}
	}
	out := []byte{'/'}
	out = append(out, bytes.Join(segs, []byte("/"))...)
	if trailing && len(segs) > 0 {
		out = append(out, '/')
	}
	return out
}

func mergeSlashes(p []byte) []byte {
	out := make([]byte, 0, len(p))
	for i, c := range p {
		if c == '/' && i > 0 && p[i-1] == '/' {
			continue
		}
		out = append(out, c)
	}
	return out
}
