package quantize

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/ragkv/ragkv/model/gguf"
)

// layerTensors lists a dense Llama-style model's quantizable tensors in llama.cpp's order.
func layerTensors(layers int, output bool) []string {
	names := []string{}
	if output {
		names = append(names, "output.weight")
	}
	names = append(names, "token_embd.weight")
	for l := range layers {
		for _, s := range []string{"attn_k", "attn_output", "attn_q", "attn_v", "ffn_down", "ffn_gate", "ffn_up"} {
			names = append(names, fmt.Sprintf("blk.%d.%s.weight", l, s))
		}
	}
	sortTensors(names, func(s string) string { return s })
	return names
}

// typesOf runs the rules over names (every row nx long) and returns name → type.
func typesOf(t *testing.T, ft FileType, m modelInfo, names []string, nx uint64) map[string]string {
	t.Helper()
	r := newRules(ft, m, names)
	out := map[string]string{}
	for _, n := range names {
		typ, _, err := r.typeFor(n, []uint64{nx, 64})
		if err != nil {
			t.Fatalf("%s: %v", n, err)
		}
		out[n] = typ.String()
	}
	return out
}

// layersWith returns the layers whose tensor suffix got type typ.
func layersWith(got map[string]string, layers int, suffix, typ string) []int {
	var ls []int
	for l := range layers {
		if got[fmt.Sprintf("blk.%d.%s.weight", l, suffix)] == typ {
			ls = append(ls, l)
		}
	}
	return ls
}

// TestRulesDense32: a 32-layer dense Llama (Llama-2-7B's layout) with rows of 4096, as
// llama_tensor_get_type assigns types (the layer lists are worked out by hand from
// use_more_bits: i < 4, i ≥ 28, (i − 4) mod 3 = 2).
func TestRulesDense32(t *testing.T) {
	m := modelInfo{arch: "llama", layers: 32, heads: 32, kvHeads: 32, hasOutput: true}
	names := layerTensors(32, true)
	more := "[0 1 2 3 6 9 12 15 18 21 24 27 28 29 30 31]"
	for _, c := range []struct {
		ft                         FileType
		output, embd, attnV, ffnDn string // attnV/ffnDn: layers with the raised type
		raised, base               string
	}{
		{Q4_K_M, "q6_K", "q4_K", more, more, "q6_K", "q4_K"},
		{Q5_K_M, "q6_K", "q5_K", more, more, "q6_K", "q5_K"},
		{Q4_K_S, "q6_K", "q4_K", "[0 1 2 3]", "[0 1 2 3]", "q5_K", "q4_K"},
		{Q5_K_S, "q6_K", "q5_K", "[]", "[]", "q6_K", "q5_K"},
		{Q6_K, "q6_K", "q6_K", "[]", "[]", "q8_0", "q6_K"},
		{Q8_0, "q8_0", "q8_0", "[]", "[]", "q6_K", "q8_0"},
		{Q4_0, "q6_K", "q4_0", "[]", "[]", "q6_K", "q4_0"},
	} {
		t.Run(c.ft.String(), func(t *testing.T) {
			got := typesOf(t, c.ft, m, names, 4096)
			if got["output.weight"] != c.output || got["token_embd.weight"] != c.embd {
				t.Errorf("output %s, token_embd %s; want %s, %s", got["output.weight"], got["token_embd.weight"], c.output, c.embd)
			}
			if l := fmt.Sprint(layersWith(got, 32, "attn_v", c.raised)); l != c.attnV {
				t.Errorf("attn_v %s in layers %s, want %s", c.raised, l, c.attnV)
			}
			if l := fmt.Sprint(layersWith(got, 32, "ffn_down", c.raised)); l != c.ffnDn {
				t.Errorf("ffn_down %s in layers %s, want %s", c.raised, l, c.ffnDn)
			}
			for _, s := range []string{"attn_q", "attn_k", "attn_output", "ffn_gate", "ffn_up"} {
				if l := layersWith(got, 32, s, c.base); len(l) != 32 {
					t.Errorf("%s: %s in only %d layers", s, c.base, len(l))
				}
			}
		})
	}
}

