package server

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	ragkvv1 "github.com/ragkv/ragkv/proto/ragkv/v1"
	"github.com/ragkv/ragkv/server/auth"
)

// Tokens of the test identities (the file stores their hashes).
const (
	tokReader  = "reader-token-0123456789"
	tokWriter  = "writer-token-0123456789"
	tokAdmin   = "admin-token-0123456789"
	tokLimited = "limited-token-0123456789"
	tokOther   = "other-writer-token-0123456789"
)

func authYAML() string {
	return `
server_computed_only: ["pristine"]
identities:
  - name: alice-reader
    role: reader
    token_sha256: ` + auth.HashToken(tokReader) + `
    namespaces: ["a", "ghost"]
  - name: alice-writer
    role: writer
    token_sha256: ` + auth.HashToken(tokWriter) + `
    namespaces: ["a", "pristine"]
  - name: bob-writer
    role: writer
    token_sha256: ` + auth.HashToken(tokOther) + `
    namespaces: ["b"]
  - name: root
    role: admin
    token_sha256: ` + auth.HashToken(tokAdmin) + `
    namespaces: ["*"]
  - name: limited
    role: reader
    token_sha256: ` + auth.HashToken(tokLimited) + `
    namespaces: ["a"]
    rate_per_second: 0.001
    burst: 2
`
}

type authEnv struct {
	*ccEnv
	file string
	st   *auth.Store
}

func startAuthServer(t *testing.T) *authEnv {
	t.Helper()
	file := writeAuthFile(t, authYAML())
	st, err := auth.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	e := startChunkServer(t, t.TempDir(), 1<<20, 1<<22, WithAuth(st, AuthOptions{}))
	return &authEnv{ccEnv: e, file: file, st: st}
}

func as(ctx context.Context, token string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func wantAuthCode(t *testing.T, what string, err error, code codes.Code) {
	t.Helper()
	if status.Code(err) != code {
		t.Fatalf("%s: %v, want %v", what, err, code)
	}
}

func TestAuthDeniesMissingAndUnknownTokens(t *testing.T) {
	e := startAuthServer(t)
	ctx := testCtx(t)
	_, err := e.client.Stats(ctx, &ragkvv1.ChunkCacheStatsRequest{})
	wantAuthCode(t, "no token", err, codes.Unauthenticated)
	_, err = e.client.Stats(as(ctx, "not-a-token"), &ragkvv1.ChunkCacheStatsRequest{})
	wantAuthCode(t, "unknown token", err, codes.Unauthenticated)
	_, err = e.client.Stats(metadata.AppendToOutgoingContext(ctx, "authorization", "Basic "+tokAdmin), &ragkvv1.ChunkCacheStatsRequest{})
	wantAuthCode(t, "not a bearer token", err, codes.Unauthenticated)
	// Streams are refused before the handler reads anything.
	h, frames := rawChunk(1, "a", ragkvv1.ChunkKVDType_CHUNK_KV_DTYPE_F16, 2, 3)
	_, err = pushChunk(ctx, e.client, h, frames)
	wantAuthCode(t, "PutChunk without a token", err, codes.Unauthenticated)
	// The health service needs no credentials (load balancers, compose healthcheck).
	if _, err := healthpb.NewHealthClient(e.conn).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatalf("health without a token: %v", err)
	}
}

func TestAuthReaderCannotPut(t *testing.T) {
	e := startAuthServer(t)
	ctx := testCtx(t)
	h, frames := rawChunk(2, "a", ragkvv1.ChunkKVDType_CHUNK_KV_DTYPE_F16, 2, 3)
	_, err := pushChunk(as(ctx, tokReader), e.client, h, frames)
	wantAuthCode(t, "reader PutChunk", err, codes.PermissionDenied)
	if st := adminStats(t, e); st.GetChunks() != 0 {
		t.Fatalf("a denied put stored %d chunks", st.GetChunks())
	}
	if _, err := pushChunk(as(ctx, tokWriter), e.client, h, frames); err != nil {
		t.Fatalf("writer PutChunk: %v", err)
	}
}

