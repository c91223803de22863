package store

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisOptions configures the remote tier (see the package doc, "Remote tier").
type RedisOptions struct {
	// Addrs are host:port of one Redis, or of any nodes of a Redis Cluster (one node is
	// enough: cluster mode is detected with INFO cluster). Required.
	Addrs []string
	// Username and Password authenticate (AUTH) when set. DB selects a database of a
	// single Redis (a cluster has only database 0).
	Username, Password string
	DB                 int
	// Prefix starts every key the tier writes (default "ragkv:"); replicas that share
	// chunks must use the same prefix.
	Prefix string
	// TTL is how long an object lives after it was last written or opened (sliding
	// expiry; 0: no expiry, Redis's maxmemory policy alone decides).
	TTL time.Duration
	// StagingTTL bounds the life of the parts of a put that never committed (a writer
	// that crashed or was cut off): default 10 minutes.
	StagingTTL time.Duration
	// Grace is how long the parts of a replaced object stay readable for readers that
	// opened it before the overwrite (default 1 minute).
	Grace time.Duration
	// FirstBatchBytes and BatchBytes bound the bytes of parts one pipelined read
	// fetches (defaults 1 MiB and 16 MiB): a reader's first read fetches the part asked
	// for and those after it up to FirstBatchBytes, each later read twice as much as the
	// one before, up to BatchBytes. A small chunk thus arrives in one round trip, and a
	// large one streams: its first layer comes after one round trip of at most 1 MiB.
	FirstBatchBytes, BatchBytes int64
	// SegmentBytes is the most bytes of consecutive parts stored as one Redis value
	// (default 8 MiB; see the key layout).
	SegmentBytes int64
	// PoolSize is the connection pool size per node (default go-redis's, 10 per CPU).
	PoolSize int
	// DialTimeout (default 5s) and IOTimeout (default 30s; a 1 GiB chunk must fit).
	DialTimeout, IOTimeout time.Duration
	// UsageInterval is how often the tier refreshes what Usage reports (default 30s;
	// negative: only at open). It runs INFO on every master and counts the manifests
	// with SCAN.
	UsageInterval time.Duration
	// Name is the tier's name (default "remote").
	Name   string
	Logger *slog.Logger
}