// TestRulesTiedEmbeddings: without output.weight, token_embd takes the output rule.
func TestRulesTiedEmbeddings(t *testing.T) {
	m := modelInfo{arch: "qwen2", layers: 4, heads: 8, kvHeads: 4}
	names := layerTensors(4, false)
	if got := typesOf(t, Q4_K_M, m, names, 256)["token_embd.weight"]; got != "q6_K" {
		t.Errorf("tied token_embd: %s, want q6_K", got)
	}
	if got := typesOf(t, Q8_0, m, names, 256)["token_embd.weight"]; got != "q8_0" {
		t.Errorf("tied token_embd at q8_0: %s", got)
	}
	// Rows that the base type's block does not divide: q8_0 (SmolLM's 576).
	if got := typesOf(t, Q4_K_M, m, names, 576)["token_embd.weight"]; got != "q8_0" {
		t.Errorf("tied token_embd with 576 columns: %s, want q8_0", got)
	}
}

// TestRulesSpecialModels: 70B-class models raise q4_K attn_v to q5_K; 8-expert models
// take q8_0 attn_v/attn_k, q5_K attn_output and read ffn_down's layer from its name;
// fused attn_qkv gets q5_K/q6_K in the _M mixes.
func TestRulesSpecialModels(t *testing.T) {
	m70 := modelInfo{arch: "llama", layers: 80, heads: 64, kvHeads: 8, hasOutput: true}
	got := typesOf(t, Q4_K_S, m70, layerTensors(80, true), 8192)
	if got["blk.3.attn_v.weight"] != "q5_K" || got["blk.40.attn_v.weight"] != "q5_K" || got["blk.40.attn_q.weight"] != "q4_K" {
		t.Errorf("70B q4_K_S: attn_v %s/%s, attn_q %s", got["blk.3.attn_v.weight"], got["blk.40.attn_v.weight"], got["blk.40.attn_q.weight"])
	}
	m65 := m70
	m65.kvHeads = 64 // LLaMA-65B: no GQA, not LLM_TYPE_70B
	if got := typesOf(t, Q4_K_S, m65, layerTensors(80, true), 8192); got["blk.40.attn_v.weight"] != "q4_K" {
		t.Errorf("65B q4_K_S attn_v: %s", got["blk.40.attn_v.weight"])
	}

	moe := modelInfo{arch: "llama", layers: 32, heads: 32, kvHeads: 8, experts: 8, hasOutput: true}
	names := []string{"blk.5.attn_k.weight", "blk.5.attn_output.weight", "blk.5.attn_v.weight", "blk.5.ffn_down_exps.weight", "blk.6.ffn_down_exps.weight"}
	got = typesOf(t, Q4_K_M, moe, names, 4096)
	want := map[string]string{"blk.5.attn_k.weight": "q8_0", "blk.5.attn_output.weight": "q5_K", "blk.5.attn_v.weight": "q8_0",
		"blk.5.ffn_down_exps.weight": "q4_K", "blk.6.ffn_down_exps.weight": "q6_K"}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("8 experts: %s is %s, want %s", k, got[k], v)
		}
	}
	r := newRules(Q4_K_M, moe, []string{"ffn_down_exps.weight"})
	if _, _, err := r.typeFor("ffn_down_exps.weight", []uint64{4096, 64, 8}); !errors.Is(err, ErrInvalid) {
		t.Errorf("MoE ffn_down without a layer number: %v", err)
	}

	qkv := modelInfo{arch: "phi2", layers: 32, heads: 32, kvHeads: 32, hasOutput: true}
	for ft, want := range map[FileType]string{Q4_K_M: "q5_K", Q5_K_M: "q6_K", Q4_K_S: "q4_K"} {
		if got := typesOf(t, ft, qkv, []string{"blk.7.attn_qkv.weight"}, 2560)["blk.7.attn_qkv.weight"]; got != want {
			t.Errorf("%v attn_qkv: %s, want %s", ft, got, want)
		}
	}
}

