package upstream

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/gowaypoint/waypoint/protocols/spiffe"
	"github.com/gowaypoint/waypoint/proxy/relay"
	"github.com/gowaypoint/waypoint/xds"
)

// HappyEyeballsDelay is how long an attempt to one of an endpoint's
// addresses runs alone before the next address is tried beside it:
// Envoy's delay for endpoints with additional_addresses (300 ms).
var HappyEyeballsDelay = 300 * time.Millisecond

// happyEyeballsOrder is the order in which Envoy tries an endpoint's
// addresses (RFC 8305 section 4): address first, then the others
// interleaved by IP family, starting with the family address is not of,
// each family in config order.
func happyEyeballsOrder(addr netip.AddrPort, extra []netip.AddrPort) []netip.AddrPort {
	var same, other []netip.AddrPort
	for _, a := range extra {
		if a.Addr().Unmap().Is4() == addr.Addr().Unmap().Is4() {
			same = append(same, a)
		} else {
			other = append(other, a)
		}
	}
	out := make([]netip.AddrPort, 0, 1+len(extra))
	out = append(out, addr)
	for len(same) > 0 || len(other) > 0 {
		if len(other) > 0 {
			out = append(out, other[0])
			other = other[1:]
		}
		if len(same) > 0 {
			out = append(out, same[0])
			same = same[1:]
		}
	}
	return out
}

type attempt struct {
	addr netip.AddrPort
	conn relay.Conn
	err  error
}

// dialAny connects to the first of addrs that answers, as Envoy's happy
// eyeballs connects to an endpoint with additional_addresses: the first
// address at once, the next one when the attempts under way have run for
// HappyEyeballsDelay or as soon as one fails, until one succeeds; the
// others are then cancelled (or closed, if they succeed too). An HBONE
// attempt is the CONNECT to that address's ztunnel, its :authority that
// address. All failing, the error names each.
func (d *Dialer) dialAny(ctx context.Context, cl *xds.Cluster, addrs []netip.AddrPort, id spiffe.ID, ep *endpoint) (relay.Conn, error) {
	ctx, cancel := context.WithCancel(ctx)
	results := make(chan attempt, len(addrs))
	next, running := 0, 0
	start := func() {
		a := addrs[next]
		next++
		running++
		go func() {
			c, err := d.dialOne(ctx, cl, a, id, ep)
			results <- attempt{a, c, err}
		}()
	}
	start()
	timer := time.NewTimer(HappyEyeballsDelay)
	defer timer.Stop()
	var errs []error
	for running > 0 {
		select {
		case r := <-results:
			running--
			if r.err == nil {
				cancel()
				if running > 0 {
					go closeLosers(results, running)
				}
				return r.conn, nil
			}
			errs = append(errs, fmt.Errorf("%s: %w", r.addr, r.err))
			if next < len(addrs) && ctx.Err() == nil {
				start()
				timer.Reset(HappyEyeballsDelay)
			}
		case <-timer.C:
			if next < len(addrs) {
				start()
				timer.Reset(HappyEyeballsDelay)
			}
		}
	}
	cancel()
	return nil, errors.Join(errs...)
}

// closeLosers closes the connections of the n attempts still running
// when another won.
func closeLosers(results <-chan attempt, n int) {
	for range n {
		if r := <-results; r.conn != nil {
			r.conn.Close()
		}
	}
}
