//go:build !linux

package ann

import "unsafe"

func adviseHuge(p unsafe.Pointer, size int) {}