// EnsureDefaults fills in zero fields.
func (o *RedisOptions) EnsureDefaults() {
	if o.Prefix == "" {
		o.Prefix = "ragkv:"
	}
	if o.StagingTTL == 0 {
		o.StagingTTL = 10 * time.Minute
	}
	if o.Grace == 0 {
		o.Grace = time.Minute
	}
	if o.FirstBatchBytes == 0 {
		o.FirstBatchBytes = 1 << 20
	}
	if o.BatchBytes == 0 {
		o.BatchBytes = 16 << 20
	}
	if o.SegmentBytes == 0 {
		o.SegmentBytes = 8 << 20
	}
	if o.DialTimeout == 0 {
		o.DialTimeout = 5 * time.Second
	}
	if o.IOTimeout == 0 {
		o.IOTimeout = 30 * time.Second
	}
	if o.UsageInterval == 0 {
		o.UsageInterval = 30 * time.Second
	}
	if o.Name == "" {
		o.Name = "remote"
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

// Validate checks the options.
func (o *RedisOptions) Validate() error {
	switch {
	case len(o.Addrs) == 0:
		return fmt.Errorf("%w: redis: no address", ErrInvalid)
	case o.TTL < 0 || (o.TTL > 0 && o.TTL < time.Millisecond):
		return fmt.Errorf("%w: redis: ttl %v (want 0 or ≥ 1ms)", ErrInvalid, o.TTL)
	case o.StagingTTL < time.Second:
		return fmt.Errorf("%w: redis: staging ttl %v (want ≥ 1s)", ErrInvalid, o.StagingTTL)
	case o.Grace < time.Millisecond:
		return fmt.Errorf("%w: redis: grace %v (want ≥ 1ms)", ErrInvalid, o.Grace)
	case o.FirstBatchBytes < 1 || o.BatchBytes < o.FirstBatchBytes:
		return fmt.Errorf("%w: redis: batch bytes %d, first %d (want 1 ≤ first ≤ batch)", ErrInvalid, o.BatchBytes, o.FirstBatchBytes)
	case o.SegmentBytes < 1 || o.SegmentBytes > maxRedisPart:
		return fmt.Errorf("%w: redis: segment bytes %d (want 1..512MiB)", ErrInvalid, o.SegmentBytes)
	case o.DB < 0:
		return fmt.Errorf("%w: redis: db %d", ErrInvalid, o.DB)
	case strings.ContainsAny(o.Prefix, "{}*?[]\\"):
		return fmt.Errorf("%w: redis: prefix %q must not contain {}*?[]\\", ErrInvalid, o.Prefix)
	}
	for _, a := range o.Addrs {
		if _, _, err := net.SplitHostPort(a); err != nil {
			return fmt.Errorf("%w: redis: address %q: %v", ErrInvalid, a, err)
		}
	}
	return nil
}

// ParseRedisURL parses redis://[user:password@]HOST:PORT[,HOST:PORT...][/DB][?prefix=P&ttl=D]
// (ttl a Go duration, e.g. 24h) into options.
func ParseRedisURL(s string) (RedisOptions, error) {
	var o RedisOptions
	rest, ok := strings.CutPrefix(s, "redis://")
	if !ok {
		return o, fmt.Errorf("%w: %q: want redis://HOST:PORT[,HOST:PORT...]", ErrInvalid, s)
	}
	query := ""
	if i := strings.IndexByte(rest, '?'); i >= 0 {
		rest, query = rest[:i], rest[i+1:]
	}
	if i := strings.LastIndexByte(rest, '@'); i >= 0 {
		ui := rest[:i]
		rest = rest[i+1:]
		user, pass, hasPass := strings.Cut(ui, ":")
		var err error
		if o.Username, err = url.PathUnescape(user); err != nil {
			return o, fmt.Errorf("%w: %q: user: %v", ErrInvalid, s, err)
		}
		if hasPass {
			if o.Password, err = url.PathUnescape(pass); err != nil {
				return o, fmt.Errorf("%w: %q: password: %v", ErrInvalid, s, err)
			}
		} else {
			o.Password, o.Username = o.Username, "" // redis://password@host
		}
	}
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		db := rest[i+1:]
		rest = rest[:i]
		if db != "" {
			n, err := strconv.Atoi(db)
			if err != nil || n < 0 {
				return o, fmt.Errorf("%w: %q: database %q is not a number", ErrInvalid, s, db)
			}
			o.DB = n
		}
	}
	for _, a := range strings.Split(rest, ",") {
		a = strings.TrimSpace(a)
		if a == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(a); err != nil {
			return o, fmt.Errorf("%w: %q: address %q: %v", ErrInvalid, s, a, err)
		}
		o.Addrs = append(o.Addrs, a)
	}
	if len(o.Addrs) == 0 {
		return o, fmt.Errorf("%w: %q: no HOST:PORT", ErrInvalid, s)
	}
	q, err := url.ParseQuery(query)
	if err != nil {
		return o, fmt.Errorf("%w: %q: %v", ErrInvalid, s, err)
	}
	for k, v := range q {
		val := v[len(v)-1]
		switch k {
		case "prefix":
			o.Prefix = val
		case "ttl":
			d, err := time.ParseDuration(val)
			if err != nil {
				return o, fmt.Errorf("%w: %q: ttl: %v", ErrInvalid, s, err)
			}
			o.TTL = d
		default:
			return o, fmt.Errorf("%w: %q: unknown parameter %q (want prefix or ttl)", ErrInvalid, s, k)
		}
	}
	return o, nil
}

// Key layout in Redis (every key of one object carries the same hash tag, the object
// key in hex, so it lives in one cluster slot and the scripts below touch one node):
//
//	<prefix>{<key hex>}              → record: "RRD2" gen(16 hex) nparts(8 hex) nsegs(8
//	                                   hex), then per part (u32 segment, u64 size, u32
//	                                   CRC-32C), manifest, CRC-32C of everything before
//	                                   (little-endian)
//	<prefix>{<key hex>}:<gen>:<s>    → segment s of generation gen: consecutive parts
//	                                   concatenated (a plain string)
//
// Parts are packed in order into segments of at most SegmentBytes (as in the disk
// tier), so a 4 MiB chunk is one SET, and a reader fetches a run of layers with one
// GETRANGE: one command per segment instead of one per layer, which `ragkv bench
// remote` showed to cost a third of the write throughput with 32 layers.
//
// A put writes its segments under a fresh random generation, each with the staging
// TTL, and then commits with commitScript, which checks that every segment exists,
// sets the record and gives the segments the object's TTL (or none), all atomically;
// the segments of the generation it replaces get the grace TTL. Readers find segments
// only through a committed record, so a put that dies leaves only segments that
// expire.
const (
	redisRecordMagic = "RRD2"
	redisHeaderLen   = 36 // magic + 16 hex gen + 8 hex nparts + 8 hex nsegs
	// maxRedisPart is Redis's default proto-max-bulk-len.
	maxRedisPart = 512 << 20
)

// commitScript: KEYS[1] record key; ARGV record, ttl ms (0: none), grace ms.
var commitScript = redis.NewScript(`
local rec = ARGV[1]
local gen, n = string.sub(rec, 5, 20), tonumber(string.sub(rec, 29, 36), 16)
local base = KEYS[1] .. ':' .. gen .. ':'
for i = 0, n - 1 do
  if redis.call('EXISTS', base .. i) == 0 then
    return redis.error_reply('RAGKVINCOMPLETE segment ' .. i .. ' of ' .. n .. ' is missing')
  end
end
local ttl = tonumber(ARGV[2])
local old = redis.call('GET', KEYS[1])
if ttl > 0 then
  redis.call('SET', KEYS[1], rec, 'PX', ttl)
  for i = 0, n - 1 do redis.call('PEXPIRE', base .. i, ttl) end
else
  redis.call('SET', KEYS[1], rec)
  for i = 0, n - 1 do redis.call('PERSIST', base .. i) end
end
if old and string.sub(old, 1, 4) == 'RRD2' then
  local og, on = string.sub(old, 5, 20), tonumber(string.sub(old, 29, 36), 16)
  if og ~= gen and on then
    local ob = KEYS[1] .. ':' .. og .. ':'
    for i = 0, on - 1 do redis.call('PEXPIRE', ob .. i, ARGV[3]) end
  end
end
return 1
`)

// openScript: KEYS[1] record key; ARGV ttl ms (0: no refresh), "1" to answer 1 instead
// of the record, and an inline limit: when segment 0 is at most that many bytes it is
// returned with the record ({record, segment 0}), so a small chunk is opened and read
// in one round trip. A record whose segments are not all there (Redis evicted some) is
// deleted with its remaining segments and reads as absent.
var openScript = redis.NewScript(`
local m = redis.call('GET', KEYS[1])
if not m then return false end
if string.sub(m, 1, 4) ~= 'RRD2' then return m end
local gen, n = string.sub(m, 5, 20), tonumber(string.sub(m, 29, 36), 16)
if not n then return m end
local base = KEYS[1] .. ':' .. gen .. ':'
for i = 0, n - 1 do
  if redis.call('EXISTS', base .. i) == 0 then
    redis.call('DEL', KEYS[1])
    for j = 0, n - 1 do redis.call('DEL', base .. j) end
    return false
  end
end
local ttl = tonumber(ARGV[1])
if ttl > 0 then
  redis.call('PEXPIRE', KEYS[1], ttl)
  for i = 0, n - 1 do redis.call('PEXPIRE', base .. i, ttl) end
end
if ARGV[2] == '1' then return 1 end
local limit = tonumber(ARGV[3])
if limit and limit > 0 and n > 0 and redis.call('STRLEN', base .. '0') <= limit then
  return {m, redis.call('GET', base .. '0')}
end
return {m}
`)

// deleteScript: KEYS[1] record key. Deletes the record and its segments; 1 if it
// existed.
var deleteScript = redis.NewScript(`
local m = redis.call('GET', KEYS[1])
if not m then return 0 end
redis.call('DEL', KEYS[1])
if string.sub(m, 1, 4) == 'RRD2' then
  local gen, n = string.sub(m, 5, 20), tonumber(string.sub(m, 29, 36), 16)
  if n then
    local base = KEYS[1] .. ':' .. gen .. ':'
    for i = 0, n - 1 do redis.call('DEL', base .. i) end
  end
end
return 1
`)

// redisLogger routes go-redis's own log lines (one process-wide logger: the first
// tier's) to slog at debug level; the tier reports failures itself.
type redisLogger struct{ l *slog.Logger }

func (g redisLogger) Printf(_ context.Context, format string, v ...any) {
	g.l.Debug("go-redis: " + fmt.Sprintf(format, v...))
}

var redisLogOnce sync.Once

// Redis is the remote tier: objects in one Redis or a Redis Cluster, shared by every
// process that opens it with the same prefix (see the package doc).
type Redis struct {
	opts    RedisOptions
	log     *slog.Logger
	client  redis.UniversalClient
	cluster bool

	usage  atomic.Pointer[RemoteUsage]
	stop   chan struct{}
	wg     sync.WaitGroup
	closed atomic.Bool
	once   sync.Once
}

var _ Tier = (*Redis)(nil)

// OpenRedis connects to Redis (detecting cluster mode), checks that it answers and
// loads the tier's scripts. The returned tier refreshes its usage in a goroutine that
// Close stops.
func OpenRedis(ctx context.Context, opts RedisOptions) (*Redis, error) {
	opts.EnsureDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	redisLogOnce.Do(func() { redis.SetLogger(redisLogger{opts.Logger}) })
	cluster := len(opts.Addrs) > 1
	if !cluster {
		probe := redis.NewClient(&redis.Options{Addr: opts.Addrs[0], Username: opts.Username, Password: opts.Password,
			DialTimeout: opts.DialTimeout, ReadTimeout: opts.IOTimeout, DisableIdentity: true, MaxRetries: 1, DialerRetries: 1})
		info, err := probe.Info(ctx, "cluster").Result()
		probe.Close()
		if err != nil {
			return nil, fmt.Errorf("store: redis %s: %w", opts.Addrs[0], err)
		}
		cluster = strings.Contains(info, "cluster_enabled:1")
	}
	// One dial attempt and one retry: a Redis that is down must cost a request little
	// (the chunk cache then serves misses), not go-redis's five dials with backoff.
	var client redis.UniversalClient
	if cluster {
		if opts.DB != 0 {
			return nil, fmt.Errorf("%w: redis cluster has only database 0, got %d", ErrInvalid, opts.DB)
		}
		client = redis.NewClusterClient(&redis.ClusterOptions{
			Addrs: opts.Addrs, Username: opts.Username, Password: opts.Password,
			DialTimeout: opts.DialTimeout, ReadTimeout: opts.IOTimeout, WriteTimeout: opts.IOTimeout,
			PoolSize: opts.PoolSize, ContextTimeoutEnabled: true, DisableIdentity: true,
			MaxRetries: 1, DialerRetries: 1,
		})
	} else {
		client = redis.NewClient(&redis.Options{
			Addr: opts.Addrs[0], Username: opts.Username, Password: opts.Password, DB: opts.DB,
			DialTimeout: opts.DialTimeout, ReadTimeout: opts.IOTimeout, WriteTimeout: opts.IOTimeout,
			PoolSize: opts.PoolSize, ContextTimeoutEnabled: true, DisableIdentity: true,
			MaxRetries: 1, DialerRetries: 1,
		})
	}
	r := &Redis{opts: opts, log: opts.Logger, client: client, cluster: cluster, stop: make(chan struct{})}
	if err := r.forEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
		for _, s := range []*redis.Script{commitScript, openScript, deleteScript} {
			if err := s.Load(ctx, c).Err(); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		r.client.Close()
		return nil, fmt.Errorf("store: redis %v: %w", opts.Addrs, err)
	}
	r.refreshUsage(ctx)
	if opts.UsageInterval > 0 {
		r.wg.Add(1)
		go r.usageLoop()
	}
	return r, nil
}

// Name returns the tier's name ("remote" by default).
func (r *Redis) Name() string { return r.opts.Name }

// Persistent returns true: objects outlive this process (whether they survive a
// restart of Redis is Redis's configuration).
func (r *Redis) Persistent() bool { return true }

// Shared returns true: other processes read and write the same objects.
func (r *Redis) Shared() bool { return true }

// Cluster reports whether the tier talks to a Redis Cluster.
func (r *Redis) Cluster() bool { return r.cluster }

// Client exposes the go-redis client (for tests and tools).
func (r *Redis) Client() redis.UniversalClient { return r.client }

func (r *Redis) recordKey(k Key) string {
	return r.opts.Prefix + "{" + hex.EncodeToString(k[:]) + "}"
}

func segmentKey(rec string, gen string, seg int) string {
	return rec + ":" + gen + ":" + strconv.Itoa(seg)
}

// RecordKey is the Redis key of k's record (for tests and tools).
func (r *Redis) RecordKey(k Key) string { return r.recordKey(k) }

func (r *Redis) forEachMaster(ctx context.Context, fn func(context.Context, *redis.Client) error) error {
	switch c := r.client.(type) {
	case *redis.ClusterClient:
		return c.ForEachMaster(ctx, fn)
	case *redis.Client:
		return fn(ctx, c)
	}
	return fmt.Errorf("store: redis: unexpected client %T", r.client)
}

func (r *Redis) wrap(op string, key Key, err error) error {
	if r.closed.Load() || errors.Is(err, redis.ErrClosed) {
		return fmt.Errorf("store: redis %s %x: %w", op, key[:8], ErrClosed)
	}
	return fmt.Errorf("store: redis %s %x: %w", op, key[:8], err)
}

type redisRecord struct {
	gen  string
	lay  record // parts (segment, offset, size) and segment sizes; lay.size: parts only
	crcs []uint32
	man  []byte
	size int64
}

func encodeRedisRecord(gen string, lay *record, obj *Object, crcs []uint32) []byte {
	out := make([]byte, 0, redisHeaderLen+16*len(obj.Parts)+len(obj.Manifest)+4)
	out = append(out, redisRecordMagic...)
	out = append(out, gen...)
	out = append(out, fmt.Sprintf("%08x%08x", len(obj.Parts), len(lay.segs))...)
	for i, p := range lay.parts {
		out = binary.LittleEndian.AppendUint32(out, uint32(p.seg))
		out = binary.LittleEndian.AppendUint64(out, uint64(p.size))
		out = binary.LittleEndian.AppendUint32(out, crcs[i])
	}
	out = append(out, obj.Manifest...)
	return binary.LittleEndian.AppendUint32(out, crc32.Checksum(out, castagnoli))
}

// decodeRedisRecord parses untrusted bytes (FuzzRedisRecord).
func decodeRedisRecord(b []byte) (redisRecord, error) {
	var r redisRecord
	if len(b) < redisHeaderLen+4 || string(b[:4]) != redisRecordMagic {
		return r, fmt.Errorf("%w: remote record header", ErrCorrupt)
	}
	if got, want := crc32.Checksum(b[:len(b)-4], castagnoli), binary.LittleEndian.Uint32(b[len(b)-4:]); got != want {
		return r, fmt.Errorf("%w: remote record checksum %08x, want %08x", ErrCorrupt, got, want)
	}
	r.gen = string(b[4:20])
	if _, err := hex.DecodeString(r.gen); err != nil {
		return r, fmt.Errorf("%w: remote record generation %q", ErrCorrupt, r.gen)
	}
	n, err := strconv.ParseUint(string(b[20:28]), 16, 32)
	nsegs, err2 := strconv.ParseUint(string(b[28:36]), 16, 32)
	if err != nil || err2 != nil || n > MaxParts || nsegs > n+1 || int64(len(b)) < redisHeaderLen+4+16*int64(n) {
		return r, fmt.Errorf("%w: remote record with %q parts is truncated", ErrCorrupt, b[20:36])
	}
	r.lay.parts = make([]partLoc, n)
	r.crcs = make([]uint32, n)
	off := redisHeaderLen
	for i := range r.lay.parts {
		seg := int(binary.LittleEndian.Uint32(b[off:]))
		sz := binary.LittleEndian.Uint64(b[off+4:])
		if sz > maxRedisPart {
			return r, fmt.Errorf("%w: remote record part %d size %d", ErrCorrupt, i, sz)
		}
		switch {
		case seg == len(r.lay.segs)-1:
		case seg == len(r.lay.segs):
			r.lay.segs = append(r.lay.segs, 0)
		default:
			return r, fmt.Errorf("%w: remote record part %d in segment %d after segment %d", ErrCorrupt, i, seg, len(r.lay.segs)-1)
		}
		r.lay.parts[i] = partLoc{seg: seg, off: r.lay.segs[seg], size: int64(sz)}
		r.lay.segs[seg] += int64(sz)
		if r.lay.segs[seg] > maxRedisPart {
			return r, fmt.Errorf("%w: remote record segment %d exceeds %d bytes", ErrCorrupt, seg, maxRedisPart)
		}
		r.crcs[i] = binary.LittleEndian.Uint32(b[off+12:])
		r.size += int64(sz)
		off += 16
	}
	if uint64(len(r.lay.segs)) != nsegs {
		return r, fmt.Errorf("%w: remote record says %d segments, its parts %d", ErrCorrupt, nsegs, len(r.lay.segs))
	}
	r.man = b[off : len(b)-4]
	r.size += int64(len(r.man))
	return r, nil
}

// segPool holds segment buffers between puts; Exec has written them when Put returns.
var segPool = sync.Pool{New: func() any { return new([]byte) }}

func newGen() string {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], rand.Uint64())
	return hex.EncodeToString(b[:])
}

