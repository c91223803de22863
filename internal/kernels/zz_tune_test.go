package kernels

import (
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func cpuNow() float64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return float64(ru.Utime.Sec+ru.Stime.Sec) + float64(ru.Utime.Usec+ru.Stime.Usec)/1e6
}

func TestZZTune(t *testing.T) {
	spec := os.Getenv("TUNE")
	if spec == "" {
		t.Skip()
	}
	if g, _ := strconv.Atoi(os.Getenv("GMIN")); g > 0 {
		gemmMinTokens = g
	}
	th, _ := strconv.Atoi(os.Getenv("TH"))
	if th == 0 {
		th = 1
	}
	for _, f := range strings.Split(spec, ",") {
		parts := strings.Split(f, ":")
		typ, _ := ParseDType(parts[0])
		m, _ := strconv.Atoi(parts[1])
		n, _ := strconv.Atoi(parts[2])
		k, _ := strconv.Atoi(parts[3])
		w, _ := RandomMat(typ, m, k, 0.05, 1)
		x := randomF32(rand.New(rand.NewPCG(1, 1)), n*k)
		out := make([]float32, n*m)
		p := NewPool(th)
		p.MatMul(out, x, n, &w)
		iters := 3
		c0, w0 := cpuNow(), time.Now()
		for range iters {
			p.MatMul(out, x, n, &w)
		}
		cpu := (cpuNow() - c0) / float64(iters)
		wall := time.Since(w0).Seconds() / float64(iters)
		fl := 2 * float64(m) * float64(n) * float64(k)
		t.Logf("%v m%d n%d k%d th%d: %.1f GFLOP/cpu-s (per core), wall %.1f GFLOP/s, %.2f GB/cpu-s", typ, m, n, k, th, fl/cpu/1e9*float64(th)/float64(th), fl/wall/1e9, float64(len(w.Data))/cpu/1e9)
		p.Close()
	}
}
