package server

import (
	"context"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	ragkvv1 "github.com/ragkv/ragkv/proto/ragkv/v1"
	"github.com/ragkv/ragkv/server/auth"
)

// The RPCs and fields of the RAG path and the collection lifecycle are inside the
// trust boundary: a collection or namespace outside the caller's scopes answers as a
// missing one, lifecycle changes need their role, and ListCollections lists only the
// caller's collections.
func TestAuthRAGAndCollectionRPCs(t *testing.T) {
	st, err := auth.Load(writeAuthFile(t, `
identities:
  - name: reader
    role: reader
    token_sha256: `+auth.HashToken(tokReader)+`
    namespaces: ["a"]
    collections: ["docs"]
  - name: writer
    role: writer
    token_sha256: `+auth.HashToken(tokWriter)+`
    namespaces: ["a"]
    collections: ["docs"]
`))
	if err != nil {
		t.Fatal(err)
	}
	a := &authz{st: st, o: AuthOptions{MaxHandlesPerIdentity: DefaultMaxHandlesPerIdentity}, handles: map[string]handleOwner{}}
	reader, err := st.Token(tokReader)
	if err != nil {
		t.Fatal(err)
	}
	writer, err := st.Token(tokWriter)
	if err != nil {
		t.Fatal(err)
	}
	src := func(c string) *ragkvv1.RetrievalSource {
		return &ragkvv1.RetrievalSource{Collection: c, Query: "q", K: 2}
	}
	cases := []struct {
		name   string
		id     *auth.Identity
		method string
		msg    any
		want   codes.Code
	}{
		{"prefill, own collection", reader, "/ragkv.v1.Inference/Prefill", &ragkvv1.PrefillRequest{Namespace: "a", Retrieval: src("docs")}, codes.OK},
		{"prefill, foreign collection", reader, "/ragkv.v1.Inference/Prefill", &ragkvv1.PrefillRequest{Namespace: "a", Retrieval: src("secret")}, codes.NotFound},
		{"generate, foreign collection", reader, "/ragkv.v1.Inference/Generate", &ragkvv1.GenerateRequest{Source: &ragkvv1.GenerateRequest_Prefill{Prefill: &ragkvv1.PrefillRequest{Namespace: "a", Retrieval: src("secret")}}}, codes.NotFound},
		{"retrieve with keys, foreign namespace", reader, "/ragkv.v1.Retrieval/Retrieve", &ragkvv1.RetrieveRequest{Collection: "docs", Query: "q", WithKeys: true, Namespace: "b"}, codes.NotFound},
		{"retrieve with keys, own namespace", reader, "/ragkv.v1.Retrieval/Retrieve", &ragkvv1.RetrieveRequest{Collection: "docs", Query: "q", WithKeys: true, Namespace: "a"}, codes.OK},
		{"precompute collection, foreign collection", writer, "/ragkv.v1.Inference/PrecomputeCollection", &ragkvv1.PrecomputeCollectionRequest{Collection: "secret", Namespace: "a"}, codes.NotFound},
		{"precompute collection, foreign namespace", writer, "/ragkv.v1.Inference/PrecomputeCollection", &ragkvv1.PrecomputeCollectionRequest{Collection: "docs", Namespace: "b"}, codes.NotFound},
		{"compact, foreign collection", writer, "/ragkv.v1.Retrieval/CompactCollection", &ragkvv1.CompactCollectionRequest{Collection: "secret"}, codes.NotFound},
	}
	for _, c := range cases {
		err := a.authorize(c.id, c.method, c.msg)
		if status.Code(err) != c.want {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
	// Roles: a reader may not precompute or compact; only an admin deletes a collection.
	for _, c := range []struct {
		id     *auth.Identity
		method string
	}{
		{reader, "/ragkv.v1.Inference/PrecomputeCollection"},
		{reader, "/ragkv.v1.Retrieval/CompactCollection"},
		{writer, "/ragkv.v1.Retrieval/DeleteCollection"},
	} {
		need, ok := methodRoles[c.method]
		if !ok {
			t.Fatalf("%s is not classified", c.method)
		}
		if c.id.Allows(need) {
			t.Errorf("%s (%s) may call %s", c.id.Name, c.id.Role, c.method)
		}
	}
	if need := methodRoles["/ragkv.v1.Retrieval/ListCollections"]; !reader.Allows(need) {
		t.Errorf("a reader may not list collections")
	}
	// ListCollections answers with the caller's collections only.
	ctx := metadata.NewIncomingContext(context.Background(), metadata.Pairs("authorization", "Bearer "+tokReader))
	resp, err := a.unary(ctx, &ragkvv1.ListCollectionsRequest{}, &grpc.UnaryServerInfo{FullMethod: "/ragkv.v1.Retrieval/ListCollections"},
		func(context.Context, any) (any, error) {
			return &ragkvv1.ListCollectionsResponse{Collections: []*ragkvv1.RetrievalCollectionInfo{{Name: "docs"}, {Name: "secret"}}}, nil
		})
	if err != nil {
		t.Fatal(err)
	}
	got := resp.(*ragkvv1.ListCollectionsResponse).GetCollections()
	if len(got) != 1 || got[0].GetName() != "docs" {
		t.Fatalf("ListCollections for reader: %v, want only docs", got)
	}
}