// Put writes the parts, packed into segments, under a fresh generation (staging TTL),
// then commits the record atomically (commitScript). Until the commit nothing is
// visible; a put that fails or is interrupted leaves only segments that expire.
func (r *Redis) Put(ctx context.Context, key Key, obj Object) error {
	if err := obj.Validate(); err != nil {
		return err
	}
	if r.closed.Load() {
		return ErrClosed
	}
	crcs := make([]uint32, len(obj.Parts))
	sizes := make([]int64, len(obj.Parts))
	for i, p := range obj.Parts {
		if len(p) > maxRedisPart {
			return fmt.Errorf("%w: part %d of %d bytes exceeds the remote tier's limit of %d", ErrInvalid, i, len(p), maxRedisPart)
		}
		crcs[i] = crc32.Checksum(p, castagnoli)
		sizes[i] = int64(len(p))
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	lay := layout(sizes, r.opts.SegmentBytes)
	gen := newGen()
	rk := r.recordKey(key)
	rec := encodeRedisRecord(gen, &lay, &obj, crcs)
	ttl, grace := r.opts.TTL.Milliseconds(), r.opts.Grace.Milliseconds()
	// One round trip: the segments, then the commit in the same pipeline. Redis runs a
	// connection's commands in order, so the script sees the segments; if any SET
	// failed, or the connection died before the script was sent, nothing commits.
	var commit *redis.Cmd
	{
		pipe := r.client.Pipeline()
		var bufs []*[]byte
		defer func() {
			for _, b := range bufs {
				segPool.Put(b)
			}
		}()
		next := 0
		for seg := range lay.segs {
			first := next
			for next < len(obj.Parts) && lay.parts[next].seg == seg {
				next++
			}
			v := obj.Parts[first]
			if next-first > 1 {
				// go-redis writes one slice per argument: concatenate the segment's parts,
				// in a pooled buffer (a fresh one costs its page faults on every put).
				bp := segPool.Get().(*[]byte)
				bufs = append(bufs, bp)
				v = (*bp)[:0]
				for _, p := range obj.Parts[first:next] {
					v = append(v, p...)
				}
				*bp = v
			}
			pipe.Set(ctx, segmentKey(rk, gen, seg), v, r.opts.StagingTTL)
		}
		commit = commitScript.EvalSha(ctx, pipe, []string{rk}, rec, ttl, grace)
		if _, err := pipe.Exec(ctx); err != nil && !redis.HasErrorPrefix(err, "NOSCRIPT") && !strings.Contains(err.Error(), "RAGKVINCOMPLETE") {
			if redis.HasErrorPrefix(err, "OOM") { // maxmemory reached under noeviction
				return fmt.Errorf("store: redis put %x: %w: %v", key[:8], ErrNoSpace, err)
			}
			return r.wrap("put", key, err)
		}
	}
	err := commit.Err()
	if redis.HasErrorPrefix(err, "NOSCRIPT") { // Redis restarted and forgot the script
		err = r.runScript(ctx, r.client, commitScript, []string{rk}, rec, ttl, grace).Err()
	}
	if err != nil {
		if strings.Contains(err.Error(), "RAGKVINCOMPLETE") {
			// Redis evicted a segment before the commit (memory pressure): nothing was
			// committed; the remaining segments expire.
			return fmt.Errorf("store: redis put %x: %w: %v", key[:8], ErrNoSpace, err)
		}
		return r.wrap("put", key, err)
	}
	return nil
}

// runScript runs s with EVALSHA, loading it again when Redis forgot it (a restart).
func (r *Redis) runScript(ctx context.Context, c redis.Scripter, s *redis.Script, keys []string, args ...any) *redis.Cmd {
	return s.Run(ctx, c, keys, args...)
}

// Open runs openScript (one round trip: the record, with every part checked present)
// and returns a reader that fetches parts on demand in growing pipelined batches.
func (r *Redis) Open(ctx context.Context, key Key) (Reader, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if r.closed.Load() {
		return nil, ErrClosed
	}
	rk := r.recordKey(key)
	v, err := r.runScript(ctx, r.client, openScript, []string{rk}, r.opts.TTL.Milliseconds(), "0", r.opts.FirstBatchBytes).Result()
	if errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("%w: %x in remote tier", ErrNotFound, key[:8])
	}
	if err != nil {
		return nil, r.wrap("open", key, err)
	}
	var raw, seg0 string
	inline := false
	switch x := v.(type) {
	case string: // not a record of this layout
		raw = x
	case []any:
		if len(x) > 0 {
			raw, _ = x[0].(string)
		}
		if len(x) > 1 {
			seg0, inline = x[1].(string)
		}
	}
	rec, err := decodeRedisRecord([]byte(raw))
	if err != nil {
		return nil, fmt.Errorf("store: redis open %x: %w", key[:8], err)
	}
	rr := &redisReader{r: r, key: key, rk: rk, rec: rec, parts: make([][]byte, len(rec.lay.parts))}
	if inline && len(rec.lay.segs) > 0 && int64(len(seg0)) == rec.lay.segs[0] {
		b := []byte(seg0) // one copy out of the reply string: the caller may keep the parts
		rr.have = make([]bool, len(rec.lay.parts))
		for i, p := range rec.lay.parts {
			if p.seg != 0 {
				break
			}
			rr.parts[i], rr.have[i] = b[p.off:p.off+p.size:p.off+p.size], true
		}
	}
	return rr, nil
}

