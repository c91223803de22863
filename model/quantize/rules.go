package quantize

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/ragkv/ragkv/model/gguf"
)

var (
	// ErrInvalid marks unusable input: a bad option, a malformed or inconsistent model.
	ErrInvalid = errors.New("quantize: invalid input")
	// ErrUnsupported marks input this package cannot convert (an architecture, a tensor
	// type or a shape the requested type cannot hold).
	ErrUnsupported = errors.New("quantize: unsupported")
)

// FileType is a quantization mix, numbered as llama.cpp's llama_ftype (the value stored
// in general.file_type).
type FileType uint32

// The mixes offered (llama_ftype values).
const (
	Q4_0   FileType = 2
	Q8_0   FileType = 7
	Q4_K_S FileType = 14
	Q4_K_M FileType = 15
	Q5_K_S FileType = 16
	Q5_K_M FileType = 17
	Q6_K   FileType = 18
)

var fileTypes = []struct {
	ft   FileType
	name string
	base gguf.TensorType
}{
	{Q8_0, "q8_0", gguf.TensorQ8_0},
	{Q4_0, "q4_0", gguf.TensorQ4_0},
	{Q4_K_M, "q4_K_M", gguf.TensorQ4_K},
	{Q4_K_S, "q4_K_S", gguf.TensorQ4_K},
	{Q5_K_M, "q5_K_M", gguf.TensorQ5_K},
	{Q5_K_S, "q5_K_S", gguf.TensorQ5_K},
	{Q6_K, "q6_K", gguf.TensorQ6_K},
}

// FileTypeNames lists the names ParseFileType accepts, in a fixed order.
func FileTypeNames() []string {
	var n []string
	for _, f := range fileTypes {
		n = append(n, f.name)
	}
	return n
}

// ParseFileType parses a mix name (q8_0, q4_0, q4_K_M, q4_K_S, q5_K_M, q5_K_S, q6_K;
// case-insensitive).
func ParseFileType(s string) (FileType, error) {
	for _, f := range fileTypes {
		if strings.EqualFold(f.name, s) {
			return f.ft, nil
		}
	}
	return 0, fmt.Errorf("%w: type %q (supported: %s)", ErrInvalid, s, strings.Join(FileTypeNames(), ", "))
}

func (f FileType) String() string {
	for _, e := range fileTypes {
		if e.ft == f {
			return e.name
		}
	}
	return fmt.Sprintf("ftype(%d)", uint32(f))
}

// Base is the tensor type of the mix's default (most) weights.
func (f FileType) Base() gguf.TensorType {
	for _, e := range fileTypes {
		if e.ft == f {
			return e.base
		}
	}
	return gguf.TensorF32
}

func (f FileType) valid() bool { return f.Base() != gguf.TensorF32 }

// modelInfo is what the type rules need to know about the model.
type modelInfo struct {
	arch      string
	layers    int // block_count
	heads     int
	kvHeads   int
	experts   int // expert_count (0: dense)
	vocab     int
	hasOutput bool // an output.weight tensor exists (embeddings not tied)
}

// is70B reports llama.cpp's LLM_TYPE_70B for the architectures this package knows
// (load_hparams in src/llama-model.cpp).
func (m modelInfo) is70B() bool {
	if m.layers != 80 {
		return false
	}
	switch m.arch {
	case "llama":
		return m.experts != 8 && m.heads != m.kvHeads
	case "qwen2", "deci", "olmo":
		return true
	}
	return false
}

// nDims is ggml_n_dims: the number of dimensions ignoring trailing sizes of 1.
func nDims(dims []uint64) int {
	for i := len(dims) - 1; i >= 1; i-- {
		if dims[i] > 1 {
			return i + 1
		}
	}
	return 1
}

// quantizable is llama_model_quantize_impl's test for whether a tensor is quantized at
// all (output.weight is, since quantize_output_tensor defaults to true).
func quantizable(name string, dims []uint64) bool {
	if !strings.HasSuffix(name, "weight") || nDims(dims) < 2 {
		return false
	}
	for _, s := range []string{"_norm.weight", "ffn_gate_inp.weight", "ssm_conv1d.weight", "time_mix_first.weight",
		"time_mix_w1.weight", "time_mix_w2.weight", "time_mix_decay_w1.weight", "time_mix_decay_w2.weight",
		"time_mix_lerp_fused.weight", "attn_rel_b.weight"} {
		if strings.Contains(name, s) {
			return false
		}
	}
	return name != "position_embd.weight" && name != "token_types.weight"
}

// layerOf parses the layer number of a "blk.N." tensor name as sscanf("blk.%d.") does;
// -1 if there is none.
func layerOf(name string) int {
	s, ok := strings.CutPrefix(name, "blk.")
	if !ok {
		return -1
	}
	neg := false
	if s != "" && (s[0] == '-' || s[0] == '+') {
		neg, s = s[0] == '-', s[1:]
	}
	n, digits := 0, 0
	for ; digits < len(s) && s[digits] >= '0' && s[digits] <= '9'; digits++ {
		if n < 1<<30 {
			n = n*10 + int(s[digits]-'0')
		}
	}
	if digits == 0 {
		return -1
	}
	if neg {
		n = -n
	}
	return n
}

// sortTensors orders names as llama.cpp's weight_name_comparer: by layer number (tensors
// outside blocks first), then by name.
func sortTensors[T any](ts []T, name func(T) string) {
	sort.SliceStable(ts, func(i, j int) bool {
		a, b := name(ts[i]), name(ts[j])
		if la, lb := layerOf(a), layerOf(b); la != lb {
			return la < lb
		}
		return a < b
	})
}

