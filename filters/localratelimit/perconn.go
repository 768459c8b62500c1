package localratelimit

import (
	"runtime"
	"sync"
	"time"
	"weak"

	"github.com/gowaypoint/waypoint/filters"
)

// connBuckets are the buckets of local_rate_limit_per_downstream_connection:
// one per downstream connection (a filters.Downstream, one per connection
// and never reused), made at its first request and dropped once the
// connection is gone (a cleanup on its Downstream).
type connBuckets struct {
	mu sync.Mutex
	m  map[weak.Pointer[filters.Downstream]]*bucket // guarded by mu
}

// get returns d's bucket, a copy of tmpl's settings, full at first.
func (cb *connBuckets) get(d *filters.Downstream, tmpl *bucket, now time.Time) *bucket {
	key := weak.Make(d)
	cb.mu.Lock()
	defer cb.mu.Unlock()
	if b := cb.m[key]; b != nil {
		return b
	}
	if cb.m == nil {
		cb.m = map[weak.Pointer[filters.Downstream]]*bucket{}
	}
	b := newBucket(tmpl.max, tmpl.perFill, tmpl.interval, now)
	cb.m[key] = b
	runtime.AddCleanup(d, cb.drop, key)
	return b
}

func (cb *connBuckets) drop(key weak.Pointer[filters.Downstream]) {
	cb.mu.Lock()
	delete(cb.m, key)
	cb.mu.Unlock()
}

// len is the number of connections with a bucket (tests).
func (cb *connBuckets) len() int {
	cb.mu.Lock()
	defer cb.mu.Unlock()
	return len(cb.m)
}
