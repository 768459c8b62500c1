package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// reqKind is one of the four kinds of request the generator sends in
// turn: HTTP/1.1 or h2c inside the HBONE stream, to the cluster that
// speaks HTTP/1.1 to the pods (/) or HTTP/2 (/h2).
type reqKind struct {
	name string
	path string
	h2c  bool
}

var reqKinds = [4]reqKind{
	{"http1 to http1", "/", false},
	{"http1 to h2", "/h2", false},
	{"h2c to http1", "/", true},
	{"h2c to h2", "/h2", true},
}

const (
	// lateAfter: a request sent this long after its time counts as late.
	lateAfter = 10 * time.Millisecond
	// maxLag: a request that finds no free worker this long after its
	// time is not sent.
	maxLag = time.Second
	// requestTimeout bounds each request, answer and body.
	requestTimeout = 10 * time.Second
	// maxReasons bounds the distinct failure reasons kept.
	maxReasons = 50
)

// loadgen sends requests at a fixed rate whatever the answers take (open
// loop): request i is due at start + i/rate and is handed to the first
// free worker; when none is free the schedule does not wait for one, the
// requests due meanwhile queue behind it and go out as workers free up,
// late. Latency is measured from the time a request was due, so that a
// stall shows in it even while the workers wait.
//
// The workers share two transports (HTTP/1.1 keep-alive connections, and
// h2c connections multiplexing streams) to the source ztunnel, each
// connection one HBONE stream to the waypoint. run owns the workers; the
// counters and take are safe for concurrent use.
type loadgen struct {
	entry       string
	rate        float64
	concurrency int
	h1, h2      *http.Client

	scheduled, sent, ok, failed, late, missed atomic.Int64
	byConfig                                  [2]atomic.Int64 // 200s served by each config version

	mu      sync.Mutex
	lat     []time.Duration  // this interval's latencies
	ivFail  int64            // this interval's failures
	ivLate  int64            // this interval's requests sent late
	reasons map[string]int64 // failure reason -> count
	first   []string         // the first failures, with their time
	pushes  []*configPush    // every config push, in order
	hist    [histBuckets]int64
	maxLat  time.Duration // over the run

	cur atomic.Pointer[configPush] // the last config push
}

// configPush is one flip of the config, and when a response first showed
// it.
type configPush struct {
	version int
	at      time.Time
	seenAt  atomic.Int64 // UnixNano of the first response served by it; 0 before
}

func newLoadgen(entry string, rate float64, concurrency int) *loadgen {
	h1 := &http.Transport{MaxIdleConnsPerHost: concurrency, DisableCompression: true}
	h2 := &http.Transport{DisableCompression: true}
	h2.Protocols = new(http.Protocols)
	h2.Protocols.SetUnencryptedHTTP2(true)
	return &loadgen{entry: entry, rate: rate, concurrency: concurrency,
		h1:      &http.Client{Transport: h1, Timeout: requestTimeout},
		h2:      &http.Client{Transport: h2, Timeout: requestTimeout},
		reasons: map[string]int64{}}
}

type job struct {
	due  time.Time
	kind int
}

// run sends requests until ctx is done, then waits for the ones in flight
// and closes the connections.
func (g *loadgen) run(ctx context.Context) {
	jobs := make(chan job)
	var wg sync.WaitGroup
	for range g.concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				g.do(j)
			}
		}()
	}
	defer func() {
		close(jobs)
		wg.Wait()
		g.h1.CloseIdleConnections()
		g.h2.CloseIdleConnections()
	}()
	period := time.Duration(float64(time.Second) / g.rate)
	start := time.Now()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for i := int64(0); ; i++ {
		due := start.Add(time.Duration(i) * period)
		if d := time.Until(due); d > 0 {
			timer.Reset(d)
			select {
			case <-ctx.Done():
				return
			case <-timer.C:
			}
		} else if ctx.Err() != nil {
			return
		}
		g.scheduled.Add(1)
		j := job{due: due, kind: int(i % int64(len(reqKinds)))}
		select {
		case jobs <- j:
			continue
		default:
		}
		// Every worker is busy: wait for one until the request is maxLag late.
		timer.Reset(time.Until(due.Add(maxLag)))
		select {
		case jobs <- j:
			timer.Stop() // Go 1.23 timers: nothing stale is left in timer.C
		case <-timer.C:
			g.missed.Add(1)
		case <-ctx.Done():
			g.scheduled.Add(-1) // the run ended before it was due to be sent or missed
			return
		}
	}
}

