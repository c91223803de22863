//go:build !(amd64 || arm64) || purego

package cpu

const asmBuild = false