// Has reports whether a committed object whose parts are all present is stored.
func (r *Redis) Has(ctx context.Context, key Key) (bool, error) {
	got, err := r.HasMany(ctx, []Key{key})
	if err != nil {
		return false, err
	}
	return got[0], nil
}

// HasMany is Has for many keys in one pipelined round trip (per cluster node).
func (r *Redis) HasMany(ctx context.Context, keys []Key) ([]bool, error) {
	if r.closed.Load() {
		return nil, ErrClosed
	}
	out := make([]bool, len(keys))
	if len(keys) == 0 {
		return out, nil
	}
	run := func() ([]*redis.Cmd, error) {
		pipe := r.client.Pipeline()
		cmds := make([]*redis.Cmd, len(keys))
		for i, k := range keys {
			cmds[i] = openScript.EvalSha(ctx, pipe, []string{r.recordKey(k)}, 0, "1", 0)
		}
		_, err := pipe.Exec(ctx)
		return cmds, err
	}
	cmds, err := run()
	if err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
		_ = r.forEachMaster(ctx, func(ctx context.Context, c *redis.Client) error { return openScript.Load(ctx, c).Err() })
		cmds, err = run()
	}
	for i, c := range cmds {
		v, cerr := c.Int64()
		switch {
		case cerr == nil:
			out[i] = v == 1
		case errors.Is(cerr, redis.Nil):
		default:
			return nil, r.wrap("has", keys[i], cerr)
		}
	}
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, r.wrap("has", keys[0], err)
	}
	return out, nil
}

