package retrieval

import (
	"context"
	"testing"
)

func TestToolNameWords(t *testing.T) {
	for in, want := range map[string]string{"get_weather": "get weather", "SearchFlights": "search flights", "PDF2Text-v1": "pdf2 text v1", "x": "x"} {
		if got := toolNameWords(in); got != want {
			t.Errorf("toolNameWords(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestToolVariants: the prior and kNN methods retrieve what tool2vec does on clear
// queries, survive a reopen (kNN stores the usage vectors), and the name prior rescues a
// tool with no usage queries and an uninformative description.
func TestToolVariants(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	sif := testSIF(t)
	st := openStore(t, dir, sif)
	tools := []Tool{
		{Name: "PetCare", Description: "helps"},
		{Name: "AutoShop", Description: "the engine and the car"},
		{Name: "Chef", Description: "food"},
		{Name: "tumor_gene_lab", Description: "a service"},
	}
	usage := []ToolUsage{
		{Query: "my dog has fur on the tail", Tool: "PetCare"}, {Query: "kitten and puppy vet", Tool: "PetCare"},
		{Query: "brake and wheel for my truck", Tool: "AutoShop"},
		{Query: "bake bread with cheese", Tool: "Chef"}, {Query: "soup recipe for the kitchen", Tool: "Chef"},
	}
	for _, m := range []ToolMethod{ToolMethodPrior, ToolMethodKNN} {
		if _, err := st.RegisterTools(ctx, map[ToolMethod]string{ToolMethodPrior: "prior", ToolMethodKNN: "knn"}[m], tools, usage, RegisterToolsOptions{Method: m}); err != nil {
			t.Fatal(err)
		}
	}
	check := func(st *Store) {
		for _, reg := range []string{"prior", "knn"} {
			for q, want := range map[string]string{"a dog with fur": "PetCare", "truck engine fuel": "AutoShop", "bake bread": "Chef", "tumor gene": "tumor_gene_lab"} {
				hits, err := st.RetrieveTools(ctx, reg, q, 2)
				if err != nil {
					t.Fatal(err)
				}
				if hits[0].Name != want {
					t.Errorf("%s %q: %+v, want %s first", reg, q, hits, want)
				}
			}
		}
	}
	check(st)
	st.Close()
	st = openStore(t, dir, sif)
	defer st.Close()
	check(st)
	if _, err := ParseToolMethod("nope"); err == nil {
		t.Fatal("unknown method accepted")
	}
}
