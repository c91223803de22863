//go:build (amd64 || arm64) && !purego

package cpu

// asmBuild: this build has the assembly kernels (the purego tag removes them).
const asmBuild = true