// rules carries llama_tensor_get_type's state (quantize_state_impl) across the tensors
// of one model, visited in sortTensors order.
type rules struct {
	ft      FileType
	m       modelInfo
	nAttnV  int
	iAttnV  int
	iFFN    int
	nFFN    int
	nKQuant int
	nFall   int
}

func newRules(ft FileType, m modelInfo, names []string) *rules {
	r := &rules{ft: ft, m: m, nFFN: m.layers}
	for _, n := range names {
		if strings.Contains(n, "attn_v.weight") || strings.Contains(n, "attn_qkv.weight") || strings.Contains(n, "attn_kv_b.weight") {
			r.nAttnV++
		}
	}
	return r
}

// useMoreBits is llama.cpp's use_more_bits.
func useMoreBits(i, n int) bool { return i < n/8 || i >= 7*n/8 || (i-n/8)%3 == 2 }

// blockElems is ggml_blck_size.
func blockElems(t gguf.TensorType) int {
	ti, _ := t.Info()
	return ti.BlockElems
}

// typeFor is llama_tensor_get_type for a quantizable tensor: its type and, for a
// fallback, a note saying why it is not the rule's type.
func (r *rules) typeFor(name string, dims []uint64) (gguf.TensorType, string, error) {
	ft, arch := r.ft, r.m.arch
	t := ft.Base()
	nx := int(dims[0])
	// layer is llama.cpp's layer_info: the running count, or for MoE models the number
	// in the tensor's name.
	layer := func(i int) (int, error) {
		if max(1, r.m.experts) > 1 {
			l := layerOf(name)
			if l < 0 || l >= r.nFFN {
				return 0, fmt.Errorf("%w: cannot determine the layer of tensor %q (%d layers)", ErrInvalid, name, r.nFFN)
			}
			return l, nil
		}
		return i, nil
	}
	switch {
	case name == "output.weight" || (!r.m.hasOutput && name == "token_embd.weight"):
		if arch == "falcon" || nx%blockElems(t) != 0 {
			t = gguf.TensorQ8_0
		} else if t != gguf.TensorQ8_0 {
			t = gguf.TensorQ6_K
		}
	case name == "token_embd.weight":
		// No rule for these mixes.
	case strings.Contains(name, "attn_v.weight"):
		if (ft == Q4_K_M || ft == Q5_K_M) && useMoreBits(r.iAttnV, r.nAttnV) {
			t = gguf.TensorQ6_K
		} else if ft == Q4_K_S && r.iAttnV < 4 {
			t = gguf.TensorQ5_K
		}
		if r.m.is70B() && (t == gguf.TensorQ3_K || t == gguf.TensorQ4_K) {
			t = gguf.TensorQ5_K
		}
		if r.m.experts == 8 {
			t = gguf.TensorQ8_0
		}
		r.iAttnV++
	case strings.Contains(name, "attn_k.weight"):
		if r.m.experts == 8 {
			t = gguf.TensorQ8_0
		}
	case strings.Contains(name, "attn_q.weight"):
		// No rule for these mixes.
	case strings.Contains(name, "ffn_down"):
		i, err := layer(r.iFFN)
		if err != nil {
			return 0, "", err
		}
		n := r.nFFN
		switch {
		case ft == Q4_K_M:
			if arch == "falcon" {
				if i < n/16 {
					t = gguf.TensorQ6_K
				} else if useMoreBits(i, n) {
					t = gguf.TensorQ5_K
				} else {
					t = gguf.TensorQ4_K
				}
			} else if useMoreBits(i, n) {
				t = gguf.TensorQ6_K
			}
		case ft == Q5_K_M && useMoreBits(i, n):
			t = gguf.TensorQ6_K
		case ft == Q4_K_S && arch != "falcon" && i < n/8:
			t = gguf.TensorQ5_K
		}
		r.iFFN++
	case strings.Contains(name, "attn_output.weight"):
		if arch != "falcon" && r.m.experts == 8 && (ft == Q4_K_S || ft == Q4_K_M) {
			t = gguf.TensorQ5_K
		}
	case strings.Contains(name, "attn_qkv.weight"):
		if ft == Q4_K_M {
			t = gguf.TensorQ5_K
		} else if ft == Q5_K_M {
			t = gguf.TensorQ6_K
		}
	case strings.Contains(name, "ffn_gate"), strings.Contains(name, "ffn_up"):
		if _, err := layer(0); err != nil {
			return 0, "", err
		}
		// llama.cpp only counts these (for the IQ3_XS mix).
	}
	if nx%blockElems(t) == 0 {
		r.nKQuant++
		return t, "", nil
	}
	var fb gguf.TensorType
	note := ""
	switch t {
	case gguf.TensorQ4_K:
		fb = gguf.TensorQ5_0
	case gguf.TensorQ5_K:
		fb = gguf.TensorQ5_1
	case gguf.TensorQ6_K:
		fb = gguf.TensorQ8_0
	default:
		return 0, "", fmt.Errorf("%w: tensor %q: row length %d is not a multiple of the %s block size %d (llama.cpp refuses it too)",
			ErrUnsupported, name, nx, t, blockElems(t))
	}
	if nx%blockElems(fb) != 0 {
		fb, note = gguf.TensorF16, ""
	}
	msg := fmt.Sprintf("row length %d is not a multiple of %d: %s instead of %s", nx, blockElems(t), fb, t)
	if note != "" {
		msg += " (" + note + ")"
	}
	r.nFall++
	return fb, msg, nil
}
