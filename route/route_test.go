package route

import "testing"

func TestRank(t *testing.T) {
	reps := []string{"a", "b", "c"}
	for _, tc := range []struct {
		name   string
		chunks []Chunk
		want   string
	}{
		{"nothing cached: the first", []Chunk{{Tokens: 100}}, "a"},
		{"most tokens, not most chunks", []Chunk{
			{Tokens: 10, Replicas: map[string][]string{"a": {"memory"}}},
			{Tokens: 10, Replicas: map[string][]string{"a": {"memory"}}},
			{Tokens: 50, Replicas: map[string][]string{"c": {"disk"}}},
		}, "c"},
		{"tie on tokens: the faster tier", []Chunk{
			{Tokens: 30, Replicas: map[string][]string{"a": {"disk"}, "b": {"memory", "disk"}}},
		}, "b"},
		{"full tie: the caller's order", []Chunk{
			{Tokens: 30, Replicas: map[string][]string{"c": {"memory"}, "b": {"memory"}}},
		}, "b"},
		{"a replica outside the candidates does not count", []Chunk{
			{Tokens: 99, Replicas: map[string][]string{"z": {"memory"}}},
			{Tokens: 1, Replicas: map[string][]string{"c": {"disk"}}},
		}, "c"},
		{"an empty tier list does not count", []Chunk{
			{Tokens: 99, Replicas: map[string][]string{"b": {}}},
		}, "a"},
	} {
		if got := Choose(reps, tc.chunks); got != tc.want {
			t.Errorf("%s: chose %s, want %s (%+v)", tc.name, got, tc.want, Rank(reps, tc.chunks))
		}
	}
	s := Rank(reps, []Chunk{{Tokens: 7, Replicas: map[string][]string{"b": {"memory"}, "c": {"disk"}}}, {Tokens: 3, Replicas: map[string][]string{"b": {"disk"}}}})
	if s[0] != (Score{Replica: "b", CachedTokens: 10, FastTokens: 7, CachedChunks: 2}) || s[1].Replica != "c" || s[2].Replica != "a" {
		t.Fatalf("%+v", s)
	}
	if Choose(nil, nil) != "" {
		t.Fatal("no replicas")
	}
}
