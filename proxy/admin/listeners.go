package admin

import (
	"fmt"
	"net/http"
	"strings"

	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
)

func (src Sources) listeners(w http.ResponseWriter, r *http.Request) {
	if src.Listeners == nil {
		http.NotFound(w, r)
		return
	}
	ls := src.Listeners()
	switch r.URL.Query().Get("format") {
	case "json":
		marshal.write(w, ls)
	case "", "text":
		writeText(w, ListenersText(ls))
	default:
		http.Error(w, "usage: /listeners?format=(text|json)", http.StatusBadRequest)
	}
}

// ListenersText renders /listeners as Envoy's text format: one
// "name::address" line per listener (an internal listener, which binds
// nothing, shows its envoy:// name).
func ListenersText(ls *adminv3.Listeners) string {
	var b strings.Builder
	for _, l := range ls.GetListenerStatuses() {
		addr := hostString(l.GetLocalAddress())
		for _, a := range l.GetAdditionalLocalAddresses() {
			addr += "," + hostString(a)
		}
		fmt.Fprintf(&b, "%s::%s\n", l.GetName(), addr)
	}
	return b.String()
}
