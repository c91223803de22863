// Package failpoint is ragkv's fault-injection hooks: named points in write paths
// (chunkcache put, commit, demotion, eviction and promotion; the Badger store's put and
// delete; retrieval's ingest, compaction and rebuild steps) that do nothing unless armed.
//
// A point is declared once, at package level, and evaluated where the step happens:
//
//	var fpStored = failpoint.New("chunkcache/commit/tier-stored", "a tier stored the object, the index does not know it yet")
//	...
//	if err := fpStored.Inject(); err != nil { ... } // or fpStored.Hit() where no error can be returned
//
// Unarmed, Inject is one atomic load. A point is armed
//   - for a child process, by the environment variable RAGKV_FAILPOINTS, read once at
//     start: "name=action[;name=action...]";
//   - in a test, by Enable(name, action) / EnableFunc(name, fn), and disarmed by
//     Disable or Reset.
//
// Actions (the optional "@K" fires on the K-th evaluation only, "@K+" on the K-th and
// every later one; without it every evaluation fires):
//
//	error          Inject returns an error wrapping ErrInjected (the step fails)
//	exit / exit(N) os.Exit(N) (default 77) in the middle of the step: a crash without
//	               deferred functions, flushes or Close — what SIGKILL leaves behind
//	sleep(D)       sleep for the time.Duration D, then go on (widens race windows)
//	off            disarmed
//
// Why not github.com/pingcap/failpoint: it rewrites the source (failpoint-ctl enable)
// before a build with failpoints and back afterwards, so a test binary and a released
// binary are different code and `go test` needs a code-generation step; its runtime
// also pulls in a parser of its own term language. These hooks are plain function
// calls that cost one atomic load when unarmed, so the binary that is tested is the
// binary that ships, and a child process is armed with an environment variable.
//
// exit is the one place outside main that ends the process: it exists only to be armed
// by a test (or an operator reproducing a crash) and never fires otherwise.
package failpoint

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// EnvVar is the environment variable that arms points at process start.
const EnvVar = "RAGKV_FAILPOINTS"

// ExitCode is the default exit status of the exit action.
const ExitCode = 77

// ErrInjected is wrapped by the error an armed "error" action returns.
var ErrInjected = errors.New("failpoint: injected failure")

// Point is one named hook. Its methods are safe for concurrent use.
type Point struct {
	name, doc string
	armed     atomic.Pointer[action]
	hits      atomic.Int64 // evaluations while armed
}

type action struct {
	kind  string // error, exit, sleep, func
	code  int
	sleep time.Duration
	fn    func() error
	at    int64 // 0: every hit; else the at-th hit (from = true: and later ones)
	from  bool
	spec  string
}

var (
	mu      sync.Mutex
	points  = map[string]*Point{}
	pending = map[string]*action{} // armed before the point was declared (env, Enable)
	envErr  error
)

func init() {
	if v := os.Getenv(EnvVar); v != "" {
		envErr = parseEnv(v)
	}
}

// EnvError reports a malformed RAGKV_FAILPOINTS (nil if it parsed or is unset).
func EnvError() error { return envErr }

