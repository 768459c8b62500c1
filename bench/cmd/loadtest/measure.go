package main

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/gowaypoint/waypoint/bench/internal/hostinfo"
)

// cell is one measured run of one proxy in one scenario (and variant).
type cell struct {
	scenario string
	label    string // the scenario, or bulk-N for N streams
	proxy    string
	name     string // the proxy as the report shows it (proxyName); proxy when empty
	round    int
	err      error
	load     string // the machine's 1-minute load average at the run's end

	// Resource use of the measured process tree over the window.
	seconds       float64 // the window's length
	cpuSeconds    float64
	voluntary     uint64 // voluntary context switches
	peakKiB       uint64
	peakSinceBoot bool // VmHWM could not be reset: it is the process's lifetime peak

	// Request scenarios.
	requests int64 // served in the window (fortio's calls and warm-up calls)
	rps      float64
	latency  [4]float64 // seconds at fortioPercentiles
	failures int64

	// Bulk.
	streams int
	bytes   int64 // read by the sink in the window

	// Idle.
	opened       int
	rssBeforeKiB uint64
	rssAfterKiB  uint64
}

// measure runs one measured window of s on d into c.
func (r *runner) measure(ctx context.Context, s scenario, d *deployment, c *cell) {
	pid := d.measured.pid()
	if s.kind == kindIdle {
		echo := netip.AddrPortFrom(netip.MustParseAddr(ipPod), portEcho)
		if _, err := waitForPorts(ctx, echo, r.o.idleStreams); err != nil {
			c.err = err
			return
		}
		// One stream first, so the baseline has the HBONE connections up.
		warm := openIdle(ctx, hostPort(d.source, portSrcIdle), 1)
		warm.closeAll()
		time.Sleep(200 * time.Millisecond)
	}
	c.peakSinceBoot = !proc.resetPeak(pid)
	before, err := proc.sample(pid)
	if err != nil {
		c.err = err
		return
	}
	start := time.Now()
	var sinkBefore int64
	var idle *idleConns
	switch s.kind {
	case kindRequests:
		var res *fortioResult
		res, c.err = r.fortio(ctx, s, d.proxy, r.o.duration, fmt.Sprintf("round%d", c.round))
		if c.err == nil {
			grpc := s.protocol == "grpc"
			c.requests, c.rps, c.failures = res.requests(), res.ActualQPS, res.failures(grpc)
			for i, p := range fortioPercentiles {
				c.latency[i] = res.percentile(p)
			}
		}
	case kindBulk:
		fmt.Sscanf(c.label, "bulk-%d", &c.streams)
		sinkBefore = r.sinkBytes.Load()
		_, c.err = bulkSend(ctx, hostPort(d.source, portSrcBulk), c.streams, r.o.duration)
	case kindIdle:
		c.streams = r.o.idleStreams
		if need := uint64(c.streams + 1024); r.nofile < need {
			c.err = fmt.Errorf("RLIMIT_NOFILE is %d, and %d idle streams need about %d descriptors in the harness and in each hbone stand-in", r.nofile, c.streams, need)
			return
		}
		c.rssBeforeKiB = before.rssKiB
		idle = openIdle(ctx, hostPort(d.source, portSrcIdle), c.streams)
		defer idle.closeAll()
	}
	after, err := proc.sample(pid)
	c.seconds = time.Since(start).Seconds()
	c.load = hostinfo.LoadAverage(1)
	switch {
	case err != nil:
		c.err = err
	case after.cpuTicks < before.cpuTicks:
		// A process of the tree ended in the window and took its CPU time along.
		c.err = fmt.Errorf("%s: its processes changed during the run (%v, then %v)", d.measured.name, before.pids, after.pids)
	}
	if err := d.alive(); err != nil {
		c.err = err
	}
	if after.cpuTicks >= before.cpuTicks && after.voluntary >= before.voluntary {
		c.cpuSeconds = float64(after.cpuTicks-before.cpuTicks) / clockTicks
		c.voluntary = after.voluntary - before.voluntary
	}
	c.peakKiB = after.hwmKiB
	switch s.kind {
	case kindBulk:
		c.bytes = r.sinkBytes.Load() - sinkBefore
	case kindIdle:
		c.opened = idle.open()
		c.failures = int64(c.streams - c.opened)
		if idle.first != nil && c.err == nil && c.opened == 0 {
			c.err = idle.first
		} else if idle.first != nil {
			r.problem("idle round %d: %d of %d streams failed; the first: %v", c.round, c.failures, c.streams, idle.first)
		}
		// Let the last streams settle, then read the memory they hold.
		time.Sleep(time.Second)
		if held, err := proc.sample(pid); err == nil {
			c.rssAfterKiB = held.rssKiB
			c.peakKiB = held.hwmKiB
		}
	}
}
