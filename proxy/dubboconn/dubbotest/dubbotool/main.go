// Command dubbotool is a Dubbo provider and consumer for end-to-end tests
// (e2e/cluster/live builds it): both encode with dubbo-go-hessian2, the
// reference codec, through package dubbotest.
//
//	dubbotool provide --listen IP:PORT --name NAME
//	dubbotool consume --addr HOST:PORT --calls N [--in-flight 1] [--service com.example.Greeter]
//	                  [--method hello] [--version V] [--group G] [--timeout 10s] [--interval 0]
//
// provide answers every call "NAME: method(args)" until killed. consume
// makes its calls on ONE connection to addr, at most --in-flight at once,
// starting one every --interval at most, each bounded by --timeout (sent
// as the timeout attachment too), and prints a JSON line per call:
// {"i":0,"start":UNIX_NANOS,"end":UNIX_NANOS,"status":20,"from":"NAME","error":""}.
// It exits 0 once every call has an outcome, 1 when the connection could
// not be made.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	hessian "github.com/apache/dubbo-go-hessian2"

	"github.com/gowaypoint/waypoint/proxy/dubboconn/dubbotest"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: dubbotool provide|consume [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "provide":
		err = provide(os.Args[2:])
	case "consume":
		err = consume(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q (provide, consume)", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "dubbotool:", err)
		os.Exit(1)
	}
}

func provide(args []string) error {
	fs := flag.NewFlagSet("provide", flag.ExitOnError)
	listen := fs.String("listen", "", "address to serve Dubbo on")
	name := fs.String("name", "", "the provider's name, first in every answer")
	fs.Parse(args)
	if *listen == "" || *name == "" {
		return fmt.Errorf("provide: --listen and --name are required")
	}
	p, err := dubbotest.StartProvider(*listen, *name, nil)
	if err != nil {
		return err
	}
	fmt.Fprintln(os.Stderr, "dubbotool: provider", *name, "on", p.Addr())
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
	p.Close()
	fmt.Fprintln(os.Stderr, "dubbotool: provider", *name, "answered", p.Calls.Load(), "calls")
	return nil
}

// outcome is one call's line.
type outcome struct {
	I      int    `json:"i"`
	Start  int64  `json:"start"`
	End    int64  `json:"end"`
	Status int    `json:"status"`
	From   string `json:"from,omitempty"`
	Error  string `json:"error,omitempty"`
}

func consume(args []string) error {
	fs := flag.NewFlagSet("consume", flag.ExitOnError)
	addr := fs.String("addr", "", "address to connect to (e.g. an `hbone connect` listener)")
	calls := fs.Int("calls", 1, "calls to make")
	inFlight := fs.Int("in-flight", 1, "calls in flight at most")
	service := fs.String("service", "com.example.Greeter", "the interface called")
	method := fs.String("method", "hello", "the method called")
	version := fs.String("version", "", "the service version (the version attachment)")
	group := fs.String("group", "", "the service group (the group attachment)")
	timeout := fs.Duration("timeout", 10*time.Second, "each call's timeout (also sent as the timeout attachment)")
	interval := fs.Duration("interval", 0, "the least time between the starts of two calls")
	fs.Parse(args)
	if *addr == "" || *calls < 1 || *inFlight < 1 {
		return fmt.Errorf("consume: --addr, --calls >= 1 and --in-flight >= 1 are required")
	}
	c, err := dubbotest.Dial(*addr)
	if err != nil {
		return err
	}
	defer c.Close()
	// The codec sends the version, the group and the timeout as
	// attachments, as a Java consumer does.
	svc := hessian.Service{Path: *service, Interface: *service, Method: *method, Version: *version, Group: *group,
		Timeout: *timeout}
	var (
		next  atomic.Int64
		outMu sync.Mutex
		wg    sync.WaitGroup
		enc   = json.NewEncoder(os.Stdout)
		tick  <-chan time.Time
	)
	if *interval > 0 {
		t := time.NewTicker(*interval)
		defer t.Stop()
		tick = t.C
	}
	var pace sync.Mutex
	for range *inFlight {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= *calls {
					return
				}
				if tick != nil {
					pace.Lock()
					<-tick
					pace.Unlock()
				}
				o := outcome{I: i, Start: time.Now().UnixNano()}
				ctx, cancel := context.WithTimeout(context.Background(), *timeout+5*time.Second)
				r, err := c.Call(ctx, svc, []any{strconv.Itoa(i)}, nil)
				cancel()
				o.End = time.Now().UnixNano()
				switch {
				case err != nil:
					o.Error = err.Error()
				default:
					o.Status = int(r.Status)
					if v, ok := r.Value.(string); ok {
						o.From, _, _ = strings.Cut(v, ":")
					}
					if r.Status != 20 {
						o.Error = r.ErrorMessage
					}
				}
				outMu.Lock()
				enc.Encode(o)
				outMu.Unlock()
			}
		}()
	}
	wg.Wait()
	return nil
}
