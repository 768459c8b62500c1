package httpconn

import (
	"github.com/gowaypoint/waypoint/internal/lograte"
	"github.com/gowaypoint/waypoint/protocols/http2"
	"github.com/gowaypoint/waypoint/telemetry/metrics"
)

// What a peer inside a tunnel can make the waypoint log (a defence that
// closes its HTTP/2 connection, a malformed HTTP/1.1 request, a head that
// never finishes) is counted each time and logged at INFO at most once a
// second per kind, shared by every connection, with the count held back;
// each event is logged at debug.
var (
	defenceLog       [http2.NumDefences]lograte.Reason
	malformedLog     lograte.Reason
	headerTimeoutLog lograte.Reason
)

// quietLog writes msg at INFO when r allows it (with the count held back),
// else at debug when that is on. args are built by the caller only when
// one of the two will be written: see logEnabled.
func (c *conn) quietLog(r *lograte.Reason, msg string, args ...any) {
	if ok, n := r.Allow(); ok {
		c.env.Log.Info(msg, append(args, "suppressed", n)...)
		return
	}
	c.env.Log.Debug(msg, args...)
}

// defended counts and logs an HTTP/2 connection closed by a defence.
func (c *conn) defended(d http2.Defence, err error) {
	metrics.HCM(c.hcm.StatPrefix).Defence(d)
	c.quietLog(&defenceLog[d], "http: connection closed by a defence", "defence", d.String(), "stat_prefix", c.hcm.StatPrefix,
		"peer", c.down.Peer.String(), "remote", c.down.RemoteAddr, "error", err)
}
