package xds

import (
	"strconv"
	"sync"
	"testing"
)

func TestStore(t *testing.T) {
	var s Store
	if s.Load() != nil {
		t.Fatal("zero Store is not empty")
	}
	first := &Snapshot{Version: "1"}
	s.Store(first)
	if old := s.Swap(&Snapshot{Version: "2"}); old != first {
		t.Errorf("Swap returned %v, want the first snapshot", old)
	}
	if got := s.Load().Version; got != "2" {
		t.Errorf("Load().Version = %q, want 2", got)
	}
}

// TestStoreConcurrent has readers load while a writer swaps; run with -race.
func TestStoreConcurrent(t *testing.T) {
	var (
		s  Store
		wg sync.WaitGroup
	)
	s.Store(&Snapshot{Version: "0"})
	for range 4 {
		wg.Go(func() {
			for range 1000 {
				if snap := s.Load(); snap == nil || snap.Version == "" {
					t.Error("reader saw no snapshot")
					return
				}
			}
		})
	}
	wg.Go(func() {
		for i := range 1000 {
			s.Store(&Snapshot{Version: strconv.Itoa(i + 1)})
		}
	})
	wg.Wait()
	if got := s.Load().Version; got != "1000" {
		t.Errorf("final version %q, want 1000", got)
	}
}