// Delete removes the record and its parts.
func (r *Redis) Delete(ctx context.Context, key Key) error {
	if r.closed.Load() {
		return ErrClosed
	}
	n, err := r.runScript(ctx, r.client, deleteScript, []string{r.recordKey(key)}).Int64()
	if err != nil {
		return r.wrap("delete", key, err)
	}
	if n == 0 {
		return fmt.Errorf("%w: %x in remote tier", ErrNotFound, key[:8])
	}
	return nil
}

// Scan calls fn for every committed record (SCAN on every master, then the records in
// pipelined batches). Objects written or deleted during the scan may or may not be
// seen.
func (r *Redis) Scan(ctx context.Context, fn func(Info) error) error {
	if r.closed.Load() {
		return ErrClosed
	}
	match := r.opts.Prefix + "{*}"
	var mu sync.Mutex // fn is called from one goroutine at a time
	return r.forEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
		var cursor uint64
		for {
			keys, next, err := c.Scan(ctx, cursor, match, 512).Result()
			if err != nil {
				return fmt.Errorf("store: redis scan: %w", err)
			}
			if len(keys) > 0 {
				pipe := c.Pipeline()
				cmds := make([]*redis.StringCmd, len(keys))
				for i, k := range keys {
					cmds[i] = pipe.Get(ctx, k)
				}
				if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
					return fmt.Errorf("store: redis scan: %w", err)
				}
				vals := make([]any, len(keys))
				for i, c := range cmds {
					if v, err := c.Result(); err == nil {
						vals[i] = v
					}
				}
				mu.Lock()
				err = r.scanBatch(keys, vals, fn)
				mu.Unlock()
				if err != nil {
					return err
				}
			}
			if cursor = next; cursor == 0 {
				return nil
			}
		}
	})
}

