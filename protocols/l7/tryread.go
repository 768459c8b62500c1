package l7

import "io"

// TryReader is a body that can be read without waiting: the codec of an
// HTTP/2 stream knows what has arrived. Writers use it to send what is
// already there together with the headers (one write instead of one per
// frame); wrappers of a body forward it (see TryRead).
type TryReader interface {
	// TryRead reads what has arrived, as Read would, but never waits:
	// (0, nil) when nothing has arrived yet; io.EOF once the body has
	// ended (its trailers are then in place) and nothing is left.
	TryRead(p []byte) (int, error)
}

// TryRead reads r without waiting if it is a TryReader, and reports
// nothing ready, (0, nil), otherwise: a caller then reads r as usual.
func TryRead(r io.Reader, p []byte) (int, error) {
	if tr, ok := r.(TryReader); ok {
		return tr.TryRead(p)
	}
	return 0, nil
}

// TryReadFull fills p with what r has ready: it stops at a full p, at
// nothing more ready, or at the end or failure of r, which it returns.
func TryReadFull(r io.Reader, p []byte) (n int, err error) {
	for n < len(p) {
		m, err := TryRead(r, p[n:])
		n += m
		if err != nil {
			return n, err
		}
		if m == 0 {
			return n, nil
		}
	}
	return n, nil
}
