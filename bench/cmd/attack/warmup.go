package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/gowaypoint/waypoint/proxy/hbone"
)

// warmUp runs each attack's path once, as a waypoint that has served in a
// mesh has run them: a connection of plaintext garbage, a handshake with a
// certificate of another CA, a connection closed before its ClientHello,
// a CONNECT to an authority with no route, a tunnel with one HTTP/2
// request reset at once, and an idle stream opened and closed. The idle
// level measured after it (and a quiet time) is the one an attack's RSS
// after is compared with; the level from the start is reported too
// (docs/hardening.md, "Attacks and what they cost"). It returns the first
// step that did not go as an attacker's would.
func warmUp(ctx context.Context, o *options) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var errs []error
	step := func(name string, f func(ctx context.Context) error) {
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		if err := f(sctx); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
		}
	}
	step("plaintext", func(ctx context.Context) error {
		c, err := dialFrom(ctx, 1, hostPort(ipWaypoint, portHBONE))
		if err != nil {
			return err
		}
		defer closeHard(c)
		c.Write([]byte("GET / HTTP/1.1\r\n\r\n"))
		if !waitClosed(ctx, c) {
			return errors.New("not closed by the waypoint")
		}
		return nil
	})
	step("badcert", func(ctx context.Context) error {
		conf, err := foreignTLS(o.certs)
		if err != nil {
			return err
		}
		c, err := dialFrom(ctx, 2, hostPort(ipWaypoint, portHBONE))
		if err != nil {
			return err
		}
		defer closeHard(c)
		tc := tls.Client(c, conf)
		if tc.HandshakeContext(ctx) == nil && !waitClosed(ctx, tc) {
			return errors.New("not closed by the waypoint")
		}
		return nil
	})
	step("pending", func(ctx context.Context) error {
		c, err := dialFrom(ctx, 3, hostPort(ipWaypoint, portHBONE))
		if err != nil {
			return err
		}
		time.Sleep(500 * time.Millisecond) // parked, then closed by its peer
		closeHard(c)
		return nil
	})
	conf, closeSrc, err := clientTLS(o.certs, saAttacker)
	if err != nil {
		return err
	}
	defer closeSrc()
	pool := newPool("")
	defer pool.Close()
	step("noroute", func(ctx context.Context) error {
		st, err := pool.Connect(ctx, hboneDest(randomAuthority(), conf))
		var ce *hbone.ConnectError
		if err == nil {
			st.Abort()
			return errors.New("a CONNECT to a random authority was accepted")
		}
		if !errors.As(err, &ce) {
			return err
		}
		return nil
	})
	step("rapidreset", func(ctx context.Context) error {
		st, err := pool.Connect(ctx, hboneDest(hostPort(ipVIP, 80), conf))
		if err != nil {
			return err
		}
		defer st.Abort()
		return resetOnce(st)
	})
	step("idlestreams", func(ctx context.Context) error {
		st, err := pool.Connect(ctx, hboneDest(hostPort(ipVIP, 80), conf))
		if err != nil {
			return err
		}
		time.Sleep(500 * time.Millisecond) // detached, waiting for its first bytes
		st.Abort()
		return nil
	})
	return errors.Join(errs...)
}

// resetOnce speaks h2c on st: the preface, SETTINGS, one request's
// HEADERS and its RST_STREAM, then reads until the waypoint's SETTINGS
// acknowledgement, so that the reset has been read before st is closed.
func resetOnce(st io.ReadWriter) error {
	fr := http2.NewFramer(st, st)
	if _, err := io.WriteString(st, http2.ClientPreface); err != nil {
		return err
	}
	if err := fr.WriteSettings(); err != nil {
		return err
	}
	var hb []byte
	enc := hpack.NewEncoder(writerFunc(func(p []byte) (int, error) { hb = append(hb, p...); return len(p), nil }))
	enc.WriteField(hpack.HeaderField{Name: ":method", Value: "GET"})
	enc.WriteField(hpack.HeaderField{Name: ":scheme", Value: "http"})
	enc.WriteField(hpack.HeaderField{Name: ":path", Value: "/"})
	enc.WriteField(hpack.HeaderField{Name: ":authority", Value: "svc"})
	if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: hb, EndStream: true, EndHeaders: true}); err != nil {
		return err
	}
	if err := fr.WriteRSTStream(1, http2.ErrCodeCancel); err != nil {
		return err
	}
	if err := fr.WritePing(false, [8]byte{1}); err != nil {
		return err
	}
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			return err
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				fr.WriteSettingsAck()
			}
		case *http2.PingFrame:
			if f.IsAck() {
				return nil // the PING after the reset is answered: the reset was read
			}
		}
	}
}

type writerFunc func(p []byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
