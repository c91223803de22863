//go:build ignore

// asm_gen_arm64 writes kernels_arm64.s: the arm64 Advanced SIMD (NEON) kernels of package
// kernels (float and int8 GEMM micro-kernels, matrix-vector kernels, vector helpers).
//
//	go run asm_gen_arm64.go > kernels_arm64.s
//	go run asm_gen_arm64.go -verify   # check every WORD against GNU as (aarch64-linux-gnu-as)
//
// Go's arm64 assembler has loads, stores and integer instructions but few vector
// arithmetic ones (no vector FMUL/FADD, no by-element FMLA, no SDOT, SCVTF, FCVTL,
// SMULL, SADALP, ...). Those are encoded here as WORDs (from the Arm Architecture
// Reference Manual, A64 "Advanced SIMD" encodings), each with its mnemonic as a comment;
// -verify assembles the mnemonics with GNU as and compares the words.
package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

var b strings.Builder

func p(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }

// ins is one encoded instruction and its GNU-syntax mnemonic.
type ins struct {
	w   uint32
	gnu string
}

var emitted []ins

func emit(i ins) {
	emitted = append(emitted, i)
	p("\tWORD $0x%08x // %s", i.w, i.gnu)
}

func reg3(base uint32, d, n, m int) uint32 {
	return base | uint32(m)<<16 | uint32(n)<<5 | uint32(d)
}

// byElem places a 5-bit register m and a 2-bit index (H:L) in the by-element form.
func byElem(base uint32, d, n, m, idx int) uint32 {
	return base | uint32(idx&1)<<21 | uint32(m>>4)<<20 | uint32(m&15)<<16 | uint32(idx>>1)<<11 | uint32(n)<<5 | uint32(d)
}

func fmla(d, n, m int) ins {
	return ins{reg3(0x4e20cc00, d, n, m), fmt.Sprintf("fmla v%d.4s, v%d.4s, v%d.4s", d, n, m)}
}
func fmlaE(d, n, m, idx int) ins {
	return ins{byElem(0x4f801000, d, n, m, idx), fmt.Sprintf("fmla v%d.4s, v%d.4s, v%d.s[%d]", d, n, m, idx)}
}
func fmul(d, n, m int) ins {
	return ins{reg3(0x6e20dc00, d, n, m), fmt.Sprintf("fmul v%d.4s, v%d.4s, v%d.4s", d, n, m)}
}
func fadd(d, n, m int) ins {
	return ins{reg3(0x4e20d400, d, n, m), fmt.Sprintf("fadd v%d.4s, v%d.4s, v%d.4s", d, n, m)}
}
func faddp(d, n, m int) ins {
	return ins{reg3(0x6e20d400, d, n, m), fmt.Sprintf("faddp v%d.4s, v%d.4s, v%d.4s", d, n, m)}
}
func faddpS(d, n int) ins { // faddp Sd, Vn.2S
	return ins{reg3(0x7e30d800, d, n, 0), fmt.Sprintf("faddp s%d, v%d.2s", d, n)}
}
func scvtf(d, n int) ins {
	return ins{reg3(0x4e21d800, d, n, 0), fmt.Sprintf("scvtf v%d.4s, v%d.4s", d, n)}
}
func fcvtl(d, n int) ins {
	return ins{reg3(0x0e217800, d, n, 0), fmt.Sprintf("fcvtl v%d.4s, v%d.4h", d, n)}
}
func fcvtl2(d, n int) ins {
	return ins{reg3(0x4e217800, d, n, 0), fmt.Sprintf("fcvtl2 v%d.4s, v%d.8h", d, n)}
}
func sdot(d, n, m int) ins {
	return ins{reg3(0x4e809400, d, n, m), fmt.Sprintf("sdot v%d.4s, v%d.16b, v%d.16b", d, n, m)}
}
func sdotE(d, n, m, idx int) ins {
	return ins{byElem(0x4f80e000, d, n, m, idx), fmt.Sprintf("sdot v%d.4s, v%d.16b, v%d.4b[%d]", d, n, m, idx)}
}
func addp(d, n, m int) ins {
	return ins{reg3(0x4ea0bc00, d, n, m), fmt.Sprintf("addp v%d.4s, v%d.4s, v%d.4s", d, n, m)}
}
func smull(d, n, m int) ins {
	return ins{reg3(0x0e20c000, d, n, m), fmt.Sprintf("smull v%d.8h, v%d.8b, v%d.8b", d, n, m)}
}
func smlal2(d, n, m int) ins {
	return ins{reg3(0x4e208000, d, n, m), fmt.Sprintf("smlal2 v%d.8h, v%d.16b, v%d.16b", d, n, m)}
}
func sadalp(d, n int) ins {
	return ins{reg3(0x4e606800, d, n, 0), fmt.Sprintf("sadalp v%d.4s, v%d.8h", d, n)}
}
func zip1h(d, n, m int) ins {
	return ins{reg3(0x4e403800, d, n, m), fmt.Sprintf("zip1 v%d.8h, v%d.8h, v%d.8h", d, n, m)}
}
func zip2h(d, n, m int) ins {
	return ins{reg3(0x4e407800, d, n, m), fmt.Sprintf("zip2 v%d.8h, v%d.8h, v%d.8h", d, n, m)}
}
func dupS(d, n, idx int) ins { // dup Vd.4S, Vn.S[idx]
	imm5 := uint32(idx)<<3 | 4
	return ins{0x4e000400 | imm5<<16 | uint32(n)<<5 | uint32(d), fmt.Sprintf("dup v%d.4s, v%d.s[%d]", d, n, idx)}
}
func insH(d, idx, wn int) ins { // ins Vd.H[idx], Wn
	imm5 := uint32(idx)<<2 | 2
	return ins{0x4e001c00 | imm5<<16 | uint32(wn)<<5 | uint32(d), fmt.Sprintf("mov v%d.h[%d], w%d", d, idx, wn)}
}
func movi16b(d int, imm uint8) ins {
	w := 0x4f00e400 | uint32(imm>>5)<<16 | uint32(imm&31)<<5 | uint32(d)
	return ins{w, fmt.Sprintf("movi v%d.16b, #%d", d, imm)}
}
func and16b(d, n, m int) ins {
	return ins{reg3(0x4e201c00, d, n, m), fmt.Sprintf("and v%d.16b, v%d.16b, v%d.16b", d, n, m)}
}
func sub16b(d, n, m int) ins {
	return ins{reg3(0x6e208400, d, n, m), fmt.Sprintf("sub v%d.16b, v%d.16b, v%d.16b", d, n, m)}
}
func ushr16b(d, n, sh int) ins {
	return ins{0x6f000400 | uint32(16-sh)<<16 | uint32(n)<<5 | uint32(d), fmt.Sprintf("ushr v%d.16b, v%d.16b, #%d", d, n, sh)}
}
func orr16b(d, n, m int) ins {
	return ins{reg3(0x4ea01c00, d, n, m), fmt.Sprintf("orr v%d.16b, v%d.16b, v%d.16b", d, n, m)}
}
func shl16b(d, n, sh int) ins {
	return ins{0x4f005400 | uint32(8+sh)<<16 | uint32(n)<<5 | uint32(d), fmt.Sprintf("shl v%d.16b, v%d.16b, #%d", d, n, sh)}
}
func zero(v int) { p("\tVEOR V%d.B16, V%d.B16, V%d.B16", v, v, v) }

