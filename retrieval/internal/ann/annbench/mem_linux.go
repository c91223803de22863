package annbench

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// allocF32 returns n float32s in an anonymous mapping advised for transparent huge
// pages (MADV_HUGEPAGE): rescoring reads ~R random 400-byte rows per query, and with
// 4 KiB pages each one is also a TLB miss. The mapping stays for the life of the
// process (the benchmark is a one-shot command). It falls back to the Go heap.
func allocF32(n int) []float32 {
	if n == 0 {
		return nil
	}
	mem, err := unix.Mmap(-1, 0, n*4, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
	if err != nil {
		return make([]float32, n)
	}
	_ = unix.Madvise(mem, unix.MADV_HUGEPAGE) // advisory: fine if refused
	return unsafe.Slice((*float32)(unsafe.Pointer(&mem[0])), n)
}
