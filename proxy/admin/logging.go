package admin

import (
	"fmt"
	"log/slog"
	"net/http"
	"sort"
	"strings"
	"sync"
)

// Loggers are the named loggers /logging lists and sets, each a
// slog.LevelVar its handler reads. Safe for concurrent use.
type Loggers struct {
	mu     sync.Mutex
	levels map[string]*slog.LevelVar
}

// NewLoggers returns the loggers by name.
func NewLoggers(levels map[string]*slog.LevelVar) *Loggers {
	return &Loggers{levels: levels}
}

// The levels of Envoy's loggers, as slog levels: trace is below debug,
// critical above error, off above everything.
var envoyLevels = []struct {
	name  string
	level slog.Level
}{
	{"trace", slog.LevelDebug - 4},
	{"debug", slog.LevelDebug},
	{"info", slog.LevelInfo},
	{"warning", slog.LevelWarn},
	{"error", slog.LevelError},
	{"critical", slog.LevelError + 4},
	{"off", slog.LevelError + 100},
}

// ParseLevel reads one of Envoy's level names (and "warn").
func ParseLevel(s string) (slog.Level, bool) {
	if s == "warn" {
		s = "warning"
	}
	for _, l := range envoyLevels {
		if l.name == s {
			return l.level, true
		}
	}
	return 0, false
}

// LevelName is Envoy's name for l: the highest Envoy level at or below l.
func LevelName(l slog.Level) string {
	name := envoyLevels[0].name
	for _, e := range envoyLevels {
		if l >= e.level {
			name = e.name
		}
	}
	return name
}

// Text lists the loggers as Envoy does: "active loggers:" then
// "  name: level" per logger, by name.
func (ls *Loggers) Text() string {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	names := make([]string, 0, len(ls.levels))
	for n := range ls.levels {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	b.WriteString("active loggers:\n")
	for _, n := range names {
		fmt.Fprintf(&b, "  %s: %s\n", n, LevelName(ls.levels[n].Level()))
	}
	return b.String()
}

// Set sets every logger's level (name "") or one logger's.
func (ls *Loggers) Set(name, level string) error {
	l, ok := ParseLevel(level)
	if !ok {
		return fmt.Errorf("error: unknown logger level %q", level)
	}
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if name == "" {
		for _, v := range ls.levels {
			v.Set(l)
		}
		return nil
	}
	v := ls.levels[name]
	if v == nil {
		return fmt.Errorf("error: unknown logger name %q", name)
	}
	v.Set(l)
	return nil
}

const loggingUsage = `usage: /logging?<name>=<level> (change single level)
usage: /logging?paths=name1:level1,name2:level2,... (change multiple levels)
usage: /logging?level=<level> (change all levels)
levels: trace debug info warning error critical off
`

// logging answers /logging: GET lists the loggers; POST with level=,
// paths= or <logger>= changes them (Envoy's query forms) and lists them.
func (src Sources) logging(w http.ResponseWriter, r *http.Request) {
	ls := src.Loggers
	if ls == nil {
		http.NotFound(w, r)
		return
	}
	q := r.URL.Query()
	if len(q) > 0 {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			http.Error(w, "This endpoint requires POST.", http.StatusMethodNotAllowed)
			return
		}
		if err := ls.apply(q); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			writeText(w, err.Error()+"\n"+loggingUsage)
			return
		}
	}
	writeText(w, ls.Text())
}

func (ls *Loggers) apply(q map[string][]string) error {
	if len(q) != 1 {
		return fmt.Errorf("error: one parameter at a time")
	}
	for k, vs := range q {
		v := ""
		if len(vs) > 0 {
			v = vs[0]
		}
		switch k {
		case "level":
			return ls.Set("", v)
		case "paths":
			for _, p := range strings.Split(v, ",") {
				name, level, ok := strings.Cut(p, ":")
				if !ok {
					return fmt.Errorf("error: paths: want name:level, got %q", p)
				}
				if err := ls.Set(name, level); err != nil {
					return err
				}
			}
			return nil
		default:
			return ls.Set(k, v)
		}
	}
	return nil
}