func main() {
	verify := len(os.Args) > 1 && os.Args[1] == "-verify"
	p("// Code generated by asm_gen_arm64.go; DO NOT EDIT.")
	p("")
	p("//go:build arm64 && !purego")
	p("")
	p("#include \"textflag.h\"")
	gemmF32()
	gemmQ8()
	for _, t := range []string{"F32", "F16", "BF16"} {
		matvecFloat(t)
	}
	for _, q4 := range []bool{false, true} {
		for _, dp := range []bool{true, false} {
			matvecQ(q4, dp)
		}
	}
	for _, t := range []string{"Q4K", "Q5K", "Q6K"} {
		for _, dp := range []bool{true, false} {
			kdot(t, dp)
		}
	}
	dot()
	axpy()
	scale()
	axpyRows()
	if verify {
		if err := check(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Fprintf(os.Stderr, "%d encoded instructions match GNU as\n", len(emitted))
		return
	}
	os.Stdout.WriteString(b.String())
}

// check assembles every distinct encoded mnemonic with GNU as and compares the words.
func check() error {
	as, err := exec.LookPath("aarch64-linux-gnu-as")
	if err != nil {
		return fmt.Errorf("no aarch64-linux-gnu-as: %w", err)
	}
	dir, err := os.MkdirTemp("", "asmgen")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	seen := map[string]uint32{}
	var src bytes.Buffer
	var order []string
	for _, i := range emitted {
		if w, ok := seen[i.gnu]; ok {
			if w != i.w {
				return fmt.Errorf("%s encoded two ways", i.gnu)
			}
			continue
		}
		seen[i.gnu] = i.w
		order = append(order, i.gnu)
		src.WriteString(i.gnu + "\n")
	}
	s, o := filepath.Join(dir, "t.s"), filepath.Join(dir, "t.o")
	if err := os.WriteFile(s, src.Bytes(), 0o644); err != nil {
		return err
	}
	if out, err := exec.Command(as, "-march=armv8.2-a+dotprod+fp16", s, "-o", o).CombinedOutput(); err != nil {
		return fmt.Errorf("as: %v\n%s", err, out)
	}
	dump, err := exec.Command("aarch64-linux-gnu-objdump", "-d", o).Output()
	if err != nil {
		return fmt.Errorf("objdump: %w", err)
	}
	re := regexp.MustCompile(`(?m)^\s+[0-9a-f]+:\s+([0-9a-f]{8})\s`)
	ms := re.FindAllStringSubmatch(string(dump), -1)
	if len(ms) != len(order) {
		return fmt.Errorf("objdump shows %d instructions, want %d", len(ms), len(order))
	}
	for k, m := range ms {
		w, _ := strconv.ParseUint(m[1], 16, 32)
		if uint32(w) != seen[order[k]] {
			return fmt.Errorf("%s: encoded %#08x, GNU as %#08x", order[k], seen[order[k]], w)
		}
	}
	return nil
}

// gemmF32 writes gemmF32NEON(kc int, a, b, c *float32, ldc int, accum bool):
// c[j*ldc + r] (+)= Σ_k a[k*32 + r]·b[k*12 + j] for r < 32, j < 12; kc ≥ 1. The 32×12
// tile is four passes over the inner dimension, each 8 rows × 12 tokens: accumulators
// V8..V31 (token j, rows 8q..8q+3 / 8q+4..8q+7 in V(8+2j), V(9+2j)), W rows in V0, V1, the
// 12 tokens' values in V2..V4, multiplied by element (FMLA Vd.4S, Vn.4S, Vm.S[i]).
func gemmF32() {
	p("")
	p("// func gemmF32NEON(kc int, a, b, c *float32, ldc int, accum bool)")
	p("TEXT ·gemmF32NEON(SB), NOSPLIT, $0-41")
	p("\tMOVD kc+0(FP), R0")
	p("\tMOVD a+8(FP), R1")
	p("\tMOVD b+16(FP), R2")
	p("\tMOVD c+24(FP), R3")
	p("\tMOVD ldc+32(FP), R4")
	p("\tLSL $2, R4, R4")
	p("\tMOVBU accum+40(FP), R5")
	for q := 0; q < 4; q++ {
		p("\tADD $%d, R1, R7", 32*q)
		p("\tMOVD R2, R8")
		p("\tMOVD R0, R6")
		for v := 8; v < 32; v++ {
			zero(v)
		}
		p("f32k%d:", q)
		p("\tVLD1 (R7), [V0.S4, V1.S4]")
		p("\tADD $128, R7, R7")
		p("\tVLD1.P 48(R8), [V2.S4, V3.S4, V4.S4]")
		for j := 0; j < 12; j++ {
			emit(fmlaE(8+2*j, 0, 2+j/4, j%4))
			emit(fmlaE(9+2*j, 1, 2+j/4, j%4))
		}
		p("\tSUBS $1, R6, R6")
		p("\tBNE f32k%d", q)
		p("\tADD $%d, R3, R9", 32*q)
		p("\tCBZ R5, f32st%d", q)
		for j := 0; j < 12; j++ {
			p("\tVLD1 (R9), [V0.S4, V1.S4]")
			emit(fadd(8+2*j, 8+2*j, 0))
			emit(fadd(9+2*j, 9+2*j, 1))
			p("\tVST1 [V%d.S4, V%d.S4], (R9)", 8+2*j, 9+2*j)
			p("\tADD R4, R9, R9")
		}
		p("\tB f32done%d", q)
		p("f32st%d:", q)
		for j := 0; j < 12; j++ {
			p("\tVST1 [V%d.S4, V%d.S4], (R9)", 8+2*j, 9+2*j)
			p("\tADD R4, R9, R9")
		}
		p("f32done%d:", q)
	}
	p("\tRET")
}

// gemmQ8 writes gemmQ8NEON(nsub, steps int, a, b *byte, c *float32, ldc int, accum bool):
// the int8 micro-kernel over the packed panels of qgemm.go (16 rows × 12 tokens, nsub
// sub-blocks of 4·steps elements) with SDOT, for W panels whose bytes hold u−128 as int8
// and whose offsets were raised by 128·scale to match (signW in qgemm.go):
// c[j*ldc + r] (+)= Σ_sub scale_r·dx_j·Σ((u−128)·q) + offset_r·sx_j.
// Four passes (rows 8h.., tokens 6t..): int sums V8..V19 (token j, row group g in
// V(8+2j+g)), float sums V20..V31 likewise; W bytes V0, V1; X bytes V2, V3 (loaded from
// token 4t, so token 6t+j is element j+2t: every load stays inside its 48-byte step).
func gemmQ8() {
	p("")
	p("// func gemmQ8NEON(nsub, steps int, a, b *byte, c *float32, ldc int, accum bool)")
	p("TEXT ·gemmQ8NEON(SB), NOSPLIT, $0-49")
	p("\tMOVD nsub+0(FP), R0")
	p("\tMOVD steps+8(FP), R1")
	p("\tMOVD a+16(FP), R2")
	p("\tMOVD b+24(FP), R3")
	p("\tMOVD c+32(FP), R4")
	p("\tMOVD ldc+40(FP), R5")
	p("\tLSL $2, R5, R5")
	p("\tMOVBU accum+48(FP), R6")
	p("\tLSL $6, R1, R7") // W sub-block bytes: steps·64 + 128
	p("\tADD $128, R7, R7")
	p("\tMOVD $48, R8") // X sub-block bytes: steps·48 + 96
	p("\tMUL R1, R8, R8")
	p("\tADD $96, R8, R8")
	for h := 0; h < 2; h++ {
		for t := 0; t < 2; t++ {
			id := fmt.Sprintf("%d%d", h, t)
			for v := 20; v < 32; v++ {
				zero(v)
			}
			p("\tMOVD R2, R10")
			p("\tMOVD R3, R11")
			p("\tMOVD R0, R12")
			p("q8sub%s:", id)
			for v := 8; v < 20; v++ {
				zero(v)
			}
			p("\tADD $%d, R10, R13", 32*h)
			p("\tADD $%d, R11, R14", 16*t)
			p("\tMOVD R1, R15")
			p("q8step%s:", id)
			p("\tVLD1 (R13), [V0.B16, V1.B16]")
			p("\tADD $64, R13, R13")
			p("\tVLD1 (R14), [V2.B16, V3.B16]")
			p("\tADD $48, R14, R14")
			for j := 0; j < 6; j++ {
				e := j + 2*t
				for g := 0; g < 2; g++ {
					emit(sdotE(8+2*j+g, g, 2+e/4, e%4))
				}
			}
			p("\tSUBS $1, R15, R15")
			p("\tBNE q8step%s", id)
			// R13 = scales of rows 8h.. (offsets 64 bytes on); R14 = dx from token 4t
			// (sx 48 bytes on).
			p("\tVLD1 (R13), [V4.S4, V5.S4]")
			p("\tADD $64, R13, R13")
			p("\tVLD1 (R13), [V6.S4, V7.S4]")
			p("\tVLD1 (R14), [V2.S4, V3.S4]")
			p("\tADD $48, R14, R14")
			p("\tVLD1 (R14), [V0.S4, V1.S4]")
			for j := 0; j < 6; j++ {
				e := j + 2*t
				for g := 0; g < 2; g++ {
					i := 8 + 2*j + g
					emit(scvtf(i, i))
					emit(fmul(i, i, 4+g))
					emit(fmlaE(12+i, i, 2+e/4, e%4))
					emit(fmlaE(12+i, 6+g, e/4, e%4))
				}
			}
			p("\tADD R7, R10, R10")
			p("\tADD R8, R11, R11")
			p("\tSUBS $1, R12, R12")
			p("\tBNE q8sub%s", id)
			// Store tokens 6t..6t+5, rows 8h..8h+7.
			p("\tMOVD $%d, R13", 6*t)
			p("\tMUL R5, R13, R13")
			p("\tADD R4, R13, R13")
			p("\tADD $%d, R13, R13", 32*h)
			p("\tCBZ R6, q8st%s", id)
			for j := 0; j < 6; j++ {
				p("\tVLD1 (R13), [V0.S4, V1.S4]")
				emit(fadd(20+2*j, 20+2*j, 0))
				emit(fadd(21+2*j, 21+2*j, 1))
				p("\tVST1 [V%d.S4, V%d.S4], (R13)", 20+2*j, 21+2*j)
				p("\tADD R5, R13, R13")
			}
			p("\tB q8done%s", id)
			p("q8st%s:", id)
			for j := 0; j < 6; j++ {
				p("\tVST1 [V%d.S4, V%d.S4], (R13)", 20+2*j, 21+2*j)
				p("\tADD R5, R13, R13")
			}
			p("q8done%s:", id)
		}
	}
	p("\tRET")
}

// hsum4 leaves in V26 the horizontal sums of the row accumulators V16, V18, V20, V22
// (after folding V17, V19, V21, V23 into them): [row0, row1, row2, row3].
func hsum4() {
	for r := 0; r < 4; r++ {
		emit(fadd(16+2*r, 16+2*r, 17+2*r))
	}
	emit(faddp(24, 16, 18))
	emit(faddp(25, 20, 22))
	emit(faddp(26, 24, 25))
}

// matvecFloat writes matvec<T>x4NEON(k int, w unsafe.Pointer, ldw int, x, out *float32):
// out[i] = Σ_c W_i[c]·x[c] for the four rows W_i = w + i·ldw bytes of type T, over k
// columns (k a multiple of 8; the caller adds the rest). Per 8 columns: x in V0, V1; row
// i's values in V(2+2i), V(3+2i); accumulators V16..V23.
func matvecFloat(t string) {
	p("")
	p("// func matvec%sx4NEON(k int, w unsafe.Pointer, ldw int, x *float32, out *float32)", t)
	p("TEXT ·matvec%sx4NEON(SB), NOSPLIT, $0-40", t)
	p("\tMOVD k+0(FP), R0")
	p("\tMOVD w+8(FP), R1")
	p("\tMOVD ldw+16(FP), R2")
	p("\tMOVD x+24(FP), R3")
	p("\tMOVD out+32(FP), R4")
	p("\tADD R2, R1, R5")
	p("\tADD R2, R5, R6")
	p("\tADD R2, R6, R7")
	for v := 16; v < 24; v++ {
		zero(v)
	}
	zero(31)
	p("\tLSR $3, R0, R0")
	p("\tCBZ R0, mv%sdone", t)
	p("mv%sloop:", t)
	p("\tVLD1.P 32(R3), [V0.S4, V1.S4]")
	rows := []string{"R1", "R5", "R6", "R7"}
	for i, r := range rows {
		lo, hi := 2+2*i, 3+2*i
		switch t {
		case "F32":
			p("\tVLD1.P 32(%s), [V%d.S4, V%d.S4]", r, lo, hi)
		case "F16":
			p("\tVLD1.P 16(%s), [V%d.H8]", r, hi)
			emit(fcvtl(lo, hi))
			emit(fcvtl2(hi, hi))
		case "BF16":
			p("\tVLD1.P 16(%s), [V%d.H8]", r, hi)
			emit(zip1h(lo, 31, hi))
			emit(zip2h(hi, 31, hi))
		}
	}
	for i := range rows {
		emit(fmla(16+2*i, 2+2*i, 0))
		emit(fmla(17+2*i, 3+2*i, 1))
	}
	p("\tSUBS $1, R0, R0")
	p("\tBNE mv%sloop", t)
	p("mv%sdone:", t)
	hsum4()
	p("\tVST1 [V26.S4], (R4)")
	p("\tRET")
}

// matvecQ writes matvecQ8_0x4NEON / matvecQ4_0x4NEON (dp: with SDOT) and their ...nd
// variants (SMULL/SMLAL2/SADALP, for CPUs without dotprod): four rows of nblk q8_0 or
// q4_0 blocks (row i at w + i·ldw) dotted with activations quantized per 32-block (xq:
// int8, xd: the scales): out[i] = Σ_b d_ib·xd_b·Σ q_w·q_x.
func matvecQ(q4, dp bool) {
	name := "Q8_0"
	if q4 {
		name = "Q4_0"
	}
	if !dp {
		name += "x4NEONnd"
	} else {
		name += "x4NEON"
	}
	p("")
	p("// func matvec%s(nblk int, w unsafe.Pointer, ldw int, xq unsafe.Pointer, xd *float32, out *float32)", name)
	p("TEXT ·matvec%s(SB), NOSPLIT, $0-48", name)
	p("\tMOVD nblk+0(FP), R0")
	p("\tMOVD w+8(FP), R1")
	p("\tMOVD ldw+16(FP), R2")
	p("\tMOVD xq+24(FP), R3")
	p("\tMOVD xd+32(FP), R4")
	p("\tMOVD out+40(FP), R5")
	p("\tADD R2, R1, R6")
	p("\tADD R2, R6, R7")
	p("\tADD R2, R7, R8")
	zero(24)
	if q4 {
		emit(movi16b(28, 0x0f))
		emit(movi16b(29, 8))
	}
	p("\tCBZ R0, mq%sdone", name)
	p("mq%sloop:", name)
	p("\tVLD1.P 32(R3), [V0.B16, V1.B16]")
	p("\tVLD1R (R4), [V30.S4]")
	p("\tADD $4, R4, R4")
	rows := []string{"R1", "R6", "R7", "R8"}
	for i, r := range rows {
		p("\tMOVHU.P 2(%s), R%d", r, 10+i)
		lo, hi := 2+2*i, 3+2*i
		if q4 {
			p("\tVLD1.P 16(%s), [V%d.B16]", r, lo)
			emit(ushr16b(hi, lo, 4))
			emit(and16b(lo, lo, 28))
			emit(sub16b(lo, lo, 29))
			emit(sub16b(hi, hi, 29))
		} else {
			p("\tVLD1.P 32(%s), [V%d.B16, V%d.B16]", r, lo, hi)
		}
	}
	for i := range rows {
		zero(16 + i)
	}
	for i := range rows {
		lo, hi := 2+2*i, 3+2*i
		if dp {
			emit(sdot(16+i, lo, 0))
			emit(sdot(16+i, hi, 1))
			continue
		}
		emit(smull(20, lo, 0))
		emit(smlal2(20, lo, 0))
		emit(sadalp(16+i, 20))
		emit(smull(21, hi, 1))
		emit(smlal2(21, hi, 1))
		emit(sadalp(16+i, 21))
	}
	emit(addp(20, 16, 17))
	emit(addp(21, 18, 19))
	emit(addp(22, 20, 21))
	emit(scvtf(22, 22))
	for i := range rows {
		emit(insH(23, i, 10+i))
	}
	emit(fcvtl(23, 23))
	emit(fmul(23, 23, 30))
	emit(fmla(24, 22, 23))
	p("\tSUBS $1, R0, R0")
	p("\tBNE mq%sloop", name)
	p("mq%sdone:", name)
	p("\tVST1 [V24.S4], (R5)")
	p("\tRET")
}

// dot writes dotNEON(n int, a, b *float32) float32 for n a multiple of 16.
func dot() {
	p("")
	p("// func dotNEON(n int, a, b *float32) float32")
	p("TEXT ·dotNEON(SB), NOSPLIT, $0-28")
	p("\tMOVD n+0(FP), R0")
	p("\tMOVD a+8(FP), R1")
	p("\tMOVD b+16(FP), R2")
	for v := 16; v < 20; v++ {
		zero(v)
	}
	p("\tLSR $4, R0, R0")
	p("\tCBZ R0, dotdone")
	p("dotloop:")
	p("\tVLD1.P 64(R1), [V0.S4, V1.S4, V2.S4, V3.S4]")
	p("\tVLD1.P 64(R2), [V4.S4, V5.S4, V6.S4, V7.S4]")
	for i := 0; i < 4; i++ {
		emit(fmla(16+i, i, 4+i))
	}
	p("\tSUBS $1, R0, R0")
	p("\tBNE dotloop")
	p("dotdone:")
	emit(fadd(16, 16, 17))
	emit(fadd(18, 18, 19))
	emit(fadd(16, 16, 18))
	emit(faddp(16, 16, 16))
	emit(faddpS(0, 16))
	p("\tFMOVS F0, ret+24(FP)")
	p("\tRET")
}

// axpy writes axpyNEON(n int, a float32, x, y *float32): y += a·x for n a multiple of 16.
func axpy() {
	p("")
	p("// func axpyNEON(n int, a float32, x, y *float32)")
	p("TEXT ·axpyNEON(SB), NOSPLIT, $0-32")
	p("\tMOVD n+0(FP), R0")
	p("\tFMOVS a+8(FP), F0")
	p("\tMOVD x+16(FP), R1")
	p("\tMOVD y+24(FP), R2")
	emit(dupS(0, 0, 0))
	p("\tLSR $4, R0, R0")
	p("\tCBZ R0, axpydone")
	p("axpyloop:")
	p("\tVLD1.P 64(R1), [V4.S4, V5.S4, V6.S4, V7.S4]")
	p("\tVLD1 (R2), [V16.S4, V17.S4, V18.S4, V19.S4]")
	for i := 0; i < 4; i++ {
		emit(fmla(16+i, 4+i, 0))
	}
	p("\tVST1.P [V16.S4, V17.S4, V18.S4, V19.S4], 64(R2)")
	p("\tSUBS $1, R0, R0")
	p("\tBNE axpyloop")
	p("axpydone:")
	p("\tRET")
}

// scale writes scaleNEON(n int, a float32, x *float32): x *= a for n a multiple of 16.
func scale() {
	p("")
	p("// func scaleNEON(n int, a float32, x *float32)")
	p("TEXT ·scaleNEON(SB), NOSPLIT, $0-24")
	p("\tMOVD n+0(FP), R0")
	p("\tFMOVS a+8(FP), F0")
	p("\tMOVD x+16(FP), R1")
	emit(dupS(0, 0, 0))
	p("\tLSR $4, R0, R0")
	p("\tCBZ R0, scaledone")
	p("scaleloop:")
	p("\tVLD1 (R1), [V4.S4, V5.S4, V6.S4, V7.S4]")
	for i := 0; i < 4; i++ {
		emit(fmul(4+i, 4+i, 0))
	}
	p("\tVST1.P [V4.S4, V5.S4, V6.S4, V7.S4], 64(R1)")
	p("\tSUBS $1, R0, R0")
	p("\tBNE scaleloop")
	p("scaledone:")
	p("\tRET")
}

// axpyRows writes axpyRowsNEON(cols, rows int, a *float32, m unsafe.Pointer, ldm int,
// y *float32): y[c] += Σ_j a[j]·row_j[c] for c < cols (a multiple of 16), rows ≥ 1 rows
// at m + j·ldm bytes. Two sets of accumulators take alternate rows.
func axpyRows() {
	p("")
	p("// func axpyRowsNEON(cols, rows int, a *float32, m unsafe.Pointer, ldm int, y *float32)")
	p("TEXT ·axpyRowsNEON(SB), NOSPLIT, $0-48")
	p("\tMOVD cols+0(FP), R0")
	p("\tMOVD rows+8(FP), R1")
	p("\tMOVD a+16(FP), R2")
	p("\tMOVD m+24(FP), R3")
	p("\tMOVD ldm+32(FP), R4")
	p("\tMOVD y+40(FP), R5")
	p("\tLSR $4, R0, R0")
	p("\tCBZ R0, arowsdone")
	p("arowsblk:")
	p("\tVLD1 (R5), [V16.S4, V17.S4, V18.S4, V19.S4]")
	for v := 20; v < 24; v++ {
		zero(v)
	}
	p("\tMOVD R2, R6")
	p("\tMOVD R3, R7")
	p("\tLSR $1, R1, R8")
	p("\tCBZ R8, arowsodd")
	p("arowspair:")
	p("\tVLD1R (R6), [V0.S4]")
	p("\tADD $4, R6, R6")
	p("\tVLD1R (R6), [V1.S4]")
	p("\tADD $4, R6, R6")
	p("\tVLD1 (R7), [V4.S4, V5.S4, V6.S4, V7.S4]")
	p("\tADD R4, R7, R7")
	p("\tVLD1 (R7), [V8.S4, V9.S4, V10.S4, V11.S4]")
	p("\tADD R4, R7, R7")
	for i := 0; i < 4; i++ {
		emit(fmla(16+i, 4+i, 0))
		emit(fmla(20+i, 8+i, 1))
	}
	p("\tSUBS $1, R8, R8")
	p("\tBNE arowspair")
	p("arowsodd:")
	p("\tTBZ $0, R1, arowssum")
	p("\tVLD1R (R6), [V0.S4]")
	p("\tVLD1 (R7), [V4.S4, V5.S4, V6.S4, V7.S4]")
	for i := 0; i < 4; i++ {
		emit(fmla(16+i, 4+i, 0))
	}
	p("arowssum:")
	for i := 0; i < 4; i++ {
		emit(fadd(16+i, 16+i, 20+i))
	}
	p("\tVST1.P [V16.S4, V17.S4, V18.S4, V19.S4], 64(R5)")
	p("\tADD $64, R3, R3")
	p("\tSUBS $1, R0, R0")
	p("\tBNE arowsblk")
	p("arowsdone:")
	p("\tRET")
}

// idot adds the int8 dot products of the 16 bytes of wv and xv, four at a time, to the four
// int32 lanes of acc: SDOT with dotprod, else SMULL/SMLAL2 into 16 bits (|w·x| ≤ 128·127,
// two per lane) and SADALP (tmp is clobbered).
func idot(acc, wv, xv, tmp int, dp bool) {
	if dp {
		emit(sdot(acc, wv, xv))
		return
	}
	emit(smull(tmp, wv, xv))
	emit(smlal2(tmp, wv, xv))
	emit(sadalp(acc, tmp))
}

// kdot writes kdot<T>NEON(nsb int, w, xq unsafe.Pointer, out *int32) (dp: SDOT) and the
// ...nd variant: for one row of nsb k-quant super-blocks and activations quantized to int8
// (xq), the integer sums Σ q_w·q_x of every sub-block (q4_K/q5_K: 8 of 32 elements per
// super-block, their unsigned values; q6_K: 16 of 16, values − 32), written to out. The
// scales and mins are applied in Go (neon.go). Constants: V28 = 0x0f, V29 = 1, V27 = 3,
// V26 = 32 (bytes); accumulators V16..V23.
func kdot(t string, dp bool) {
	name := "kdot" + t + "NEON"
	if !dp {
		name += "nd"
	}
	p("")
	p("// func %s(nsb int, w unsafe.Pointer, xq unsafe.Pointer, out *int32)", name)
	p("TEXT ·%s(SB), NOSPLIT, $0-32", name)
	p("\tMOVD nsb+0(FP), R0")
	p("\tMOVD w+8(FP), R1")
	p("\tMOVD xq+16(FP), R2")
	p("\tMOVD out+24(FP), R3")
	emit(movi16b(28, 0x0f))
	emit(movi16b(29, 1))
	emit(movi16b(27, 3))
	emit(movi16b(26, 32))
	p("\tCBZ R0, %sdone", name)
	p("%sloop:", name)
	for v := 16; v < 24; v++ {
		zero(v)
	}
	switch t {
	case "Q4K", "Q5K":
		qs := 16
		if t == "Q5K" {
			qs = 48
			p("\tADD $16, R1, R4")
			p("\tVLD1 (R4), [V8.B16, V9.B16]") // qh
		}
		p("\tADD $%d, R1, R4", qs)
		for g := 0; g < 4; g++ {
			p("\tVLD1.P 32(R4), [V0.B16, V1.B16]")
			p("\tVLD1.P 64(R2), [V4.B16, V5.B16, V6.B16, V7.B16]")
			emit(ushr16b(2, 0, 4))
			emit(ushr16b(3, 1, 4))
			emit(and16b(0, 0, 28))
			emit(and16b(1, 1, 28))
			if t == "Q5K" {
				// Fifth bits: qh bit 2g for the low nibbles, 2g+1 for the high ones.
				for hv := 0; hv < 2; hv++ {
					for bit := 0; bit < 2; bit++ {
						sh := 2*g + bit
						src := 8 + hv
						if sh > 0 {
							emit(ushr16b(10, src, sh))
							src = 10
						}
						emit(and16b(10, src, 29))
						emit(shl16b(10, 10, 4))
						emit(orr16b(hv+2*bit, hv+2*bit, 10))
					}
				}
			}
			idot(16+2*g, 0, 4, 30, dp)
			idot(16+2*g, 1, 5, 31, dp)
			idot(17+2*g, 2, 6, 30, dp)
			idot(17+2*g, 3, 7, 31, dp)
		}
		emit(addp(24, 16, 17))
		emit(addp(25, 18, 19))
		emit(addp(24, 24, 25))
		emit(addp(25, 20, 21))
		emit(addp(30, 22, 23))
		emit(addp(25, 25, 30))
		p("\tVST1.P [V24.S4, V25.S4], 32(R3)")
		if t == "Q4K" {
			p("\tADD $144, R1, R1")
		} else {
			p("\tADD $176, R1, R1")
		}
	case "Q6K":
		p("\tMOVD R1, R4")      // ql
		p("\tADD $128, R1, R5") // qh
		for h := 0; h < 2; h++ {
			p("\tVLD1.P 64(R4), [V0.B16, V1.B16, V2.B16, V3.B16]")
			p("\tVLD1.P 32(R5), [V8.B16, V9.B16]")
			for s := 0; s < 8; s++ {
				// Sub-block s of this half: nibble (s/4: low, high) of ql vector s%4, qh
				// bits 2·(s/2) of qh vector s%2.
				q, hb := s%4, 8+s%2
				if s < 4 {
					emit(and16b(10, q, 28))
				} else {
					emit(ushr16b(10, q, 4))
				}
				src := hb
				if sh := 2 * (s / 2); sh > 0 {
					emit(ushr16b(11, hb, sh))
					src = 11
				}
				emit(and16b(11, src, 27))
				emit(shl16b(11, 11, 4))
				emit(orr16b(10, 10, 11))
				emit(sub16b(10, 10, 26))
				p("\tVLD1.P 16(R2), [V12.B16]")
				idot(16+s, 10, 12, 30, dp)
			}
			emit(addp(24, 16, 17))
			emit(addp(25, 18, 19))
			emit(addp(24, 24, 25))
			emit(addp(25, 20, 21))
			emit(addp(30, 22, 23))
			emit(addp(25, 25, 30))
			p("\tVST1.P [V24.S4, V25.S4], 32(R3)")
			if h == 0 {
				for v := 16; v < 24; v++ {
					zero(v)
				}
			}
		}
		p("\tADD $210, R1, R1")
	}
	p("\tSUBS $1, R0, R0")
	p("\tBNE %sloop", name)
	p("%sdone:", name)
	p("\tRET")
}
