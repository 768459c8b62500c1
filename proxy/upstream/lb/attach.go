package lb

// Attachment is state that another package keeps per host and that must
// not outlive it: proxy/upstream hangs each endpoint's connection pools
// and its hold on an HBONE pool key here. It belongs to the host's live
// state (one per cluster and address, shared by the Hosts of successive
// snapshots), is made on first use by [Host.Attach], and is closed exactly
// once when the host leaves: an Update without its address or without its
// cluster, [Manager.Close], or the eviction of an original-destination
// host.
type Attachment interface {
	// Close releases the host's state. It is called without the lb's
	// locks, on the goroutine of the Update or Close that dropped the
	// host, and must not block on the network (let what is in flight
	// finish on its own) nor call back into the Manager.
	Close()
}

// attachment boxes an Attachment for an atomic pointer.
type attachment struct{ a Attachment }

// Attach returns the attachment of h's live state, made by mk on the first
// call for that state. It returns nil once the host has left its cluster
// (a pick made just before an Update): the caller should pick again. The
// fast path is one atomic load; mk runs under the cluster's mutex, so it
// must be quick, and it should be a function value that captures nothing
// if the caller cares about allocations. Safe for concurrent use.
func (h *Host) Attach(mk func() Attachment) Attachment {
	if a := h.s.attached.Load(); a != nil {
		return a.a
	}
	return h.s.attachSlow(mk)
}

func (s *hostState) attachSlow(mk func() Attachment) Attachment {
	c := s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if s.removed || c.closed {
		return nil
	}
	if a := s.attached.Load(); a != nil {
		return a.a
	}
	a := &attachment{a: mk()}
	s.attached.Store(a)
	return a.a
}

// detachLocked marks s as gone and returns its attachment, nil if none,
// for the caller to close once c.mu is released. c.mu is held.
func (s *hostState) detachLocked() Attachment {
	s.removed = true
	if a := s.attached.Swap(nil); a != nil {
		return a.a
	}
	return nil
}

// closeAttachments closes what hosts that left had attached.
func closeAttachments(as []Attachment) {
	for _, a := range as {
		a.Close()
	}
}
