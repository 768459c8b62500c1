package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/gowaypoint/waypoint/proxy/hbone"
)

// hboneDest is a CONNECT to authority through the waypoint.
func hboneDest(authority string, tlsConf *tls.Config) hbone.Dest {
	return hbone.Dest{
		Addr:      netip.MustParseAddrPort(hostPort(ipWaypoint, portHBONE)),
		Authority: authority, PeerKey: spiffeID(saWaypoint), TLS: tlsConf,
	}
}

// newPool is an HBONE pool whose connections come from src, or from the
// attacker addresses in turn when src is empty.
func newPool(src string) *hbone.Pool {
	var mu sync.Mutex
	n := 0
	return hbone.NewPool(hbone.PoolConfig{
		ConnectTimeout: 5 * time.Second,
		Dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
			if src != "" {
				d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
				return d.DialContext(ctx, network, addr)
			}
			mu.Lock()
			n++
			i := n
			mu.Unlock()
			return dialFrom(ctx, i, addr)
		},
	})
}

// get sends one HTTP/1.1 GET through an HBONE stream to the VIP and
// checks the 200.
func get(ctx context.Context, pool *hbone.Pool, tlsConf *tls.Config) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	st, err := pool.Connect(ctx, hboneDest(hostPort(ipVIP, 80), tlsConf))
	if err != nil {
		return err
	}
	defer st.Close()
	stop := context.AfterFunc(ctx, st.Abort)
	defer stop()
	if _, err := io.WriteString(st, "GET / HTTP/1.1\r\nHost: svc\r\nConnection: close\r\n\r\n"); err != nil {
		return err
	}
	resp, err := http.ReadResponse(bufio.NewReader(st), nil)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}

// legit is the legitimate client: one request a second on its own
// connection, from its own identity. Its goroutine ends with stop.
type legit struct {
	mu       sync.Mutex
	ok, fail int
	lastErr  error
	quit     chan struct{}
	done     chan struct{}
}

func runLegit(ctx context.Context, pool *hbone.Pool, tlsConf *tls.Config) *legit {
	l := &legit{quit: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(l.done)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-l.quit:
				return
			case <-ctx.Done():
				return
			case <-t.C:
			}
			err := get(ctx, pool, tlsConf)
			l.mu.Lock()
			if err != nil {
				l.fail++
				l.lastErr = err
			} else {
				l.ok++
			}
			l.mu.Unlock()
		}
	}()
	return l
}

// stop ends the client and returns its successes, failures and last error.
func (l *legit) stop() (ok, fail int, lastErr error) {
	close(l.quit)
	<-l.done
	return l.ok, l.fail, l.lastErr
}
