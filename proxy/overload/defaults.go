package overload

import (
	"math"
	"os"
	"strconv"
	"strings"

	"github.com/gowaypoint/waypoint/xds"
)

// Defaults of the config the command's flags synthesise when the bootstrap
// has no overload_manager (Synthesise). They keep a pod with 1 GiB of
// memory alive (docs/hardening.md):
//
//   - at most DefaultMaxDownstreamConnections connections over all
//     listeners (global_downstream_max_connections; a connection waiting
//     for its ClientHello costs under 8 KiB, so 50,000 of them fit in
//     400 MiB);
//   - the heap monitor against --max-heap-bytes, else GOMEMLIMIT, else
//     DefaultCgroupShare of the container's memory limit (cgroup v2
//     memory.max); no heap monitor when none of those is known;
//   - on it: shrink_heap (memory returned to the OS) at 90%,
//     disable_http_keepalive scaled from 85% to 95%,
//     reset_high_memory_stream scaled from 90% to 98%,
//     stop_accepting_requests and stop_accepting_connections at 95%.
const (
	DefaultMaxDownstreamConnections = 50000
	DefaultCgroupShare              = 0.9
)

// Limits are the command's flags for the common limits.
type Limits struct {
	// MaxDownstreamConnections: 0 takes DefaultMaxDownstreamConnections,
	// negative sets no limit.
	MaxDownstreamConnections int64
	// MaxHeapBytes: 0 takes GOMEMLIMIT, else the cgroup's share.
	MaxHeapBytes uint64
}

// Synthesise builds the overload config of l. memLimit is GOMEMLIMIT
// (math.MaxInt64 or less than 1 when unset), cgroupMax the container's
// memory limit (0 when unknown).
func Synthesise(l Limits, memLimit int64, cgroupMax uint64) *xds.Overload {
	o := &xds.Overload{RefreshInterval: xds.DefaultOverloadRefreshInterval}
	switch {
	case l.MaxDownstreamConnections > 0:
		o.MaxDownstreamConnections = l.MaxDownstreamConnections
	case l.MaxDownstreamConnections == 0:
		o.MaxDownstreamConnections = DefaultMaxDownstreamConnections
	}
	switch {
	case l.MaxHeapBytes > 0:
		o.MaxHeapBytes = l.MaxHeapBytes
	case memLimit > 0 && memLimit < math.MaxInt64:
		o.MaxHeapBytes = uint64(memLimit)
	case cgroupMax > 0:
		o.MaxHeapBytes = uint64(float64(cgroupMax) * DefaultCgroupShare)
	}
	if o.MaxHeapBytes == 0 {
		return o
	}
	o.HeapMonitor = true
	heap := func(name string, tr xds.OverloadTrigger) xds.OverloadAction {
		tr.Monitor = xds.MonitorFixedHeap
		return xds.OverloadAction{Name: name, Triggers: []xds.OverloadTrigger{tr}}
	}
	o.Actions = []xds.OverloadAction{
		heap(xds.ActionShrinkHeap, xds.OverloadTrigger{Threshold: 0.90}),
		heap(xds.ActionDisableHTTPKeepAlive, xds.OverloadTrigger{Scaled: true, Scaling: 0.85, Saturation: 0.95}),
		heap(xds.ActionResetHighMemoryStream, xds.OverloadTrigger{Scaled: true, Scaling: 0.90, Saturation: 0.98}),
		heap(xds.ActionStopAcceptingRequests, xds.OverloadTrigger{Threshold: 0.95}),
		heap(xds.ActionStopAcceptingConnections, xds.OverloadTrigger{Threshold: 0.95}),
	}
	return o
}

// CgroupMemoryMax is the container's memory limit from cgroup v2
// (/sys/fs/cgroup/memory.max), 0 when there is none or it cannot be read.
func CgroupMemoryMax() uint64 {
	b, err := os.ReadFile("/sys/fs/cgroup/memory.max")
	if err != nil {
		return 0
	}
	v, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil { // "max"
		return 0
	}
	return v
}