// TestRulesFallbacks: rows that 256 does not divide fall back as in llama.cpp, with
// q4_K → q5_0, q5_K → q5_1, q6_K → q8_0, and f16 where 32 does not divide them either.
func TestRulesFallbacks(t *testing.T) {
	m := modelInfo{arch: "llama", layers: 30, heads: 9, kvHeads: 3, hasOutput: true}
	for _, c := range []struct {
		ft     FileType
		name   string
		nx     uint64
		want   string
		inNote string
	}{
		{Q4_K_M, "blk.4.attn_q.weight", 576, "q5_0", "q5_0 instead of q4_K"},
		{Q5_K_S, "blk.4.attn_q.weight", 576, "q5_1", "q5_1 instead of q5_K"},
		{Q4_K_M, "blk.4.attn_q.weight", 100, "f16", "f16 instead of q4_K"},
		{Q6_K, "blk.4.attn_q.weight", 576, "q8_0", "q8_0 instead of q6_K"},
		{Q4_K_M, "blk.0.attn_v.weight", 576, "q8_0", "q6_K"}, // use_more_bits q6_K → q8_0
		{Q6_K, "blk.4.attn_q.weight", 100, "f16", "f16 instead of q6_K"},
		{Q4_K_M, "blk.4.ffn_down.weight", 1536, "q6_K", ""}, // first ffn_down counted: use_more_bits(0, 30)
	} {
		r := newRules(c.ft, m, layerTensors(30, true))
		typ, note, err := r.typeFor(c.name, []uint64{c.nx, 64})
		if err != nil || typ.String() != c.want || !strings.Contains(note, c.inNote) || (c.inNote == "") != (note == "") {
			t.Errorf("%v %s [%d]: %v %q %v, want %s with %q", c.ft, c.name, c.nx, typ, note, err, c.want, c.inNote)
		}
	}
	for _, ft := range []FileType{Q8_0, Q4_0} {
		r := newRules(ft, m, nil)
		if _, _, err := r.typeFor("blk.0.ffn_down.weight", []uint64{172, 64}); !errors.Is(err, ErrUnsupported) {
			t.Errorf("%v with 172 columns: %v", ft, err)
		}
	}
}

func TestQuantizable(t *testing.T) {
	for name, c := range map[string]struct {
		dims []uint64
		want bool
	}{
		"blk.0.attn_q.weight":        {[]uint64{256, 256}, true},
		"output.weight":              {[]uint64{256, 512}, true},
		"blk.0.attn_norm.weight":     {[]uint64{256}, false},
		"blk.0.attn_q.bias":          {[]uint64{256, 2}, false},
		"blk.0.attn_k.weight":        {[]uint64{256, 1}, false}, // ggml_n_dims = 1
		"blk.0.ffn_gate_inp.weight":  {[]uint64{256, 8}, false},
		"blk.0.ffn_gate_exps.weight": {[]uint64{256, 64, 8}, true},
		"position_embd.weight":       {[]uint64{256, 64}, false},
		"rope_freqs.weight":          {[]uint64{16}, false},
		"blk.3.attn_rel_b.weight":    {[]uint64{32, 8}, false},
	} {
		if got := quantizable(name, c.dims); got != c.want {
			t.Errorf("quantizable(%s, %v) = %v", name, c.dims, got)
		}
	}
}

func TestTensorOrder(t *testing.T) {
	names := []string{"blk.10.attn_q.weight", "token_embd.weight", "blk.9.ffn_up.weight", "blk.9.attn_q.weight", "output.weight", "blk.2.x", "rope_freqs.weight"}
	sortTensors(names, func(s string) string { return s })
	want := "[output.weight rope_freqs.weight token_embd.weight blk.2.x blk.9.attn_q.weight blk.9.ffn_up.weight blk.10.attn_q.weight]"
	if fmt.Sprint(names) != want {
		t.Errorf("order %v", names)
	}
	for s, l := range map[string]int{"blk.12.a": 12, "blk.x": -1, "token_embd.weight": -1, "blk.-1.a": -1, "blk.7": 7} {
		if got := layerOf(s); got != l {
			t.Errorf("layerOf(%q) = %d, want %d", s, got, l)
		}
	}
}

func TestParseFileType(t *testing.T) {
	for _, n := range FileTypeNames() {
		ft, err := ParseFileType(strings.ToUpper(n))
		if err != nil || ft.String() != n || !ft.valid() {
			t.Errorf("%s: %v %v", n, ft, err)
		}
	}
	if _, err := ParseFileType("q2_K"); !errors.Is(err, ErrInvalid) {
		t.Errorf("q2_K accepted: %v", err)
	}
	if Q4_K_M.Base() != gguf.TensorQ4_K || uint32(Q4_K_M) != 15 || uint32(Q8_0) != 7 {
		t.Error("llama_ftype numbering")
	}
}
