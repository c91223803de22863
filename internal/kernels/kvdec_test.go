package kernels

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"testing"

	"github.com/ragkv/ragkv/internal/cpu"
)

// kvdParams returns n random scales and minima with f16 values (as the blob stores them).
func kvdParams(rng *rand.Rand, n int) (s, m []float32) {
	s, m = make([]float32, n), make([]float32, n)
	for i := range s {
		s[i] = F16ToF32(F32ToF16(float32(rng.ExpFloat64() * 0.05)))
		m[i] = F16ToF32(F32ToF16(float32(rng.NormFloat64())))
	}
	return s, m
}

// kvdPairs returns ng random (scale, min) pairs with f16 values.
func kvdPairs(rng *rand.Rand, ng int) []float32 {
	s, m := kvdParams(rng, ng)
	sm := make([]float32, 2*ng)
	for j := range ng {
		sm[2*j], sm[2*j+1] = s[j], m[j]
	}
	return sm
}

func kvdCodes(rng *rand.Rand, n, bits int) []byte {
	q := make([]byte, (n*bits+7)/8)
	for i := range q {
		q[i] = byte(rng.Uint32())
	}
	return q
}

// TestDequantKnown: the reference decodes hand-packed codes (LSB first) to the values
// worked out by hand.
func TestDequantKnown(t *testing.T) {
	out := make([]float32, 4)
	s := []float32{1, 2, 0.5, 1}
	m := []float32{0, 10, -1, 0.25}
	kvdRowRef(out, []byte{0x21, 0xf3}, 4, s, m) // codes 1, 2, 3, 15
	if want := []float32{1, 14, 0.5, 15.25}; fmt.Sprint(out) != fmt.Sprint(want) {
		t.Fatalf("q4 reference: %v want %v", out, want)
	}
	kvdRowRef(out, []byte{0b11100100}, 2, s, m) // codes 0, 1, 2, 3
	if want := []float32{0, 12, 0, 3.25}; fmt.Sprint(out) != fmt.Sprint(want) {
		t.Fatalf("q2 reference: %v want %v", out, want)
	}
	g := make([]float32, 4)
	kvdGroupsRef(g, []byte{7, 0, 255, 1}, 8, 2, []float32{1, -1, 0.5, 2})
	if want := []float32{6, -1, 129.5, 2.5}; fmt.Sprint(g) != fmt.Sprint(want) {
		t.Fatalf("q8 groups reference: %v want %v", g, want)
	}
	if err := DequantRow(out, []byte{0, 0}, 3, s, m); !errors.Is(err, ErrKVBits) {
		t.Fatalf("3-bit codes: %v, want ErrKVBits", err)
	}
	if err := DequantGroups(g, []byte{0, 0}, 5, 2, s[:2]); !errors.Is(err, ErrKVBits) {
		t.Fatalf("5-bit codes: %v, want ErrKVBits", err)
	}
}

// TestDequantPaths: DequantRow and DequantGroups on every path give the reference's bits
// for every code width, lengths on and off the kernels' 16-value step, and write nothing
// past their output.
func TestDequantPaths(t *testing.T) { forEachPath(t, testDequantPaths) }

func testDequantPaths(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 14))
	lens := []int{1, 7, 8, 15, 16, 17, 32, 48, 64, 100, 192, 1000}
	groups := []int{1, 5, 8, 16, 24, 32, 48, 64, 128}
	if testing.Short() {
		lens = []int{1, 8, 17, 32, 192}
		groups = []int{5, 8, 16, 32}
	}
	const guard = 16
	check := func(what string, got, want []float32, n int) {
		t.Helper()
		for i := range n {
			if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
				t.Fatalf("%s: value %d = %g, reference %g", what, i, got[i], want[i])
			}
		}
		for i := n; i < n+guard; i++ {
			if !math.IsNaN(float64(got[i])) {
				t.Fatalf("%s: wrote value %d past the output", what, i)
			}
		}
	}
	fresh := func(n int) []float32 {
		o := make([]float32, n+guard)
		for i := range o {
			o[i] = float32(math.NaN())
		}
		return o
	}
	for _, bits := range []int{2, 4, 8} {
		for _, n := range lens {
			q := kvdCodes(rng, n, bits)
			s, m := kvdParams(rng, n)
			want := make([]float32, n)
			kvdRowRef(want, q, bits, s, m)
			got := fresh(n)
			if err := DequantRow(got[:n], q, bits, s, m); err != nil {
				t.Fatal(err)
			}
			check(fmt.Sprintf("row bits=%d n=%d", bits, n), got, want, n)
		}
		for _, g := range groups {
			for _, ng := range []int{1, 3, 6} {
				n := ng * g
				q := kvdCodes(rng, n, bits)
				sm := kvdPairs(rng, ng)
				want := make([]float32, n)
				kvdGroupsRef(want, q, bits, g, sm)
				got := fresh(n)
				if err := DequantGroups(got[:n], q, bits, g, sm); err != nil {
					t.Fatal(err)
				}
				check(fmt.Sprintf("groups bits=%d g=%d ng=%d", bits, g, ng), got, want, n)
			}
		}
	}
}

