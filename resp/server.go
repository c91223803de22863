package resp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ragkv/ragkv/chunkcache"
)

// ErrNotLoopback is returned by Listen for an address that is not a loopback one.
var ErrNotLoopback = errors.New("resp: the RESP endpoint has no authentication yet, so it listens only on loopback addresses")

// Options configures a Server.
type Options struct {
	// Namespace of the chunk cache holding the values (default "resp").
	Namespace string
	// WriteThrough stores every SET in the write-through tiers (disk, remote) at once
	// (see chunkcache.ValueOptions); default off: a SET lands in RAM and moves down
	// on eviction, as in Redis without AOF.
	WriteThrough bool
	// MaxBulkBytes bounds one argument (default 512 MiB, Redis's proto-max-bulk-len);
	// MaxArgs the arguments of one command (default 1Mi).
	MaxBulkBytes int64
	MaxArgs      int
	// SweepInterval is how often expired values are deleted (default 1s; negative:
	// never, expired values then go on access or eviction).
	SweepInterval time.Duration
	// Version is reported by INFO and HELLO.
	Version    string
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// EnsureDefaults fills in zero fields.
func (o *Options) EnsureDefaults() {
	if o.Namespace == "" {
		o.Namespace = "resp"
	}
	if o.MaxBulkBytes == 0 {
		o.MaxBulkBytes = DefaultMaxBulkBytes
	}
	if o.MaxArgs == 0 {
		o.MaxArgs = DefaultMaxArgs
	}
	if o.SweepInterval == 0 {
		o.SweepInterval = time.Second
	}
	if o.Version == "" {
		o.Version = "dev"
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

// Validate checks the options.
func (o *Options) Validate() error {
	if _, err := chunkcache.NormalizeNamespace(o.Namespace); err != nil {
		return fmt.Errorf("resp: %w", err)
	}
	if o.MaxBulkBytes < 1 || o.MaxArgs < 1 {
		return fmt.Errorf("resp: max bulk bytes %d, max args %d (want ≥ 1)", o.MaxBulkBytes, o.MaxArgs)
	}
	return nil
}

// Server serves one namespace of a chunk cache over RESP2. It does not own the cache.
type Server struct {
	c    *chunkcache.Cache
	o    Options
	ns   string
	log  *slog.Logger
	met  *metrics
	stop chan struct{}
	wg   sync.WaitGroup

	mu     sync.Mutex
	lis    []net.Listener
	conns  map[*conn]struct{}
	closed bool
	nextID atomic.Int64

	commands, hits, misses atomic.Uint64
	started                time.Time
}

// New returns a server over c. Start it with Serve.
func New(c *chunkcache.Cache, o Options) (*Server, error) {
	o.EnsureDefaults()
	if err := o.Validate(); err != nil {
		return nil, err
	}
	ns, _ := chunkcache.NormalizeNamespace(o.Namespace)
	s := &Server{c: c, o: o, ns: ns, log: o.Logger, stop: make(chan struct{}), conns: map[*conn]struct{}{}, started: time.Now()}
	var err error
	if s.met, err = newMetrics(o.Registerer, s); err != nil {
		return nil, err
	}
	if o.SweepInterval > 0 {
		s.wg.Add(1)
		go s.sweepLoop()
	}
	return s, nil
}

// Listen listens on addr, which must be a loopback address (127.0.0.0/8, ::1 or a
// name resolving only to those): the endpoint has no authentication yet.
func Listen(addr string) (net.Listener, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("resp: listen address %q: %w", addr, err)
	}
	if host == "" {
		return nil, fmt.Errorf("%w: %q names no host (use e.g. 127.0.0.1:6380)", ErrNotLoopback, addr)
	}
	if ip := net.ParseIP(host); ip != nil {
		if !ip.IsLoopback() {
			return nil, fmt.Errorf("%w: %s is not one", ErrNotLoopback, host)
		}
	} else {
		ips, err := net.LookupIP(host)
		if err != nil {
			return nil, fmt.Errorf("resp: listen address %q: %w", addr, err)
		}
		for _, ip := range ips {
			if !ip.IsLoopback() {
				return nil, fmt.Errorf("%w: %s resolves to %s", ErrNotLoopback, host, ip)
			}
		}
	}
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("resp: %w", err)
	}
	if ta, ok := lis.Addr().(*net.TCPAddr); !ok || !ta.IP.IsLoopback() {
		lis.Close()
		return nil, fmt.Errorf("%w: bound %s", ErrNotLoopback, lis.Addr())
	}
	return lis, nil
}

// Serve accepts connections on lis until Close; it returns nil after Close.
func (s *Server) Serve(lis net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		lis.Close()
		return nil
	}
	s.lis = append(s.lis, lis)
	s.mu.Unlock()
	s.log.Info("resp listening", "addr", lis.Addr().String(), "namespace", s.ns)
	for {
		nc, err := lis.Accept()
		if err != nil {
			select {
			case <-s.stop:
				return nil
			default:
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			return fmt.Errorf("resp: accept: %w", err)
		}
		c := &conn{s: s, nc: nc, id: s.nextID.Add(1), addr: nc.RemoteAddr().String()}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			nc.Close()
			return nil
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go c.serve()
	}
}

// Close stops accepting, closes every connection and waits for their goroutines.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.stop)
	for _, l := range s.lis {
		l.Close()
	}
	for c := range s.conns {
		c.nc.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return nil
}

func (s *Server) sweepLoop() {
	defer s.wg.Done()
	t := time.NewTicker(s.o.SweepInterval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), s.o.SweepInterval)
			s.c.SweepExpired(ctx)
			cancel()
		}
	}
}

