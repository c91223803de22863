// Package resp owns ragkv's RESP2 endpoint (`ragkv serve --resp-listen`): the Redis
// serialization protocol (https://redis.io/docs/latest/develop/reference/protocol-spec/,
// version 2) in front of one namespace of the chunk cache, so that a store speaking
// Redis's protocol — LMCache's `resp` L2 adapter under vLLM, redis-cli,
// redis-benchmark, go-redis, redis-py — keeps opaque values in ragkv's tiers (host RAM,
// disk, the shared Redis tier), under its eviction policies, pins, events and metrics.
//
// Commands: GET, SET (EX, PX, EXAT, PXAT, KEEPTTL), SETEX, PSETEX, MGET, MSET, EXISTS,
// DEL, UNLINK, TTL, PTTL, TYPE, DBSIZE, PING, ECHO, INFO, SELECT 0, QUIT, and the parts
// of HELLO (protocol 2 only: HELLO 3 is refused with NOPROTO, after which clients such
// as go-redis fall back to RESP2), CLIENT (SETNAME, GETNAME, ID, SETINFO, INFO, LIST),
// COMMAND (COUNT, DOCS, INFO) and CONFIG GET that common clients send when they
// connect. SET NX/XX/GET are refused: the cache's puts are not conditional.
//
// Values are chunk-cache values (chunkcache.PutValue): a SET lands in the first tier
// and reaches the lower tiers when that one evicts it (Options.WriteThrough writes them
// at once); a TTL is the value's, checked on every read and swept every second.
//
// Security: the endpoint has no authentication yet (the trust model of issue 11 has not
// landed), so Listen accepts only loopback addresses, and AUTH answers as a Redis
// without a password does.
//
// Why a hand-written server and not a library: the request parser is ~200 lines
// (fuzzed: FuzzReader), and a GET must write the memory tier's bytes to the socket
// without copying them into a buffer, and a SET must read the value into the one
// allocation that the cache keeps, which is what makes ragkv's throughput comparable
// with redis-server's for 4 MiB values (`ragkv bench resp`: redis-benchmark against
// both, side by side).
package resp