// TestDequantNoAllocs: the KV-decode kernels allocate nothing, on every path.
func TestDequantNoAllocs(t *testing.T) {
	forEachPath(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(1, 2))
		const n = 192
		q := kvdCodes(rng, n, 4)
		s, m := kvdParams(rng, n)
		out := make([]float32, n)
		if a := testing.AllocsPerRun(20, func() {
			_ = DequantRow(out, q, 4, s, m)
			_ = DequantGroups(out, q, 4, 32, s[:12])
			DecodeF16(out[:n/4], q[:2*n/4])
		}); a != 0 {
			t.Fatalf("%v allocations per call", a)
		}
	})
}

// BenchmarkDequant decodes one layer of a 512-token chunk in smollm-135m's shape (3 KV
// heads × 64 = 192 channels): K per channel (DequantRow per token row) and V per token
// (DequantGroups, groups of 32), on every path this CPU runs. b.SetBytes counts the
// float32 output (K and V).
func BenchmarkDequant(b *testing.B) {
	const tokens, C, G = 512, 192, 32
	saved := cpu.Active()
	defer cpu.Set(saved)
	rng := rand.New(rand.NewPCG(5, 6))
	for _, bits := range []int{4, 2, 8} {
		kq, vq := kvdCodes(rng, tokens*C, bits), kvdCodes(rng, tokens*C, bits)
		ks, km := kvdParams(rng, C)
		vsm := kvdPairs(rng, tokens*C/G)
		k, v := make([]float32, tokens*C), make([]float32, tokens*C)
		for _, p := range []cpu.Path{cpu.AVX512, cpu.AVX2, cpu.NEON, cpu.Generic} {
			if !cpu.Supports(p) {
				continue
			}
			b.Run(fmt.Sprintf("q%d/%v", bits, p), func(b *testing.B) {
				if err := cpu.Set(p); err != nil {
					b.Skip(err)
				}
				b.SetBytes(int64(8 * tokens * C))
				rb := C * bits / 8
				for b.Loop() {
					for r := range tokens {
						_ = DequantRow(k[r*C:(r+1)*C], kq[r*rb:], bits, ks, km)
					}
					_ = DequantGroups(v, vq, bits, G, vsm)
				}
			})
		}
	}
}

// TestAsmKVDecGenerated: kvdec_amd64.s and kvdec_arm64.s are what asm_gen_kvdec.go writes.
func TestAsmKVDecGenerated(t *testing.T) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command to run the generator")
	}
	for _, arch := range []string{"amd64", "arm64"} {
		got, err := exec.Command(gobin, "run", "asm_gen_kvdec.go", arch).Output()
		if err != nil {
			t.Fatalf("go run asm_gen_kvdec.go %s: %v", arch, err)
		}
		want, err := os.ReadFile("kvdec_" + arch + ".s")
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("kvdec_%s.s differs from the output of asm_gen_kvdec.go: run go generate ./internal/kernels", arch)
		}
	}
}

// TestDecodeF16Paths: DecodeF16 on every path gives F16ToF32's bits for all 65536 f16
// values (NaNs, infinities, subnormals, signed zeros) at lengths on and off the kernels'
// 16-value step, and writes nothing past its output.
func TestDecodeF16Paths(t *testing.T) {
	src := make([]byte, 2<<16)
	for h := range 1 << 16 {
		src[2*h], src[2*h+1] = byte(h), byte(h>>8)
	}
	forEachPath(t, func(t *testing.T) {
		for _, n := range []int{1 << 16, 1, 15, 16, 33, 1000} {
			off := (1 << 16) - n // the last n values: the NaNs are at the top
			dst := make([]float32, n+1)
			dst[n] = 42
			DecodeF16(dst[:n], src[2*off:])
			for i := range n {
				if want := F16ToF32(uint16(off + i)); math.Float32bits(dst[i]) != math.Float32bits(want) {
					t.Fatalf("n=%d: f16 %#04x -> %#08x, F16ToF32 %#08x", n, off+i, math.Float32bits(dst[i]), math.Float32bits(want))
				}
			}
			if dst[n] != 42 {
				t.Fatalf("n=%d: wrote past the output", n)
			}
		}
	})
}

// BenchmarkDecodeF16 converts one 512-token layer's K and V in smollm-135m's shape from
// f16 (b.SetBytes: the float32 output), on every path this CPU runs.
func BenchmarkDecodeF16(b *testing.B) {
	const n = 2 * 512 * 192
	saved := cpu.Active()
	defer cpu.Set(saved)
	src := kvdCodes(rand.New(rand.NewPCG(1, 1)), n, 16)
	for i := 1; i < len(src); i += 2 {
		src[i] &= 0x3b // finite values
	}
	dst := make([]float32, n)
	for _, p := range []cpu.Path{cpu.AVX512, cpu.AVX2, cpu.NEON, cpu.Generic} {
		if !cpu.Supports(p) {
			continue
		}
		b.Run(p.String(), func(b *testing.B) {
			if err := cpu.Set(p); err != nil {
				b.Skip(err)
			}
			b.SetBytes(4 * n)
			for b.Loop() {
				DecodeF16(dst, src)
			}
		})
	}
}
