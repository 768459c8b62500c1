package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// fortioResult is the part of `fortio load -json` the harness reads.
type fortioResult struct {
	RunType           string
	ActualQPS         float64
	ActualDuration    int64 // nanoseconds
	NumThreads        int
	RetCodes          map[string]int64
	DurationHistogram struct {
		Count       int64
		Percentiles []struct {
			Percentile float64
			Value      float64 // seconds
		}
	}
	Sizes struct{ Avg float64 }
}

// percentile returns the latency at p (seconds), or -1 when fortio did not
// report it.
func (r *fortioResult) percentile(p float64) float64 {
	for _, q := range r.DurationHistogram.Percentiles {
		if q.Percentile == p {
			return q.Value
		}
	}
	return -1
}

// okCode is the result code of a successful call: HTTP 200, or the gRPC
// ping's SERVING.
func okCode(grpc bool) string {
	if grpc {
		return "SERVING"
	}
	return "200"
}

// failures counts the calls whose code is not okCode: HTTP errors, socket
// errors (fortio's -1) and failed gRPC calls.
func (r *fortioResult) failures(grpc bool) int64 {
	var n int64
	for code, c := range r.RetCodes {
		if code != okCode(grpc) {
			n += c
		}
	}
	return n
}

// requests is every call the proxy served during fortio's run: the
// measured ones and one warm-up call per connection.
func (r *fortioResult) requests() int64 { return r.DurationHistogram.Count + int64(r.NumThreads) }

// fortioPercentiles are the latency percentiles asked of fortio (-p).
var fortioPercentiles = []float64{50, 90, 99, 99.9}

// fortioArgs builds a `fortio load` command line for scenario s against
// target, at rate (0: closed loop) for d.
func fortioArgs(o *options, s scenario, target string, rate float64, d time.Duration, jsonPath string) []string {
	// -allow-initial-errors: a failed first call on a connection is
	// counted like any other instead of aborting the run.
	args := []string{"load", "-quiet", "-allow-initial-errors", "-json", jsonPath, "-p", "50,90,99,99.9",
		"-c", strconv.Itoa(o.conns), "-t", d.String(), "-qps", strconv.FormatFloat(rate, 'f', -1, 64)}
	if rate > 0 && o.uniform {
		// Spread the connections' requests over each interval rather than
		// firing them together.
		args = append(args, "-uniform")
	}
	switch s.protocol {
	case "h2c":
		args = append(args, "-h2")
	case "grpc":
		args = append(args, "-grpc", "-ping", "-payload-size", strconv.Itoa(o.size))
	}
	return append(args, target)
}

// runFortio runs fortio as a supervised process and reads its JSON result.
// ctx's end stops it.
func (r *runner) runFortio(ctx context.Context, name string, args []string, jsonPath string) (*fortioResult, error) {
	p, err := r.sup.start(name, nil, r.tools.fortio, args...)
	if err != nil {
		return nil, err
	}
	select {
	case <-p.done:
	case <-ctx.Done():
		p.stop(0)
		return nil, ctx.Err()
	}
	if p.err != nil {
		return nil, fmt.Errorf("fortio %v: %v; its last output (%s):\n%s", args, p.err, p.logPath, p.logTail(10))
	}
	return readFortioJSON(jsonPath)
}

func readFortioJSON(path string) (*fortioResult, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("fortio result: %w", err)
	}
	var res fortioResult
	if err := json.Unmarshal(b, &res); err != nil {
		return nil, fmt.Errorf("fortio result %s: %w", filepath.Base(path), err)
	}
	if res.DurationHistogram.Count == 0 {
		return nil, fmt.Errorf("fortio result %s: no calls completed (codes %v)", filepath.Base(path), res.RetCodes)
	}
	return &res, nil
}