func (r *Redis) scanBatch(keys []string, vals []any, fn func(Info) error) error {
	for i, name := range keys {
		s, ok := vals[i].(string)
		if !ok {
			continue // deleted meanwhile
		}
		k, ok := r.parseRecordKey(name)
		if !ok {
			continue
		}
		rec, err := decodeRedisRecord([]byte(s))
		if err != nil {
			r.log.Warn("remote tier: unreadable record", "key", name, "err", err)
			continue
		}
		if err := fn(Info{Key: k, Size: rec.size, Parts: len(rec.lay.parts), Manifest: rec.man}); err != nil {
			return err
		}
	}
	return nil
}

func (r *Redis) parseRecordKey(name string) (Key, bool) {
	var k Key
	h, ok := strings.CutPrefix(name, r.opts.Prefix+"{")
	if !ok || len(h) != 65 || h[64] != '}' {
		return k, false
	}
	b, err := hex.DecodeString(h[:64])
	if err != nil {
		return k, false
	}
	copy(k[:], b)
	return k, true
}

// RemoteUsage is what Redis reports about itself, summed over the masters.
type RemoteUsage struct {
	// UsedBytes and MaxBytes are used_memory and maxmemory (0: unlimited) of INFO
	// memory: the whole Redis, not only this tier's keys.
	UsedBytes, MaxBytes int64
	// Objects counts this tier's committed records (SCAN).
	Objects int64
	// Evicted and Expired are INFO stats' evicted_keys and expired_keys (all keys).
	Evicted, Expired uint64
	// Updated is when these numbers were read; Err is the last refresh error.
	Updated time.Time
	Err     error
}