// do sends one request and records its outcome.
func (g *loadgen) do(j job) {
	start := time.Now()
	late := start.Sub(j.due) > lateAfter
	if late {
		g.late.Add(1)
	}
	g.sent.Add(1)
	k := reqKinds[j.kind]
	client := g.h1
	if k.h2c {
		client = g.h2
	}
	var failure string
	version := -1
	resp, err := client.Get("http://" + g.entry + k.path)
	if err != nil {
		failure = fmt.Sprintf("%s: %v", k.name, err)
	} else {
		body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
		resp.Body.Close()
		switch h := resp.Header.Get(configHeader); {
		case err != nil:
			failure = fmt.Sprintf("%s: reading the body: %v", k.name, err)
		case resp.StatusCode != http.StatusOK:
			failure = fmt.Sprintf("%s: status %d, %q", k.name, resp.StatusCode, body)
		case string(body) != "ok":
			failure = fmt.Sprintf("%s: 200 with body %q", k.name, body)
		case h == configNames[0]:
			version = 0
		case h == configNames[1]:
			version = 1
		default:
			failure = fmt.Sprintf("%s: 200 with %s %q", k.name, configHeader, h)
		}
	}
	end := time.Now()
	if failure == "" {
		g.ok.Add(1)
		g.byConfig[version].Add(1)
		if p := g.cur.Load(); p != nil && p.version == version && p.seenAt.Load() == 0 {
			p.seenAt.CompareAndSwap(0, end.UnixNano())
		}
	} else {
		g.failed.Add(1)
	}
	g.mu.Lock()
	lat := end.Sub(j.due)
	g.lat = append(g.lat, lat)
	g.hist[bucketOf(lat)]++
	g.maxLat = max(g.maxLat, lat)
	if late {
		g.ivLate++
	}
	if failure != "" {
		g.ivFail++
		if _, ok := g.reasons[failure]; ok || len(g.reasons) < maxReasons {
			g.reasons[failure]++
		} else {
			g.reasons["(other reasons)"]++
		}
		if len(g.first) < 20 {
			g.first = append(g.first, end.UTC().Format("15:04:05.000")+" "+failure)
		}
	}
	g.mu.Unlock()
}

// pushed notes that config version v was pushed at t.
func (g *loadgen) pushed(v int, t time.Time) {
	p := &configPush{version: v, at: t}
	g.mu.Lock()
	g.pushes = append(g.pushes, p)
	g.mu.Unlock()
	g.cur.Store(p)
}

// interval is what the requests finished since the last take showed.
type interval struct {
	requests, failures int64
	late               int64         // sent more than lateAfter after their time
	p50, p99, max      time.Duration // 0 when no request finished
}

// take returns the interval's figures and starts the next one.
func (g *loadgen) take() interval {
	g.mu.Lock()
	lat, failed, late := g.lat, g.ivFail, g.ivLate
	g.lat, g.ivFail, g.ivLate = make([]time.Duration, 0, cap(lat)), 0, 0
	g.mu.Unlock()
	iv := interval{requests: int64(len(lat)), failures: failed, late: late}
	if len(lat) > 0 {
		slices.Sort(lat)
		iv.p50, iv.p99, iv.max = quantile(lat, 0.50), quantile(lat, 0.99), lat[len(lat)-1]
	}
	return iv
}

// quantile is the q-quantile of sorted (nearest rank).
func quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.999999999) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// The whole run's latencies are counted in log buckets: bucket 0 below
// histBase, bucket i ≥ 1 from histBase·histGrowth^(i-1), 2% wide.
const (
	histBase    = 10 * time.Microsecond
	histGrowth  = 1.02
	histBuckets = 800 // to 10 µs·1.02^799, about 77 s
)

func bucketOf(d time.Duration) int {
	if d < histBase {
		return 0
	}
	i := int(math.Log(float64(d)/float64(histBase))/math.Log(histGrowth)) + 1
	return min(i, histBuckets-1)
}

// bucketTop is the upper bound of bucket i.
func bucketTop(i int) time.Duration {
	return time.Duration(float64(histBase) * math.Pow(histGrowth, float64(i)))
}

// overall is the whole run's p50 and p99 (to 2%) and max; ok is false
// before any request finished.
func (g *loadgen) overall() (p50, p99, maxLat time.Duration, ok bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	var n int64
	for _, c := range g.hist {
		n += c
	}
	if n == 0 {
		return 0, 0, 0, false
	}
	at := func(q float64) time.Duration {
		rank := int64(math.Ceil(q * float64(n)))
		var seen int64
		for i, c := range g.hist {
			if seen += c; seen >= rank {
				return min(bucketTop(i), g.maxLat)
			}
		}
		return g.maxLat
	}
	return at(0.5), at(0.99), g.maxLat, true
}

// propagation is, for each config push, how long until a response showed
// it (-1: never), and how many pushes were never seen although the next
// push or the end came more than settle after them.
func (g *loadgen) propagation(end time.Time, settle time.Duration) (delays []time.Duration, unseen int) {
	g.mu.Lock()
	pushes := slices.Clone(g.pushes)
	g.mu.Unlock()
	for i, p := range pushes {
		next := end
		if i+1 < len(pushes) {
			next = pushes[i+1].at
		}
		if s := p.seenAt.Load(); s != 0 {
			delays = append(delays, time.Unix(0, s).Sub(p.at))
		} else if next.Sub(p.at) > settle {
			unseen++
		}
	}
	return delays, unseen
}

// failures returns the failure reasons, the most frequent first, and the
// first failures seen.
func (g *loadgen) failures() (reasons []reasonCount, first []string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for r, n := range g.reasons {
		reasons = append(reasons, reasonCount{r, n})
	}
	slices.SortFunc(reasons, func(a, b reasonCount) int {
		return cmp.Or(cmp.Compare(b.n, a.n), strings.Compare(a.reason, b.reason))
	})
	return reasons, slices.Clone(g.first)
}

type reasonCount struct {
	reason string
	n      int64
}