func TestAuthAdminOnlyOperations(t *testing.T) {
	e := startAuthServer(t)
	ctx := testCtx(t)
	h, frames := rawChunk(3, "a", ragkvv1.ChunkKVDType_CHUNK_KV_DTYPE_F16, 2, 3)
	res, err := pushChunk(as(ctx, tokWriter), e.client, h, frames)
	if err != nil {
		t.Fatal(err)
	}
	ref := keyRef("a", res.GetKey())
	one := uint64(1)
	setPolicy := &ragkvv1.SetChunkPolicyRequest{Tiers: []*ragkvv1.ChunkTierPolicyUpdate{{Tier: "memory", CapacityBytes: &one}}}
	for _, tok := range []string{tokReader, tokWriter} {
		_, err := e.client.SetPolicy(as(ctx, tok), setPolicy)
		wantAuthCode(t, "SetPolicy by "+tok, err, codes.PermissionDenied)
		_, err = e.client.DeleteChunk(as(ctx, tok), &ragkvv1.DeleteChunkRequest{Chunk: ref})
		wantAuthCode(t, "DeleteChunk by "+tok, err, codes.PermissionDenied)
		_, err = e.client.Pin(as(ctx, tok), &ragkvv1.PinChunkRequest{Chunk: ref, Pin: ragkvv1.ChunkPin_CHUNK_PIN_HARD})
		wantAuthCode(t, "hard Pin by "+tok, err, codes.PermissionDenied)
		_, err = e.client.Pin(as(ctx, tok), &ragkvv1.PinChunkRequest{Chunk: ref}) // UNPINNED means HARD
		wantAuthCode(t, "default (hard) Pin by "+tok, err, codes.PermissionDenied)
	}
	hard, hf := rawChunk(4, "a", ragkvv1.ChunkKVDType_CHUNK_KV_DTYPE_F16, 2, 3)
	hard.Pin = ragkvv1.ChunkPin_CHUNK_PIN_HARD
	_, err = pushChunk(as(ctx, tokWriter), e.client, hard, hf)
	wantAuthCode(t, "writer PutChunk with a hard pin", err, codes.PermissionDenied)
	if _, err := e.client.Pin(as(ctx, tokWriter), &ragkvv1.PinChunkRequest{Chunk: ref, Pin: ragkvv1.ChunkPin_CHUNK_PIN_SOFT}); err != nil {
		t.Fatalf("writer soft pin: %v", err)
	}
	// The policy is unchanged (no mass eviction by a non-admin), and the admin can.
	if st := adminStats(t, e); st.GetTiers()[0].GetCapacityBytes() != 1<<20 || st.GetChunks() != 1 {
		t.Fatalf("after denied calls: capacity %d, chunks %d", st.GetTiers()[0].GetCapacityBytes(), st.GetChunks())
	}
	if _, err := e.client.Pin(as(ctx, tokAdmin), &ragkvv1.PinChunkRequest{Chunk: ref, Pin: ragkvv1.ChunkPin_CHUNK_PIN_HARD}); err != nil {
		t.Fatalf("admin hard pin: %v", err)
	}
	if _, err := e.client.DeleteChunk(as(ctx, tokAdmin), &ragkvv1.DeleteChunkRequest{Chunk: ref}); err != nil {
		t.Fatalf("admin delete: %v", err)
	}
}

func TestAuthForeignNamespaceLooksMissing(t *testing.T) {
	e := startAuthServer(t)
	ctx := testCtx(t)
	h, frames := rawChunk(5, "b", ragkvv1.ChunkKVDType_CHUNK_KV_DTYPE_F16, 2, 3)
	res, err := pushChunk(as(ctx, tokOther), e.client, h, frames)
	if err != nil {
		t.Fatal(err)
	}
	// alice may use "ghost", which does not exist: what she gets there is what she must
	// get for "b", which exists but is not hers.
	_, missing := e.client.Lookup(as(ctx, tokReader), &ragkvv1.ChunkLookupRequest{Namespace: "ghost", Keys: [][]byte{res.GetKey()}})
	_, foreign := e.client.Lookup(as(ctx, tokReader), &ragkvv1.ChunkLookupRequest{Namespace: "b", Keys: [][]byte{res.GetKey()}})
	if status.Code(missing) != codes.NotFound || status.Code(foreign) != codes.NotFound ||
		strings.ReplaceAll(status.Convert(missing).Message(), "ghost", "b") != status.Convert(foreign).Message() {
		t.Fatalf("Lookup in a missing namespace: %v\nin a foreign one: %v\nwant the same answer", missing, foreign)
	}
	_, _, missing = fetch(as(ctx, tokReader), e.client, keyRef("ghost", res.GetKey()))
	_, _, foreign = fetch(as(ctx, tokReader), e.client, keyRef("b", res.GetKey()))
	if status.Code(foreign) != codes.NotFound ||
		strings.ReplaceAll(status.Convert(missing).Message(), "ghost", "b") != status.Convert(foreign).Message() {
		t.Fatalf("GetChunk in a missing namespace: %v\nin a foreign one: %v\nwant the same answer", missing, foreign)
	}
	// A writer cannot put into another tenant's namespace either.
	h2, f2 := rawChunk(6, "b", ragkvv1.ChunkKVDType_CHUNK_KV_DTYPE_F16, 2, 3)
	_, err = pushChunk(as(ctx, tokWriter), e.client, h2, f2)
	wantAuthCode(t, "PutChunk into a foreign namespace", err, codes.NotFound)
	_, err = e.client.Locate(as(ctx, tokWriter), &ragkvv1.LocateRequest{Namespace: "b", Keys: [][]byte{res.GetKey()}})
	wantAuthCode(t, "Locate in a foreign namespace", err, codes.NotFound)
	stream, err := e.client.WatchChunks(as(ctx, tokWriter), &ragkvv1.WatchChunksRequest{})
	if err == nil {
		_, err = stream.Recv()
	}
	wantAuthCode(t, "WatchChunks of every namespace by a scoped identity", err, codes.PermissionDenied)
}

