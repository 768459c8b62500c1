// Package cli holds what the commands share: logging flags and signal
// handling.
package cli

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

// LogFlags registers --log-level and --log-format on fs and returns a
// function that builds the logger once flags are parsed.
func LogFlags(fs *flag.FlagSet) func() (*slog.Logger, error) {
	f := LogFlagsLevel(fs)
	return func() (*slog.Logger, error) {
		l, _, err := f()
		return l, err
	}
}

// LogFlagsLevel is LogFlags that also returns the level the logger's
// handler reads, for changing it at run time (the admin's /logging).
func LogFlagsLevel(fs *flag.FlagSet) func() (*slog.Logger, *slog.LevelVar, error) {
	level := fs.String("log-level", "info", "log level: debug, info, warn or error")
	format := fs.String("log-format", "text", "log format: text or json")
	return func() (*slog.Logger, *slog.LevelVar, error) {
		lv := new(slog.LevelVar)
		if err := lv.UnmarshalText([]byte(*level)); err != nil {
			return nil, nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", *level)
		}
		opts := &slog.HandlerOptions{Level: lv}
		switch strings.ToLower(*format) {
		case "text":
			return slog.New(slog.NewTextHandler(os.Stderr, opts)), lv, nil
		case "json":
			return slog.New(slog.NewJSONHandler(os.Stderr, opts)), lv, nil
		default:
			return nil, nil, fmt.Errorf("--log-format %q: want text or json", *format)
		}
	}
}

// Signals calls reload on SIGHUP until ctx ends, and returns a context
// cancelled on SIGTERM or SIGINT.
func Signals(ctx context.Context, reload func()) context.Context {
	ctx, _ = signal.NotifyContext(ctx, syscall.SIGTERM, os.Interrupt)
	if reload != nil {
		hup := make(chan os.Signal, 1)
		signal.Notify(hup, syscall.SIGHUP)
		go func() {
			for {
				select {
				case <-ctx.Done():
					signal.Stop(hup)
					return
				case <-hup:
					reload()
				}
			}
		}()
	}
	return ctx
}

// Fatal prints err and exits 1.
func Fatal(err error) {
	fmt.Fprintln(os.Stderr, "error:", err)
	os.Exit(1)
}
