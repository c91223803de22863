package eviction

import (
	"errors"
	"sync"
	"testing"
)

// TestConcurrentUse hammers one tracker from several goroutines (run with -race) while
// switching policy, admission and capacity, then checks the accounting.
func TestConcurrentUse(t *testing.T) {
	tr := mustTracker(t, Config{Policy: PolicyS3FIFO, Capacity: 500})
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 3000; i++ {
				k := bigKey((i*31 + g*7) % 2000)
				switch i % 5 {
				case 0, 1:
					if _, err := tr.Reserve(k, int64(1+i%9), 1); err != nil && !errors.Is(err, ErrNotAdmitted) && !errors.Is(err, ErrNoSpace) {
						t.Error(err)
						return
					}
				case 2:
					tr.Touch(k)
				case 3:
					tr.SetPin(k, Pin(i%3))
				case 4:
					tr.Remove(k)
				}
				if i%500 == 0 {
					_ = tr.SetPolicy(Policies()[(i/500+g)%len(Policies())])
					_ = tr.SetAdmission(Admissions()[g%2])
					_, _ = tr.SetCapacity(int64(300 + 100*g))
				}
			}
		}(g)
	}
	wg.Wait()
	st := tr.Stats()
	if st.UsedBytes > st.CapacityBytes {
		t.Fatalf("used %d > capacity %d", st.UsedBytes, st.CapacityBytes)
	}
	tr.checkInternal(t)
	var sum int64
	for _, k := range tr.Keys() {
		info, _ := tr.Lookup(k)
		sum += info.Size
	}
	if sum != st.UsedBytes {
		t.Fatalf("entries sum to %d bytes, Stats says %d", sum, st.UsedBytes)
	}
}