func parseEnv(v string) error {
	var errs []error
	for _, item := range strings.FieldsFunc(v, func(r rune) bool { return r == ';' || r == ',' }) {
		name, spec, ok := strings.Cut(strings.TrimSpace(item), "=")
		if !ok {
			errs = append(errs, fmt.Errorf("failpoint: %q: want name=action", item))
			continue
		}
		if err := Enable(name, spec); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// New declares the point name (doc says where it sits). Declaring a name twice returns
// the same point.
func New(name, doc string) *Point {
	mu.Lock()
	defer mu.Unlock()
	if p, ok := points[name]; ok {
		return p
	}
	p := &Point{name: name, doc: doc}
	if a, ok := pending[name]; ok {
		p.armed.Store(a)
	}
	points[name] = p
	return p
}

// Name is the point's name.
func (p *Point) Name() string { return p.name }

// Inject evaluates the point: nil unless it is armed and fires. An "error" action
// returns an error wrapping ErrInjected; "exit" does not return.
func (p *Point) Inject() error {
	a := p.armed.Load()
	if a == nil {
		return nil
	}
	n := p.hits.Add(1)
	if a.at > 0 && (n < a.at || (!a.from && n > a.at)) {
		return nil
	}
	switch a.kind {
	case "error":
		return fmt.Errorf("%w at %s", ErrInjected, p.name)
	case "exit":
		os.Exit(a.code)
	case "sleep":
		time.Sleep(a.sleep)
	case "func":
		return a.fn()
	}
	return nil
}

// Hit evaluates a point between two steps, where there is no failure to return: only
// exit, sleep and functions act there (an "error" action is ignored).
func (p *Point) Hit() { _ = p.Inject() }

// Hits is how many times the point was evaluated since it was last armed.
func (p *Point) Hits() int64 { return p.hits.Load() }

// Enable arms name with an action (see the package doc). The point need not be
// declared yet: it is armed when it is.
func Enable(name, spec string) error {
	a, err := parse(spec)
	if err != nil {
		return fmt.Errorf("failpoint %s: %w", name, err)
	}
	arm(name, a)
	return nil
}

// EnableFunc arms name with fn: Inject returns fn's error.
func EnableFunc(name string, fn func() error) {
	arm(name, &action{kind: "func", fn: fn, spec: "func"})
}

func arm(name string, a *action) {
	mu.Lock()
	defer mu.Unlock()
	if a == nil {
		delete(pending, name)
	} else {
		pending[name] = a
	}
	if p, ok := points[name]; ok {
		p.hits.Store(0)
		p.armed.Store(a)
	}
}

// Disable disarms name.
func Disable(name string) { arm(name, nil) }

// Reset disarms every point.
func Reset() {
	mu.Lock()
	defer mu.Unlock()
	clear(pending)
	for _, p := range points {
		p.armed.Store(nil)
		p.hits.Store(0)
	}
}

// Lookup returns the declared point name, if any.
func Lookup(name string) (*Point, bool) {
	mu.Lock()
	defer mu.Unlock()
	p, ok := points[name]
	return p, ok
}

// Names lists the declared points (sorted), filtered by prefix.
func Names(prefix string) []string {
	mu.Lock()
	defer mu.Unlock()
	var out []string
	for n := range points {
		if strings.HasPrefix(n, prefix) {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out
}

// Doc is the description a point was declared with.
func Doc(name string) string {
	if p, ok := Lookup(name); ok {
		return p.doc
	}
	return ""
}

// parse reads "action[(arg)][@K[+]]".
func parse(spec string) (*action, error) {
	spec = strings.TrimSpace(spec)
	a := &action{spec: spec}
	if i := strings.LastIndexByte(spec, '@'); i >= 0 {
		at := spec[i+1:]
		a.from = strings.HasSuffix(at, "+")
		k, err := strconv.ParseInt(strings.TrimSuffix(at, "+"), 10, 64)
		if err != nil || k < 1 {
			return nil, fmt.Errorf("bad hit count %q in %q (want @K or @K+, K ≥ 1)", at, spec)
		}
		a.at = k
		spec = spec[:i]
	}
	kind, arg := spec, ""
	if i := strings.IndexByte(spec, '('); i >= 0 {
		if !strings.HasSuffix(spec, ")") {
			return nil, fmt.Errorf("unclosed argument in %q", spec)
		}
		kind, arg = spec[:i], spec[i+1:len(spec)-1]
	}
	switch kind {
	case "off":
		return nil, nil
	case "error":
		if arg != "" {
			return nil, fmt.Errorf("error takes no argument (%q)", spec)
		}
	case "exit":
		a.code = ExitCode
		if arg != "" {
			c, err := strconv.Atoi(arg)
			if err != nil || c < 0 || c > 255 {
				return nil, fmt.Errorf("bad exit code %q", arg)
			}
			a.code = c
		}
	case "sleep":
		d, err := time.ParseDuration(arg)
		if err != nil || d < 0 {
			return nil, fmt.Errorf("bad sleep duration %q", arg)
		}
		a.sleep = d
	default:
		return nil, fmt.Errorf("unknown action %q (want error, exit[(N)], sleep(D) or off)", kind)
	}
	a.kind = kind
	return a, nil
}
