// Package sniff tells which protocol a connection speaks from its first
// bytes, as Envoy's http_inspector does (and, for Dubbo, its magic number):
// the HTTP/2 connection preface, an HTTP/1 request line, Dubbo's 0xdabb, or
// anything else (opaque TCP). The bytes read are returned to be replayed to
// the codec that takes the connection over.
package sniff

import (
	"bytes"
	"errors"
	"io"
	"time"
)

// Protocol is what a connection speaks.
type Protocol uint8

// Protocols Detect tells apart.
const (
	TCP Protocol = iota // nothing recognised: relay bytes as they are
	HTTP1
	HTTP2
	Dubbo
)

func (p Protocol) String() string {
	switch p {
	case HTTP1:
		return "http/1.1"
	case HTTP2:
		return "h2c"
	case Dubbo:
		return "dubbo"
	}
	return "tcp"
}

// Preface is the HTTP/2 client connection preface.
const Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

// MaxBytes is how much Detect reads at most before it settles on TCP: a
// request line longer than this is not taken for HTTP/1.
const MaxBytes = 8 << 10

// DefaultTimeout is how long Detect waits for the first bytes. A
// server-first protocol sends nothing: it is taken for TCP once the wait
// ends, so that its server gets the connection.
const DefaultTimeout = 5 * time.Second

// deadliner is implemented by connections whose reads can time out.
type deadliner interface {
	SetReadDeadline(time.Time) error
}

// Detect reads from r into buf (which should hold MaxBytes) until the
// protocol is known, and returns it with the number of bytes read, which
// the caller must replay. When r can take a read deadline, Detect waits at
// most timeout (0: DefaultTimeout) and then answers TCP; it clears the
// deadline before returning. A read error other than the timeout is
// returned with whatever was read (an empty connection closed at once is
// TCP with io.EOF).
func Detect(r io.Reader, buf []byte, timeout time.Duration) (Protocol, int, error) {
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	if d, ok := r.(deadliner); ok {
		if err := d.SetReadDeadline(time.Now().Add(timeout)); err == nil {
			defer d.SetReadDeadline(time.Time{})
		}
	}
	n := 0
	for {
		if n == len(buf) {
			return TCP, n, nil
		}
		m, err := r.Read(buf[n:])
		n += m
		if p, done := classify(buf[:n]); done {
			return p, n, nil
		}
		if err != nil {
			if isTimeout(err) {
				return TCP, n, nil
			}
			return TCP, n, err
		}
	}
}

func isTimeout(err error) bool {
	var te interface{ Timeout() bool }
	return errors.As(err, &te) && te.Timeout()
}

// classify decides from the bytes so far, or asks for more.
func classify(b []byte) (Protocol, bool) {
	if len(b) == 0 {
		return TCP, false
	}
	if len(b) >= 2 && b[0] == 0xda && b[1] == 0xbb {
		return Dubbo, true
	}
	if len(b) == 1 && b[0] == 0xda {
		return TCP, false
	}
	if n := min(len(b), len(Preface)); string(b[:n]) == Preface[:n] {
		if n == len(Preface) {
			return HTTP2, true
		}
		return TCP, false // a prefix of the preface, or of "PRI" as a method: read on
	}
	return classifyHTTP1(b)
}

// classifyHTTP1 looks for "METHOD SP target SP HTTP/1.x CRLF".
func classifyHTTP1(b []byte) (Protocol, bool) {
	sp := 0
	for sp < len(b) && isTokenChar(b[sp]) {
		sp++
	}
	switch {
	case sp == len(b):
		return TCP, sp > 32 // a token so far; read on unless implausibly long
	case sp == 0 || b[sp] != ' ':
		return TCP, true
	}
	eol := bytes.IndexByte(b[sp+1:], '\n')
	if eol < 0 {
		if bytes.IndexByte(b[sp+1:], '\r') >= 0 && b[len(b)-1] != '\r' {
			return TCP, true // a CR not followed by LF
		}
		return TCP, false
	}
	line := b[sp+1 : sp+1+eol]
	if bytes.HasSuffix(line, []byte(" HTTP/1.1\r")) || bytes.HasSuffix(line, []byte(" HTTP/1.0\r")) {
		return HTTP1, true
	}
	return TCP, true
}

func isTokenChar(c byte) bool {
	return 'A' <= c && c <= 'Z' || c == '-' || c == '_'
}
