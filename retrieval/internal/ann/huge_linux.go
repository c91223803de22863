package ann

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

const hugePage = 2 << 20

// adviseHuge asks the kernel for transparent huge pages on the 2 MiB-aligned interior
// of a large, not yet touched allocation (MADV_HUGEPAGE; advisory, errors ignored).
// Searches touch a few KiB in each of many places of the code array (and rescoring
// touches random rows): with 4 KiB pages nearly every one is also a TLB miss, which
// under virtualization costs as much as the cache miss itself.
func adviseHuge(p unsafe.Pointer, size int) {
	if size < 2*hugePage {
		return
	}
	start := uintptr(p)
	lo := (start + hugePage - 1) &^ (hugePage - 1)
	hi := (start + uintptr(size)) &^ (hugePage - 1)
	if hi <= lo {
		return
	}
	_ = unix.Madvise(unsafe.Slice((*byte)(unsafe.Add(p, lo-start)), hi-lo), unix.MADV_HUGEPAGE)
}