func TestAuthStatsOnlyOwnNamespaces(t *testing.T) {
	e := startAuthServer(t)
	ctx := testCtx(t)
	for i, tok := range map[string]string{"a": tokWriter, "b": tokOther} {
		h, frames := rawChunk(uint64(len(i))+10, i, ragkvv1.ChunkKVDType_CHUNK_KV_DTYPE_F16, 2, 3)
		if _, err := pushChunk(as(ctx, tok), e.client, h, frames); err != nil {
			t.Fatal(err)
		}
	}
	st, err := e.client.Stats(as(ctx, tokReader), &ragkvv1.ChunkCacheStatsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, ns := range st.GetNamespaces() {
		if ns == "b" {
			t.Fatalf("alice's Stats lists namespace b: %v", st.GetNamespaces())
		}
	}
	st, err = e.client.Stats(as(ctx, tokAdmin), &ragkvv1.ChunkCacheStatsRequest{})
	if err != nil || !strings.Contains(strings.Join(st.GetNamespaces(), ","), "b") {
		t.Fatalf("admin Stats: %v %v", st.GetNamespaces(), err)
	}
}

func TestAuthPutRecordsIdentityAndServerComputedOnly(t *testing.T) {
	e := startAuthServer(t)
	ctx := testCtx(t)
	h, frames := rawChunk(20, "a", ragkvv1.ChunkKVDType_CHUNK_KV_DTYPE_F16, 2, 3)
	h.Metadata[PutByMetadataKey] = []byte("root") // forged
	res, err := pushChunk(as(ctx, tokWriter), e.client, h, frames)
	if err != nil {
		t.Fatal(err)
	}
	info, _, err := fetch(as(ctx, tokReader), e.client, keyRef("a", res.GetKey()))
	if err != nil {
		t.Fatal(err)
	}
	if got := string(info.GetMetadata()[PutByMetadataKey]); got != "alice-writer" {
		t.Fatalf("chunk records put_by %q, want alice-writer", got)
	}
	p, pf := rawChunk(21, "pristine", ragkvv1.ChunkKVDType_CHUNK_KV_DTYPE_F16, 2, 3)
	_, err = pushChunk(as(ctx, tokWriter), e.client, p, pf)
	wantAuthCode(t, "PutChunk into a server-computed-only namespace", err, codes.PermissionDenied)
	_, err = pushChunk(as(ctx, tokAdmin), e.client, p, pf)
	wantAuthCode(t, "admin PutChunk into a server-computed-only namespace", err, codes.PermissionDenied)
}

func TestAuthRateLimitPerIdentity(t *testing.T) {
	e := startAuthServer(t)
	ctx := testCtx(t)
	for i := 0; i < 2; i++ { // the burst
		if _, err := e.client.Stats(as(ctx, tokLimited), &ragkvv1.ChunkCacheStatsRequest{}); err != nil {
			t.Fatalf("request %d within the burst: %v", i, err)
		}
	}
	_, err := e.client.Stats(as(ctx, tokLimited), &ragkvv1.ChunkCacheStatsRequest{})
	wantAuthCode(t, "request over the rate limit", err, codes.ResourceExhausted)
	// Other identities are not affected.
	if _, err := e.client.Stats(as(ctx, tokReader), &ragkvv1.ChunkCacheStatsRequest{}); err != nil {
		t.Fatalf("another identity: %v", err)
	}
}

func TestAuthReloadReplacesTokens(t *testing.T) {
	e := startAuthServer(t)
	ctx := testCtx(t)
	const fresh = "fresh-admin-token-0123456789"
	next := strings.Replace(authYAML(), auth.HashToken(tokAdmin), auth.HashToken(fresh), 1)
	if err := os.WriteFile(e.file, []byte(next), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := e.st.Reload(); err != nil {
		t.Fatal(err)
	}
	_, err := e.client.Stats(as(ctx, tokAdmin), &ragkvv1.ChunkCacheStatsRequest{})
	wantAuthCode(t, "revoked token after reload", err, codes.Unauthenticated)
	if _, err := e.client.Stats(as(ctx, fresh), &ragkvv1.ChunkCacheStatsRequest{}); err != nil {
		t.Fatalf("new token after reload: %v", err)
	}
	// A broken file keeps the identities in force.
	if err := os.WriteFile(e.file, []byte("identities: [{name: x, role: emperor, token_sha256: zz}]"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := e.st.Reload(); err == nil || !strings.Contains(err.Error(), "emperor") {
		t.Fatalf("reload of a broken file: %v", err)
	}
	if _, err := e.client.Stats(as(ctx, fresh), &ragkvv1.ChunkCacheStatsRequest{}); err != nil {
		t.Fatalf("token after a failed reload: %v", err)
	}
}

func TestAuthHandlesBoundAndOwned(t *testing.T) {
	st, err := auth.Load(writeAuthFile(t, authYAML()))
	if err != nil {
		t.Fatal(err)
	}
	a := &authz{st: st, o: AuthOptions{MaxHandlesPerIdentity: 2}, handles: map[string]handleOwner{}}
	alice, _ := st.Token(tokReader)
	bob, _ := st.Token(tokOther)
	soon := time.Now().Add(time.Minute)
	for _, h := range []string{"h1", "h2"} {
		if err := a.handleRoom(alice); err != nil {
			t.Fatal(err)
		}
		a.handles[h] = handleOwner{identity: alice.Name, expires: soon}
	}
	wantAuthCode(t, "third handle", a.handleRoom(alice), codes.ResourceExhausted)
	if err := a.handleRoom(bob); err != nil {
		t.Fatalf("bob's first handle: %v", err)
	}
	err = a.useHandle(bob, "h1", false)
	_, missing := a.handles["nope"], a.useHandle(alice, "nope", false)
	if status.Code(err) != codes.NotFound || strings.ReplaceAll(status.Convert(missing).Message(), "nope", "h1") != status.Convert(err).Message() {
		t.Fatalf("bob using alice's handle: %v; a missing one: %v; want the same answer", err, missing)
	}
	if err := a.useHandle(alice, "h1", false); err != nil {
		t.Fatalf("alice using her handle: %v", err)
	}
	if err := a.handleRoom(alice); err != nil {
		t.Fatalf("after consuming a handle: %v", err)
	}
	a.handles["old"] = handleOwner{identity: alice.Name, expires: time.Now().Add(-time.Second)}
	if err := a.handleRoom(alice); err != nil {
		t.Fatalf("expired handles must not count: %v", err)
	}
}

func adminStats(t *testing.T, e *authEnv) *ragkvv1.ChunkCacheStatsResponse {
	t.Helper()
	st, err := e.client.Stats(as(testCtx(t), tokAdmin), &ragkvv1.ChunkCacheStatsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestAdminListenerRoles(t *testing.T) {
	st, err := auth.Load(writeAuthFile(t, authYAML()))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(WithAuth(st, AuthOptions{}), WithAdminAuth(st),
		WithAdminHandler("/", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("console")) })))
	if err != nil {
		t.Fatal(err)
	}
	h := srv.AdminHandler()
	code := func(path, user, token string) int {
		req := httptest.NewRequest("GET", path, nil)
		switch user {
		case "bearer":
			req.Header.Set("Authorization", "Bearer "+token)
		case "basic":
			req.SetBasicAuth("anyone", token)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Code
	}
	for _, c := range []struct {
		path, how, token string
		want             int
	}{
		{"/healthz", "", "", http.StatusOK},
		{"/metrics", "", "", http.StatusUnauthorized},
		{"/metrics", "bearer", tokReader, http.StatusOK},
		{"/", "bearer", tokReader, http.StatusForbidden},
		{"/", "bearer", tokWriter, http.StatusForbidden},
		{"/", "basic", "wrong", http.StatusUnauthorized},
		{"/", "basic", tokAdmin, http.StatusOK},
		{"/", "bearer", tokAdmin, http.StatusOK},
	} {
		if got := code(c.path, c.how, c.token); got != c.want {
			t.Errorf("GET %s (%s %q): %d, want %d", c.path, c.how, c.token, got, c.want)
		}
	}
}
