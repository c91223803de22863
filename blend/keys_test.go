package blend

import (
	"context"
	"errors"
	"testing"
)

// TestPromptKeysMatchPrefill: PromptKeys gives the keys and token counts Prefill
// reports for the same prompt (system prefix first).
func TestPromptKeysMatchPrefill(t *testing.T) {
	ctx := context.Background()
	e := testEngine(t, EngineOptions{})
	for _, system := range []string{"", "A story."} {
		chunks := []string{"Tom had a dog.", "The dog was big."}
		keys, err := e.PromptKeys(ctx, "ns1", system, chunks)
		if err != nil {
			t.Fatal(err)
		}
		out, err := e.Prefill(ctx, &PrefillInput{Namespace: "ns1", System: system, Chunks: []ChunkRef{{Text: chunks[0]}, {Text: chunks[1]}}, Query: "The"})
		if err != nil {
			t.Fatal(err)
		}
		if len(keys) != len(out.Segments) {
			t.Fatalf("system %q: %d keys, %d segments", system, len(keys), len(out.Segments))
		}
		for i, s := range out.Segments {
			if keys[i].Key != s.Key || keys[i].Kind != s.Kind || keys[i].Tokens != s.Tokens {
				t.Fatalf("system %q segment %d: key %s %s %d, prefill %s %s %d", system, i,
					keys[i].Key.Short(), keys[i].Kind, keys[i].Tokens, s.Key.Short(), s.Kind, s.Tokens)
			}
		}
		other, _ := e.PromptKeys(ctx, "ns2", system, chunks)
		if other[1].Key == keys[1].Key {
			t.Fatal("namespace not in the key")
		}
	}
	if _, err := e.PromptKeys(ctx, "", "", []string{""}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("empty chunk: %v", err)
	}
}
