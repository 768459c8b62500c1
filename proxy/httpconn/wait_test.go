package httpconn

import (
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
)

// failedStream is a waitable whose stream was reset before its first
// byte.
type failedStream struct {
	notify atomic.Pointer[func()]
}

func (f *failedStream) TryRead([]byte) (int, error) { return 0, errStreamReset }
func (f *failedStream) Failed() bool                { return true }
func (f *failedStream) Detach() func()              { return func() {} }
func (f *failedStream) SetReadNotify(fn func()) {
	if fn == nil {
		f.notify.Store(nil)
		return
	}
	f.notify.Store(&fn)
}

var errStreamReset = errors.New("stream reset")

// TestResetWaitersEndWithoutAGoroutineEach: waiting streams reset all at
// once (their connection closed) are ended one after the other by the
// reaper, not each on a goroutine of its own; each exactly once, the
// drain's registration stopped.
func TestResetWaitersEndWithoutAGoroutineEach(t *testing.T) {
	const n = 1000
	block := make(chan struct{})
	var ended sync.WaitGroup
	var counts [n]atomic.Int32
	var stopped atomic.Int32
	base := runtime.NumGoroutine()
	ended.Add(n)
	ws := make([]*waiter, n)
	for i := range ws {
		f := &failedStream{}
		ws[i] = &waiter{w: f, finish: func() {}, stopDrain: func() bool { stopped.Add(1); return true }}
		ws[i].done = func() {
			if i == 0 {
				<-block // the reaper is busy: the others queue
			}
			counts[i].Add(1)
			ended.Done()
		}
	}
	for _, wt := range ws {
		wt.notify()
		wt.notify() // a second notification does nothing
	}
	if extra := runtime.NumGoroutine() - base; extra > 2 {
		t.Errorf("%d goroutines more while %d reset streams wait to be ended, want at most the reaper's", extra, n)
	}
	close(block)
	ended.Wait()
	for i := range counts {
		if c := counts[i].Load(); c != 1 {
			t.Fatalf("waiter %d ended %d times, want once", i, c)
		}
		if ws[i].w.(*failedStream).notify.Load() != nil {
			t.Fatalf("waiter %d: its read notification still installed", i)
		}
	}
	if got := stopped.Load(); got != n {
		t.Errorf("drain registrations stopped: %d, want %d", got, n)
	}
	// The reaper's goroutine ends once the queue is empty.
	for {
		reaper.mu.Lock()
		running := reaper.running
		reaper.mu.Unlock()
		if !running {
			break
		}
		runtime.Gosched()
	}
}