func (s *Server) connCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// conn is one client connection, served by one goroutine.
type conn struct {
	s    *Server
	nc   net.Conn
	id   int64
	addr string
	name string
	r    *reader
	w    *writer
	quit bool
}

const bufSize = 64 << 10

func (c *conn) serve() {
	defer c.s.wg.Done()
	defer func() {
		c.nc.Close()
		c.s.mu.Lock()
		delete(c.s.conns, c)
		c.s.mu.Unlock()
	}()
	c.s.met.conns.Inc()
	defer c.s.met.conns.Dec()
	c.r = newReader(countingReader{c.nc, c.s.met.readBytes}, bufSize, c.s.o.MaxBulkBytes, c.s.o.MaxArgs)
	c.w = newWriter(countingWriter{c.nc, c.s.met.writtenBytes}, bufSize)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { // owner: this serve call (ends with it)
		select {
		case <-c.s.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	for !c.quit {
		args, err := c.r.readCommand()
		if err != nil {
			if errors.Is(err, ErrProtocol) {
				c.w.error("ERR " + err.Error())
				_ = c.w.flush()
			}
			return
		}
		if len(args) == 0 {
			continue
		}
		c.s.commands.Add(1)
		c.dispatch(ctx, args)
		if c.r.br.Buffered() == 0 || c.quit {
			if err := c.w.flush(); err != nil {
				return
			}
		}
	}
}

// countingReader and countingWriter count the connection's bytes.
type countingReader struct {
	r io.Reader
	n prometheus.Counter
}

func (r countingReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	r.n.Add(float64(n))
	return n, err
}

type countingWriter struct {
	w io.Writer
	n prometheus.Counter
}

func (w countingWriter) Write(p []byte) (int, error) {
	n, err := w.w.Write(p)
	w.n.Add(float64(n))
	return n, err
}

// cmd is one command's handler; arity as in COMMAND (negative: at least -arity).
type cmd struct {
	name  string
	arity int
	flags []string
	first int // first key argument (0: none), last (-1: all the rest), step
	last  int
	step  int
	run   func(c *conn, ctx context.Context, args [][]byte)
}

var commands map[string]*cmd

func init() {
	list := []*cmd{
		{name: "get", arity: 2, flags: []string{"readonly", "fast"}, first: 1, last: 1, step: 1, run: (*conn).get},
		{name: "set", arity: -3, flags: []string{"write", "denyoom"}, first: 1, last: 1, step: 1, run: (*conn).set},
		{name: "setex", arity: 4, flags: []string{"write", "denyoom"}, first: 1, last: 1, step: 1, run: (*conn).setex},
		{name: "psetex", arity: 4, flags: []string{"write", "denyoom"}, first: 1, last: 1, step: 1, run: (*conn).setex},
		{name: "mget", arity: -2, flags: []string{"readonly", "fast"}, first: 1, last: -1, step: 1, run: (*conn).mget},
		{name: "mset", arity: -3, flags: []string{"write", "denyoom"}, first: 1, last: -1, step: 2, run: (*conn).mset},
		{name: "exists", arity: -2, flags: []string{"readonly", "fast"}, first: 1, last: -1, step: 1, run: (*conn).exists},
		{name: "del", arity: -2, flags: []string{"write"}, first: 1, last: -1, step: 1, run: (*conn).del},
		{name: "unlink", arity: -2, flags: []string{"write", "fast"}, first: 1, last: -1, step: 1, run: (*conn).del},
		{name: "ttl", arity: 2, flags: []string{"readonly", "fast"}, first: 1, last: 1, step: 1, run: (*conn).ttl},
		{name: "pttl", arity: 2, flags: []string{"readonly", "fast"}, first: 1, last: 1, step: 1, run: (*conn).ttl},
		{name: "type", arity: 2, flags: []string{"readonly", "fast"}, first: 1, last: 1, step: 1, run: (*conn).typ},
		{name: "dbsize", arity: 1, flags: []string{"readonly", "fast"}, run: (*conn).dbsize},
		{name: "ping", arity: -1, flags: []string{"fast"}, run: (*conn).ping},
		{name: "echo", arity: 2, flags: []string{"fast"}, run: (*conn).echo},
		{name: "info", arity: -1, flags: []string{"loading", "stale"}, run: (*conn).info},
		{name: "hello", arity: -1, flags: []string{"noscript", "loading", "stale", "fast"}, run: (*conn).hello},
		{name: "auth", arity: -2, flags: []string{"noscript", "loading", "stale", "fast"}, run: (*conn).auth},
		{name: "client", arity: -2, flags: []string{"admin", "noscript", "loading", "stale"}, run: (*conn).client},
		{name: "command", arity: -1, flags: []string{"loading", "stale"}, run: (*conn).command},
		{name: "config", arity: -2, flags: []string{"admin", "noscript", "loading", "stale"}, run: (*conn).config},
		{name: "select", arity: 2, flags: []string{"loading", "stale", "fast"}, run: (*conn).selectDB},
		{name: "quit", arity: -1, flags: []string{"fast"}, run: (*conn).quitCmd},
	}
	commands = make(map[string]*cmd, len(list))
	for _, c := range list {
		commands[c.name] = c
	}
}

func lower(b []byte) string {
	var buf [32]byte
	if len(b) > len(buf) {
		return strings.ToLower(string(b))
	}
	for i, ch := range b {
		if 'A' <= ch && ch <= 'Z' {
			ch += 'a' - 'A'
		}
		buf[i] = ch
	}
	return string(buf[:len(b)])
}

func (c *conn) dispatch(ctx context.Context, args [][]byte) {
	name := lower(args[0])
	k, ok := commands[name]
	if !ok {
		var b strings.Builder
		for _, a := range args[1:] {
			if b.Len() > 128 {
				break
			}
			fmt.Fprintf(&b, "'%.32s' ", a)
		}
		c.s.met.errors.Inc()
		c.w.error(fmt.Sprintf("ERR unknown command '%.64s', with args beginning with: %s", args[0], b.String()))
		return
	}
	if (k.arity > 0 && len(args) != k.arity) || (k.arity < 0 && len(args) < -k.arity) {
		c.s.met.errors.Inc()
		c.w.error(fmt.Sprintf("ERR wrong number of arguments for '%s' command", k.name))
		return
	}
	c.s.met.command(k.name)
	k.run(c, ctx, args)
}

// cacheErr reports a chunk-cache error to the client.
func (c *conn) cacheErr(err error) {
	c.s.met.errors.Inc()
	switch {
	case errors.Is(err, chunkcache.ErrNoSpace), errors.Is(err, chunkcache.ErrTooLarge):
		c.w.error("OOM " + err.Error())
	case errors.Is(err, chunkcache.ErrClosed), errors.Is(err, context.Canceled):
		c.w.error("ERR server shutting down")
	default:
		c.w.error("ERR " + err.Error())
	}
}

func absent(err error) bool {
	return errors.Is(err, chunkcache.ErrNotFound) || errors.Is(err, chunkcache.ErrUnknownNamespace)
}

func (c *conn) get(ctx context.Context, args [][]byte) {
	parts, _, err := c.s.c.GetValue(ctx, c.s.ns, args[1])
	switch {
	case absent(err):
		c.s.misses.Add(1)
		c.w.nilBulk()
	case err != nil:
		c.cacheErr(err)
	default:
		c.s.hits.Add(1)
		c.w.bulkParts(parts)
	}
}

// own returns a value the cache may keep: arguments from the parser's arena are
// copied (see reader.readCommand).
func own(b []byte) []byte {
	if len(b) <= arenaArgBytes {
		return bytes.Clone(b)
	}
	return b
}

func (c *conn) put(ctx context.Context, name, value []byte, ttl time.Duration) bool {
	res, err := c.s.c.PutValue(ctx, c.s.ns, name, own(value), chunkcache.ValueOptions{TTL: ttl, WriteThrough: c.s.o.WriteThrough})
	if err != nil {
		c.cacheErr(err)
		return false
	}
	if !res.Admitted {
		// Every admission filter refused it: like an immediate eviction. Drop an older
		// value so a GET does not return it.
		_, _ = c.s.c.DeleteValue(ctx, c.s.ns, name)
	}
	return true
}

func parseInt(b []byte) (int64, bool) {
	n, err := strconv.ParseInt(string(b), 10, 64)
	return n, err == nil
}

// set: SET key value [EX s | PX ms | EXAT unix-s | PXAT unix-ms | KEEPTTL].
func (c *conn) set(ctx context.Context, args [][]byte) {
	var ttl time.Duration
	seen := false
	keep := false
	for i := 3; i < len(args); i++ {
		opt := lower(args[i])
		switch opt {
		case "ex", "px", "exat", "pxat":
			if seen || keep || i+1 >= len(args) {
				c.w.error("ERR syntax error")
				return
			}
			n, ok := parseInt(args[i+1])
			if !ok {
				c.w.error("ERR value is not an integer or out of range")
				return
			}
			i++
			seen = true
			switch opt {
			case "ex":
				ttl = time.Duration(n) * time.Second
			case "px":
				ttl = time.Duration(n) * time.Millisecond
			case "exat":
				ttl = time.Until(time.Unix(n, 0))
			case "pxat":
				ttl = time.Until(time.UnixMilli(n))
			}
			if n <= 0 || n > int64(1<<62)/int64(time.Second) {
				c.w.error("ERR invalid expire time in 'set' command")
				return
			}
			if ttl <= 0 { // an absolute time in the past: the key is gone at once
				_, _ = c.s.c.DeleteValue(ctx, c.s.ns, args[1])
				c.w.simple("OK")
				return
			}
		case "keepttl":
			if seen {
				c.w.error("ERR syntax error")
				return
			}
			keep = true
		case "nx", "xx", "get":
			c.w.error("ERR SET " + strings.ToUpper(opt) + " is not supported by ragkv (its puts are not conditional)")
			return
		default:
			c.w.error("ERR syntax error")
			return
		}
	}
	if keep {
		left, ok, err := c.s.c.ValueTTL(ctx, c.s.ns, args[1])
		if err != nil && !absent(err) {
			c.cacheErr(err)
			return
		}
		if ok {
			ttl = left
		}
	}
	if c.put(ctx, args[1], args[2], ttl) {
		c.w.simple("OK")
	}
}

func (c *conn) setex(ctx context.Context, args [][]byte) {
	n, ok := parseInt(args[2])
	if !ok {
		c.w.error("ERR value is not an integer or out of range")
		return
	}
	if n <= 0 || n > int64(1<<62)/int64(time.Second) {
		c.w.error(fmt.Sprintf("ERR invalid expire time in '%s' command", lower(args[0])))
		return
	}
	ttl := time.Duration(n) * time.Second
	if lower(args[0]) == "psetex" {
		ttl = time.Duration(n) * time.Millisecond
	}
	if c.put(ctx, args[1], args[3], ttl) {
		c.w.simple("OK")
	}
}

func (c *conn) mget(ctx context.Context, args [][]byte) {
	type res struct {
		parts [][]byte
		err   error
	}
	out := make([]res, len(args)-1)
	for i, name := range args[1:] {
		out[i].parts, _, out[i].err = c.s.c.GetValue(ctx, c.s.ns, name)
		if out[i].err != nil && !absent(out[i].err) {
			c.cacheErr(out[i].err)
			return
		}
	}
	c.w.array(len(out))
	for _, r := range out {
		if r.err != nil {
			c.s.misses.Add(1)
			c.w.nilBulk()
		} else {
			c.s.hits.Add(1)
			c.w.bulkParts(r.parts)
		}
	}
}

func (c *conn) mset(ctx context.Context, args [][]byte) {
	if len(args)%2 != 1 {
		c.w.error("ERR wrong number of arguments for 'mset' command")
		return
	}
	for i := 1; i < len(args); i += 2 {
		if !c.put(ctx, args[i], args[i+1], 0) {
			return
		}
	}
	c.w.simple("OK")
}

func (c *conn) exists(ctx context.Context, args [][]byte) {
	present, err := c.s.c.ValuesPresent(ctx, c.s.ns, args[1:])
	if err != nil {
		c.cacheErr(err)
		return
	}
	n := int64(0)
	for _, p := range present {
		if p {
			n++
		}
	}
	c.w.int(n)
}

func (c *conn) del(ctx context.Context, args [][]byte) {
	n := int64(0)
	for _, name := range args[1:] {
		ok, err := c.s.c.DeleteValue(ctx, c.s.ns, name)
		if err != nil {
			c.cacheErr(err)
			return
		}
		if ok {
			n++
		}
	}
	c.w.int(n)
}

func (c *conn) ttl(ctx context.Context, args [][]byte) {
	left, ok, err := c.s.c.ValueTTL(ctx, c.s.ns, args[1])
	switch {
	case err != nil && !absent(err):
		c.cacheErr(err)
	case !ok:
		c.w.int(-2)
	case left == 0:
		c.w.int(-1)
	case lower(args[0]) == "pttl":
		c.w.int(max(1, left.Milliseconds()))
	default:
		c.w.int(max(1, int64((left+time.Second/2)/time.Second)))
	}
}

func (c *conn) typ(ctx context.Context, args [][]byte) {
	present, err := c.s.c.ValuesPresent(ctx, c.s.ns, args[1:2])
	if err != nil {
		c.cacheErr(err)
		return
	}
	if present[0] {
		c.w.simple("string")
	} else {
		c.w.simple("none")
	}
}

func (c *conn) dbsize(ctx context.Context, args [][]byte) {
	c.w.int(int64(c.s.c.CountValues(c.s.ns)))
}

func (c *conn) ping(ctx context.Context, args [][]byte) {
	switch len(args) {
	case 1:
		c.w.simple("PONG")
	case 2:
		c.w.bulk(args[1])
	default:
		c.w.error("ERR wrong number of arguments for 'ping' command")
	}
}

func (c *conn) echo(ctx context.Context, args [][]byte) { c.w.bulk(args[1]) }

func (c *conn) quitCmd(ctx context.Context, args [][]byte) {
	c.w.simple("OK")
	c.quit = true
}

func (c *conn) selectDB(ctx context.Context, args [][]byte) {
	if string(args[1]) != "0" {
		c.w.error("ERR DB index is out of range")
		return
	}
	c.w.simple("OK")
}

const noAuth = "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?"

func (c *conn) auth(ctx context.Context, args [][]byte) { c.w.error(noAuth) }

// hello: HELLO [protover [AUTH user pass] [SETNAME name]]. Only RESP2.
func (c *conn) hello(ctx context.Context, args [][]byte) {
	if len(args) > 1 {
		v, ok := parseInt(args[1])
		if !ok {
			c.w.error("ERR Protocol version is not an integer or out of range")
			return
		}
		if v != 2 {
			c.w.error("NOPROTO this server speaks only RESP2 (ragkv)")
			return
		}
		for i := 2; i < len(args); i++ {
			switch lower(args[i]) {
			case "auth":
				c.w.error(noAuth)
				return
			case "setname":
				if i+1 >= len(args) {
					c.w.error("ERR syntax error in HELLO option 'setname'")
					return
				}
				c.name = string(args[i+1])
				i++
			default:
				c.w.error(fmt.Sprintf("ERR syntax error in HELLO option '%.32s'", args[i]))
				return
			}
		}
	}
	c.w.array(14)
	c.w.bulkString("server")
	c.w.bulkString("ragkv")
	c.w.bulkString("version")
	c.w.bulkString(c.s.o.Version)
	c.w.bulkString("proto")
	c.w.int(2)
	c.w.bulkString("id")
	c.w.int(c.id)
	c.w.bulkString("mode")
	c.w.bulkString("standalone")
	c.w.bulkString("role")
	c.w.bulkString("master")
	c.w.bulkString("modules")
	c.w.array(0)
}

func (c *conn) client(ctx context.Context, args [][]byte) {
	switch lower(args[1]) {
	case "setname":
		if len(args) != 3 {
			c.w.error("ERR wrong number of arguments for 'client|setname' command")
			return
		}
		c.name = string(args[2])
		c.w.simple("OK")
	case "getname":
		if c.name == "" {
			c.w.nilBulk()
		} else {
			c.w.bulkString(c.name)
		}
	case "id":
		c.w.int(c.id)
	case "setinfo":
		c.w.simple("OK")
	case "info":
		c.w.bulkString(c.describe() + "\n")
	case "list":
		c.s.mu.Lock()
		var b strings.Builder
		for o := range c.s.conns {
			b.WriteString(o.describe())
			b.WriteByte('\n')
		}
		c.s.mu.Unlock()
		c.w.bulkString(b.String())
	default:
		c.w.error(fmt.Sprintf("ERR unknown subcommand '%.32s'. Try CLIENT HELP.", args[1]))
	}
}

func (c *conn) describe() string {
	return fmt.Sprintf("id=%d addr=%s name=%s db=0 resp=2", c.id, c.addr, c.name)
}

func (c *conn) writeCommandInfo(k *cmd) {
	c.w.array(6)
	c.w.bulkString(k.name)
	c.w.int(int64(k.arity))
	c.w.array(len(k.flags))
	for _, f := range k.flags {
		c.w.simple(f)
	}
	c.w.int(int64(k.first))
	c.w.int(int64(k.last))
	c.w.int(int64(k.step))
}

func (c *conn) command(ctx context.Context, args [][]byte) {
	if len(args) == 1 {
		c.w.array(len(commands))
		for _, k := range commands {
			c.writeCommandInfo(k)
		}
		return
	}
	switch lower(args[1]) {
	case "count":
		c.w.int(int64(len(commands)))
	case "docs":
		c.w.array(0) // no docs: clients fall back to plain arguments
	case "info":
		c.w.array(len(args) - 2)
		for _, a := range args[2:] {
			if k, ok := commands[lower(a)]; ok {
				c.writeCommandInfo(k)
			} else {
				c.w.bw.WriteString("*-1\r\n")
			}
		}
	default:
		c.w.error(fmt.Sprintf("ERR unknown subcommand '%.32s'. Try COMMAND HELP.", args[1]))
	}
}

// config answers CONFIG GET for the parameters clients and redis-benchmark ask
// about; CONFIG SET is refused (ragkv is configured through its own flags).
func (c *conn) config(ctx context.Context, args [][]byte) {
	switch lower(args[1]) {
	case "get":
		vals := map[string]string{"save": "", "appendonly": "no", "databases": "1",
			"maxmemory": strconv.FormatInt(c.s.memoryTier().Capacity, 10), "proto-max-bulk-len": strconv.FormatInt(c.s.o.MaxBulkBytes, 10)}
		var out []string
		for _, p := range args[2:] {
			if v, ok := vals[lower(p)]; ok {
				out = append(out, lower(p), v)
			}
		}
		c.w.array(len(out))
		for _, s := range out {
			c.w.bulkString(s)
		}
	case "resetstat":
		c.w.simple("OK")
	default:
		c.w.error("ERR CONFIG " + strings.ToUpper(lower(args[1])) + " is not supported by ragkv (configure it with `ragkv serve` flags)")
	}
}

func (s *Server) memoryTier() chunkcache.TierStats {
	st := s.c.Stats()
	if len(st.Tiers) == 0 {
		return chunkcache.TierStats{}
	}
	return st.Tiers[0]
}

func (c *conn) info(ctx context.Context, args [][]byte) {
	s := c.s
	st := s.c.Stats()
	var b strings.Builder
	section := func(name string) bool {
		if len(args) < 2 {
			return true
		}
		for _, a := range args[1:] {
			if l := lower(a); l == name || l == "all" || l == "everything" || l == "default" {
				return true
			}
		}
		return false
	}
	if section("server") {
		fmt.Fprintf(&b, "# Server\r\nredis_version:7.0.0\r\nragkv_version:%s\r\nredis_mode:standalone\r\nuptime_in_seconds:%d\r\n\r\n",
			s.o.Version, int64(time.Since(s.started).Seconds()))
	}
	if section("clients") {
		fmt.Fprintf(&b, "# Clients\r\nconnected_clients:%d\r\n\r\n", s.connCount())
	}
	if section("memory") && len(st.Tiers) > 0 {
		fmt.Fprintf(&b, "# Memory\r\nused_memory:%d\r\nmaxmemory:%d\r\nmaxmemory_policy:ragkv-%s\r\n\r\n",
			st.Tiers[0].Bytes, st.Tiers[0].Capacity, s.c.Policy()[0].Policy)
	}
	if section("stats") {
		var ev uint64
		for _, t := range st.Tiers {
			if !t.Shared {
				ev += t.Evictions
			}
		}
		fmt.Fprintf(&b, "# Stats\r\ntotal_commands_processed:%d\r\nkeyspace_hits:%d\r\nkeyspace_misses:%d\r\nevicted_keys:%d\r\n\r\n",
			s.commands.Load(), s.hits.Load(), s.misses.Load(), ev)
	}
	if section("ragkv") {
		b.WriteString("# Ragkv\r\nnamespace:" + s.ns + "\r\n")
		for _, t := range st.Tiers {
			fmt.Fprintf(&b, "tier_%s:bytes=%d,capacity=%d,entries=%d,hits=%d,misses=%d\r\n", t.Name, t.Bytes, t.Capacity, t.Entries, t.Hits, t.Misses)
		}
		b.WriteString("\r\n")
	}
	if section("keyspace") {
		b.WriteString("# Keyspace\r\n")
		if n := s.c.CountValues(s.ns); n > 0 {
			fmt.Fprintf(&b, "db0:keys=%d,expires=0,avg_ttl=0\r\n", n)
		}
	}
	c.w.bulkString(b.String())
}

// metrics are the endpoint's Prometheus metrics.
type metrics struct {
	conns                   prometheus.Gauge
	cmds                    *prometheus.CounterVec
	byName                  map[string]prometheus.Counter
	errors                  prometheus.Counter
	readBytes, writtenBytes prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, s *Server) (*metrics, error) {
	m := &metrics{
		conns: prometheus.NewGauge(prometheus.GaugeOpts{Name: "ragkv_resp_connections", Help: "Open RESP connections."}),
		cmds: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ragkv_resp_commands_total",
			Help: "RESP commands served, by command."}, []string{"command"}),
		errors: prometheus.NewCounter(prometheus.CounterOpts{Name: "ragkv_resp_errors_total",
			Help: "RESP commands answered with an error."}),
		readBytes: prometheus.NewCounter(prometheus.CounterOpts{Name: "ragkv_resp_read_bytes_total",
			Help: "Bytes read from RESP clients."}),
		writtenBytes: prometheus.NewCounter(prometheus.CounterOpts{Name: "ragkv_resp_written_bytes_total",
			Help: "Bytes written to RESP clients."}),
		byName: map[string]prometheus.Counter{},
	}
	for name := range commands {
		m.byName[name] = m.cmds.WithLabelValues(name)
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.conns, m.cmds, m.errors, m.readBytes, m.writtenBytes} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("resp: register metrics: %w", err)
			}
		}
	}
	return m, nil
}

func (m *metrics) command(name string) { m.byName[name].Inc() }
