package kernels

func dot(a, b []float32) float32               { return dotGeneric(a, b) }
func axpy(y []float32, a float32, x []float32) { axpyGeneric(y, a, x) }
func scale(x []float32, a float32)             { scaleGeneric(x, a) }
