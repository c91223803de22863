package beir

import (
	"errors"
	"math"
	"strings"
	"testing"
)

func near(a, b float64) bool { return math.Abs(a-b) < 1e-12 }

func TestNDCGGraded(t *testing.T) {
	rel := map[string]int{"a": 2, "b": 1, "c": 0, "z": 1}
	ranked := []string{"b", "x", "a", "c"}
	// DCG = 1/log2(2) + 2/log2(4) = 1 + 1; IDCG = 2/log2(2) + 1/log2(3) + 1/log2(4).
	want := 2 / (2 + 1/math.Log2(3) + 0.5)
	if got := NDCG(ranked, rel, 10); !near(got, want) {
		t.Fatalf("NDCG = %v, want %v", got, want)
	}
	// Cut at 1: only "b" (gain 1) counts; the ideal first document has gain 2.
	if got := NDCG(ranked, rel, 1); !near(got, 0.5) {
		t.Fatalf("NDCG@1 = %v, want 0.5", got)
	}
	if got := NDCG([]string{"a", "b", "z"}, rel, 10); !near(got, 1) {
		t.Fatalf("ideal ranking NDCG = %v, want 1", got)
	}
	if got := NDCG(ranked, map[string]int{"q": 0}, 10); got != 0 {
		t.Fatalf("NDCG without relevant docs = %v", got)
	}
}

func TestRecallMRR(t *testing.T) {
	rel := map[string]int{"a": 1, "b": 3, "c": 0}
	ranked := []string{"x", "c", "b", "y", "a"}
	if got := Recall(ranked, rel, 3); !near(got, 0.5) {
		t.Fatalf("recall@3 = %v, want 0.5", got)
	}
	if got := Recall(ranked, rel, 100); !near(got, 1) {
		t.Fatalf("recall@100 = %v, want 1", got)
	}
	if got := MRR(ranked, rel, 10); !near(got, 1.0/3) {
		t.Fatalf("MRR = %v, want 1/3", got)
	}
	if got := MRR(ranked, rel, 2); got != 0 {
		t.Fatalf("MRR@2 = %v, want 0", got)
	}
}

func TestEvaluateSkipsUnjudgedAndIdenticalIDs(t *testing.T) {
	qrels := Qrels{
		"q1": {"d1": 1},
		"q2": {"d2": 1},
		"q3": {"d3": 0}, // no relevant document: not averaged
	}
	run := map[string][]string{
		"q1": {"q1", "d1"}, // the query's own id is dropped, so d1 is rank 1
		"q3": {"d3"},
		// q2 missing: scores 0
	}
	s := Evaluate(run, qrels)
	if s.Queries != 2 || !near(s.NDCG10, 0.5) || !near(s.MRR10, 0.5) || !near(s.Recall100, 0.5) {
		t.Fatalf("Evaluate = %+v", s)
	}
}

func TestReadCorpusErrorsNameLines(t *testing.T) {
	cases := []struct{ in, want string }{
		{`{"_id":"1","text":"a"}` + "\n" + `{"_id":"2","text":`, "c.jsonl:2: invalid JSON"},
		{`{"_id":"1","text":"a"}` + "\n\n" + `{"text":"b"}`, `c.jsonl:3: missing "_id"`},
		{`{"_id":"1","text":"a"}` + "\n" + `{"_id":"1","text":"b"}`, `c.jsonl:2: duplicate _id "1" (first on line 1)`},
		{`{"_id":"1","title":" ","text":""}`, "c.jsonl:1: document \"1\" has neither title nor text"},
		{`{"_id":"1","text":"a"} {"x":1}`, "c.jsonl:1: invalid JSON document: trailing data"},
		{`[1,2]`, "c.jsonl:1: invalid JSON"},
	}
	for _, c := range cases {
		err := ReadCorpus(strings.NewReader(c.in), "c.jsonl", func(Doc) error { return nil })
		if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("ReadCorpus(%q) = %v, want ErrMalformed containing %q", c.in, err, c.want)
		}
	}
}

func TestReadCorpusAcceptsNumericIDs(t *testing.T) {
	var docs []Doc
	err := ReadCorpus(strings.NewReader(`{"_id": 42, "title": "T", "text": "x"}`+"\n"+`{"_id":"7","text":"y"}`), "c", func(d Doc) error {
		docs = append(docs, d)
		return nil
	})
	if err != nil || len(docs) != 2 || docs[0].ID != "42" || docs[0].Title != "T" || docs[1].ID != "7" {
		t.Fatalf("docs %+v, err %v", docs, err)
	}
}

func TestReadQueriesAndQrels(t *testing.T) {
	qs, err := ReadQueries(strings.NewReader(`{"_id":"0","text":"a claim"}`+"\n"+`{"_id":"1","text":"b"}`), "q")
	if err != nil || len(qs) != 2 || qs[1].Text != "b" {
		t.Fatalf("queries %+v, %v", qs, err)
	}
	if _, err := ReadQueries(strings.NewReader(`{"_id":"0","text":"a"}`+"\n"+`{"_id":"1","text":""}`), "q.jsonl"); !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "q.jsonl:2") {
		t.Fatalf("empty query text: %v", err)
	}
	qr, err := ReadQrels(strings.NewReader("query-id\tcorpus-id\tscore\n0\td1\t1\n0\td2\t2\n1\td1\t0\n"), "r")
	if err != nil || qr["0"]["d2"] != 2 || len(qr) != 2 || qr.HasRelevant("1") || !qr.HasRelevant("0") {
		t.Fatalf("qrels %v, %v", qr, err)
	}
	for _, bad := range []struct{ in, want string }{
		{"0\td1\t1\n", "r.tsv:1: first line must be the header"},
		{"h\n0\td1\n", "r.tsv:2: want 3 tab-separated fields"},
		{"h\n0\td1\tx\n", `r.tsv:2: score "x" is not an integer`},
		{"", "empty file"},
	} {
		if _, err := ReadQrels(strings.NewReader(bad.in), "r.tsv"); !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("ReadQrels(%q) = %v, want %q", bad.in, err, bad.want)
		}
	}
}

// TestEvaluateIsDeterministic: the averages are summed in a fixed order, so the same run
// gives the same float64s every time (map iteration order varies between calls).
func TestEvaluateIsDeterministic(t *testing.T) {
	qrels := Qrels{}
	run := map[string][]string{}
	for i := 0; i < 200; i++ {
		qid := "q" + strings.Repeat("x", i%7) + string(rune('a'+i%26)) + string(rune('a'+i/26))
		qrels[qid] = map[string]int{"d1": 1, "d2": 1 + i%3, "d3": 1}
		ranked := []string{"n0"}
		for j := 0; j < i%9; j++ {
			ranked = append(ranked, "n")
		}
		run[qid] = append(ranked, "d2", "d1")
	}
	first := Evaluate(run, qrels)
	for i := 0; i < 50; i++ {
		if got := Evaluate(run, qrels); got != first {
			t.Fatalf("call %d: %+v, first call %+v", i, got, first)
		}
	}
}
