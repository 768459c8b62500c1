package dubboconn

import (
	"bytes"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// slowWriter records writes, each taking a while, so that others queue.
type slowWriter struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	writes int
	fail   error
}

func (w *slowWriter) Write(p []byte) (int, error) {
	time.Sleep(time.Millisecond)
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.fail != nil {
		return 0, w.fail
	}
	w.writes++
	return w.buf.Write(p)
}

func TestFrameWriterCoalescesWholeFrames(t *testing.T) {
	w := &slowWriter{}
	fw := newFrameWriter(w)
	const n = 200
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			frame := []byte(fmt.Sprintf("<%03d%s>", i, strings.Repeat("x", i)))
			if err := fw.write(frame); err != nil {
				t.Error(err)
			}
			for j := range frame {
				frame[j] = '!' // the caller may reuse its frame once write returns
			}
		}()
	}
	wg.Wait() // the writer that wrote the last turn returned after the queue drained
	out := w.buf.String()
	if strings.Contains(out, "!") {
		t.Fatal("a frame was written after its caller reused it")
	}
	frames := strings.SplitAfter(out, ">")
	frames = frames[:len(frames)-1]
	sort.Strings(frames)
	if len(frames) != n {
		t.Fatalf("%d frames written, want %d", len(frames), n)
	}
	for i, f := range frames {
		if want := fmt.Sprintf("<%03d%s>", i, strings.Repeat("x", i)); f != want {
			t.Fatalf("frame %d is %q", i, f)
		}
	}
	if w.writes >= n {
		t.Fatalf("%d writes for %d frames: nothing was coalesced", w.writes, n)
	}
}

func TestFrameWriterErrorSticks(t *testing.T) {
	boom := errors.New("connection reset")
	w := &slowWriter{fail: boom}
	fw := newFrameWriter(w)
	if err := fw.write([]byte("a")); err != boom {
		t.Fatalf("write = %v", err)
	}
	if err := fw.write([]byte("b")); err != boom {
		t.Fatalf("the next write = %v", err)
	}
	fw2 := newFrameWriter(&slowWriter{})
	fw2.fail(boom)
	if err := fw2.write([]byte("c")); err != boom {
		t.Fatalf("after fail: %v", err)
	}
}
