package kernels

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// TestMatMulMulti checks that MatMulMulti gives exactly MatMul's results for every type,
// on the shared path (one packing, rows of all matrices shared out) and the fallbacks
// (matrix-vector sizes, mixed packed forms), with 1 to 3 workers.
func TestMatMulMulti(t *testing.T) { forEachPath(t, testMatMulMulti) }

func testMatMulMulti(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 22))
	type set struct {
		name  string
		types []DType
	}
	sets := []set{{"mixed k-quants", []DType{Q4_K, Q4_K, Q6_K}}, {"float and q8_0", []DType{F32, Q8_0}}}
	for _, typ := range allTypes {
		sets = append(sets, set{typ.String(), []DType{typ, typ, typ}})
	}
	for _, threads := range testThreads() {
		p := NewPool(threads)
		defer p.Close()
		for _, fa := range []bool{false, true} {
			p.SetFloatActivations(fa)
			for _, st := range sets {
				for _, n := range []int{1, 3, 13, 50} {
					const cols = 512
					rows := []int{70, 16, 33}[:len(st.types)]
					ws := make([]*Mat, len(st.types))
					outs := make([][]float32, len(st.types))
					want := make([][]float32, len(st.types))
					x := randomF32(rng, n*cols)
					for i, typ := range st.types {
						w, _ := randomMat(rng, typ, rows[i], cols)
						ws[i] = &w
						outs[i] = make([]float32, n*rows[i]+1)
						outs[i][n*rows[i]] = float32(math.NaN())
						want[i] = make([]float32, n*rows[i])
						if err := p.MatMul(want[i], x, n, ws[i]); err != nil {
							t.Fatal(err)
						}
					}
					if err := p.MatMulMulti(outs, x, n, ws); err != nil {
						t.Fatal(err)
					}
					name := fmt.Sprintf("t%d float=%v %s n=%d", threads, fa, st.name, n)
					for i := range ws {
						for j, v := range want[i] {
							if outs[i][j] != v {
								t.Fatalf("%s: matrix %d value %d = %g, MatMul gives %g", name, i, j, outs[i][j], v)
							}
						}
						if !math.IsNaN(float64(outs[i][n*rows[i]])) {
							t.Fatalf("%s: matrix %d written past n×rows", name, i)
						}
					}
				}
			}
		}
	}
}

func TestMatMulMultiErrorsAndAllocs(t *testing.T) {
	p := NewPool(2)
	defer p.Close()
	rng := rand.New(rand.NewPCG(23, 24))
	a, _ := randomMat(rng, Q8_0, 64, 256)
	b, _ := randomMat(rng, Q8_0, 32, 256)
	c, _ := randomMat(rng, Q8_0, 32, 512)
	n := 64
	x := randomF32(rng, n*512)
	oa, ob := make([]float32, n*64), make([]float32, n*32)
	for _, tc := range []struct {
		outs [][]float32
		ws   []*Mat
	}{
		{[][]float32{oa}, []*Mat{&a, &b}},
		{[][]float32{oa, ob}, []*Mat{&a, &c}},
		{[][]float32{oa, ob[:10]}, []*Mat{&a, &b}},
	} {
		if err := p.MatMulMulti(tc.outs, x, n, tc.ws); !errors.Is(err, ErrShape) {
			t.Errorf("got %v, want ErrShape", err)
		}
	}
	outs, ws := [][]float32{oa, ob}, []*Mat{&a, &b}
	if err := p.MatMulMulti(outs, x, n, ws); err != nil {
		t.Fatal(err)
	}
	if al := testing.AllocsPerRun(5, func() { _ = p.MatMulMulti(outs, x, n, ws) }); al != 0 {
		t.Errorf("%.1f allocations per call", al)
	}
}

// TestMatMulMultiConcurrentSetFloat: SetFloatActivations while MatMulMulti calls run on
// the same Pool (run with -race: MatMulMulti chose its path reading the setting without
// the Pool's lock). Results stay within the int8-activation tolerance either way.
func TestMatMulMultiConcurrentSetFloat(t *testing.T) {
	p := NewPool(2)
	defer p.Close()
	rng := rand.New(rand.NewPCG(31, 32))
	const n, cols = 20, 256
	w1, d1 := randomMat(rng, Q8_0, 48, cols)
	w2, d2 := randomMat(rng, Q8_0, 16, cols)
	x := randomF32(rng, n*cols)
	outs := [][]float32{make([]float32, n*48), make([]float32, n*16)}
	stop := make(chan struct{})
	toggled := make(chan struct{})
	go func() {
		defer close(toggled)
		for on := true; ; on = !on {
			select {
			case <-stop:
				return
			default:
				p.SetFloatActivations(on)
			}
		}
	}()
	for range 30 {
		if err := p.MatMulMulti(outs, x, n, []*Mat{&w1, &w2}); err != nil {
			t.Fatal(err)
		}
		checkMatMul(t, outs[0], x, n, &w1, d1)
		checkMatMul(t, outs[1], x, n, &w2, d2)
	}
	close(stop)
	<-toggled
}
