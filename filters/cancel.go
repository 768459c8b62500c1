package filters

// CancelNotifier is implemented by a stream Context that can tell of its
// cancellation without the allocations of context.AfterFunc: the HTTP/1.1
// connection manager's, one per connection, reused from one request to the
// next (proxy/httpconn). An upstream that watches a stream's cancellation
// for every exchange uses it when the stream's context has it.
type CancelNotifier interface {
	// NotifyCancel arranges for h.StreamCancelled(tag) to be called once,
	// on a goroutine of its own, when the context is cancelled (at once if
	// it is). The handle it returns is for StopNotify, which must be
	// called once, at the latest when the exchange ends.
	NotifyCancel(h CancelHandler, tag uint64) (handle uint64)
	// StopNotify stops the call registered under handle; false when the
	// call has started (or the handle is not current).
	StopNotify(handle uint64) bool
}

// CancelHandler is told of a stream's cancellation (CancelNotifier).
type CancelHandler interface {
	StreamCancelled(tag uint64)
}