// Usage returns the last refreshed usage (see RedisOptions.UsageInterval).
func (r *Redis) Usage() RemoteUsage {
	if u := r.usage.Load(); u != nil {
		return *u
	}
	return RemoteUsage{}
}

// RefreshUsage reads the usage now.
func (r *Redis) RefreshUsage(ctx context.Context) RemoteUsage {
	r.refreshUsage(ctx)
	return r.Usage()
}

func (r *Redis) refreshUsage(ctx context.Context) {
	var u RemoteUsage
	var mu sync.Mutex
	match := r.opts.Prefix + "{*}"
	err := r.forEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
		info, err := c.Info(ctx, "memory", "stats").Result()
		if err != nil {
			return err
		}
		var objs int64
		var cursor uint64
		for {
			keys, next, err := c.Scan(ctx, cursor, match, 1000).Result()
			if err != nil {
				return err
			}
			objs += int64(len(keys))
			if cursor = next; cursor == 0 {
				break
			}
		}
		mu.Lock()
		defer mu.Unlock()
		u.UsedBytes += infoInt(info, "used_memory")
		u.MaxBytes += infoInt(info, "maxmemory")
		u.Evicted += uint64(infoInt(info, "evicted_keys"))
		u.Expired += uint64(infoInt(info, "expired_keys"))
		u.Objects += objs
		return nil
	})
	u.Updated, u.Err = time.Now(), err
	if err != nil {
		if old := r.usage.Load(); old != nil {
			keep := *old
			keep.Err = err
			u = keep
		}
	}
	r.usage.Store(&u)
}

func infoInt(info, field string) int64 {
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), field+":"); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	return 0
}

func (r *Redis) usageLoop() {
	defer r.wg.Done()
	t := time.NewTicker(r.opts.UsageInterval)
	defer t.Stop()
	for {
		select {
		case <-r.stop:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), r.opts.UsageInterval)
			r.refreshUsage(ctx)
			cancel()
		}
	}
}

