package xds

import "sync/atomic"

// Store holds the current Snapshot for the data path, which reads it without
// locks. Writers build a new snapshot aside and swap it in; readers keep using
// the snapshot they loaded until they are done with it. The zero Store holds
// nil and is ready to use. A Store must not be copied after first use.
type Store struct {
	p atomic.Pointer[Snapshot]
}

// Load returns the current snapshot, or nil before the first Store.
func (s *Store) Load() *Snapshot { return s.p.Load() }

// Store makes snap the current snapshot.
func (s *Store) Store(snap *Snapshot) { s.p.Store(snap) }

// Swap makes snap the current snapshot and returns the previous one.
func (s *Store) Swap(snap *Snapshot) (old *Snapshot) { return s.p.Swap(snap) }