// Close stops the usage refresh and closes the connections.
func (r *Redis) Close() error {
	var err error
	r.once.Do(func() {
		r.closed.Store(true)
		close(r.stop)
		r.wg.Wait()
		err = r.client.Close()
	})
	return err
}

// redisReader fetches parts on demand, in pipelined batches of growing size (see
// RedisOptions.FirstBatchBytes), each batch one round trip.
type redisReader struct {
	r     *Redis
	key   Key
	rk    string
	rec   redisRecord
	parts [][]byte // fetched, not yet handed out
	have  []bool
	batch int64 // bytes of the next batch
}

func (rr *redisReader) Manifest() []byte { return rr.rec.man }
func (rr *redisReader) NumParts() int    { return len(rr.rec.lay.parts) }
func (rr *redisReader) Size() int64      { return rr.rec.size }
func (rr *redisReader) Close() error     { rr.parts = nil; return nil }

func (rr *redisReader) PartSize(i int) int64 {
	if i < 0 || i >= len(rr.rec.lay.parts) {
		return 0
	}
	return rr.rec.lay.parts[i].size
}

// fetch reads the run of not yet fetched parts from `from` on, up to the batch
// budget, with one GETRANGE per segment it spans, pipelined.
func (rr *redisReader) fetch(ctx context.Context, from int) error {
	parts := rr.rec.lay.parts
	if rr.have == nil {
		rr.have = make([]bool, len(parts))
	}
	if rr.batch == 0 {
		rr.batch = rr.r.opts.FirstBatchBytes
	}
	to := from + 1 // exclusive
	bytes := parts[from].size
	for to < len(parts) && !rr.have[to] && bytes+parts[to].size <= rr.batch {
		bytes += parts[to].size
		to++
	}
	rr.batch = min(2*rr.batch, rr.r.opts.BatchBytes)
	type span struct {
		seg, first, last int // parts first..last (inclusive) of segment seg
		cmd              *redis.StringCmd
	}
	var spans []span
	for i := from; i < to; i++ {
		if n := len(spans); n > 0 && spans[n-1].seg == parts[i].seg {
			spans[n-1].last = i
		} else {
			spans = append(spans, span{seg: parts[i].seg, first: i, last: i})
		}
	}
	pipe := rr.r.client.Pipeline()
	for j := range spans {
		sp := &spans[j]
		start, end := parts[sp.first].off, parts[sp.last].off+parts[sp.last].size
		if end > start {
			sp.cmd = pipe.GetRange(ctx, segmentKey(rr.rk, rr.rec.gen, sp.seg), start, end-1)
		}
	}
	if pipe.Len() > 0 {
		if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
			return rr.r.wrap("read", rr.key, err)
		}
	}
	for _, sp := range spans {
		var b []byte
		if sp.cmd != nil {
			var err error
			if b, err = sp.cmd.Bytes(); err != nil {
				return rr.r.wrap("read", rr.key, err)
			}
		}
		base := parts[sp.first].off
		if want := parts[sp.last].off + parts[sp.last].size - base; int64(len(b)) != want {
			// GETRANGE of a missing key is empty: the segment left (evicted, expired
			// or replaced after the grace) while this reader had it open.
			return fmt.Errorf("%w: %x segment %d left the remote tier during the read (got %d of %d bytes)", ErrNotFound, rr.key[:8], sp.seg, len(b), want)
		}
		for i := sp.first; i <= sp.last; i++ {
			o := parts[i].off - base
			rr.parts[i], rr.have[i] = b[o:o+parts[i].size:o+parts[i].size], true
		}
	}
	return nil
}

// ReadPart returns part i, its CRC-32C checked. When dst is too small the fetched
// bytes themselves are returned (no copy); they are then the caller's.
func (rr *redisReader) ReadPart(ctx context.Context, i int, dst []byte) ([]byte, error) {
	parts := rr.rec.lay.parts
	if i < 0 || i >= len(parts) {
		return dst, fmt.Errorf("%w: part %d of %d", ErrInvalid, i, len(parts))
	}
	if rr.parts == nil {
		return dst, fmt.Errorf("%w: reader closed", ErrInvalid)
	}
	if err := ctx.Err(); err != nil {
		return dst, err
	}
	if rr.parts[i] == nil {
		if rr.have != nil && rr.have[i] {
			rr.have[i] = false // handed out before: read it again
		}
		if err := rr.fetch(ctx, i); err != nil {
			return dst, err
		}
	}
	p := rr.parts[i]
	rr.parts[i] = nil
	if got := crc32.Checksum(p, castagnoli); got != rr.rec.crcs[i] {
		return dst, fmt.Errorf("%w: %x part %d checksum %08x, record says %08x", ErrCorrupt, rr.key[:8], i, got, rr.rec.crcs[i])
	}
	if int64(cap(dst)) < parts[i].size {
		return p, nil
	}
	return append(dst[:0], p...), nil
}
