package ann

import "math"

var negInf = float32(math.Inf(-1))

// topK keeps the cap best (score, id) pairs seen, as a min-heap on score (ties: the
// larger id is worse, so results do not depend on scan order).
type topK struct {
	ids    []int32
	scores []float32
	cap    int
}

func (t *topK) reset(capacity int) {
	t.cap = capacity
	if cap(t.ids) < capacity {
		t.ids = make([]int32, 0, capacity)
		t.scores = make([]float32, 0, capacity)
	}
	t.ids = t.ids[:0]
	t.scores = t.scores[:0]
}

// full reports whether the heap holds cap entries.
func (t *topK) full() bool { return len(t.ids) >= t.cap }

// min is the worst kept score (-Inf while not full).
func (t *topK) min() float32 {
	if len(t.ids) < t.cap {
		return negInf
	}
	return t.scores[0]
}

// worse reports whether (s1, id1) ranks below (s2, id2).
func worse(s1 float32, id1 int32, s2 float32, id2 int32) bool {
	return s1 < s2 || (s1 == s2 && id1 > id2)
}

// push offers (score, id).
func (t *topK) push(score float32, id int32) {
	n := len(t.ids)
	if n < t.cap {
		t.ids = append(t.ids, id)
		t.scores = append(t.scores, score)
		// sift up
		i := n
		for i > 0 {
			p := (i - 1) / 2
			if !worse(t.scores[i], t.ids[i], t.scores[p], t.ids[p]) {
				break
			}
			t.ids[i], t.ids[p] = t.ids[p], t.ids[i]
			t.scores[i], t.scores[p] = t.scores[p], t.scores[i]
			i = p
		}
		return
	}
	if n == 0 || !worse(t.scores[0], t.ids[0], score, id) {
		return
	}
	t.ids[0], t.scores[0] = id, score
	t.siftDown(0, n)
}

func (t *topK) siftDown(i, n int) {
	for {
		l := 2*i + 1
		if l >= n {
			break
		}
		c := l
		if r := l + 1; r < n && worse(t.scores[r], t.ids[r], t.scores[l], t.ids[l]) {
			c = r
		}
		if !worse(t.scores[c], t.ids[c], t.scores[i], t.ids[i]) {
			break
		}
		t.ids[i], t.ids[c] = t.ids[c], t.ids[i]
		t.scores[i], t.scores[c] = t.scores[c], t.scores[i]
		i = c
	}
}

// sorted returns the kept entries (in heap order; callers sort what they need).
func (t *topK) sorted() ([]int32, []float32) { return t.ids, t.scores }

// sortDesc orders the kept entries best first (heap sort; the heap is consumed).
func (t *topK) sortDesc() {
	for n := len(t.ids) - 1; n > 0; n-- {
		t.ids[0], t.ids[n] = t.ids[n], t.ids[0]
		t.scores[0], t.scores[n] = t.scores[n], t.scores[0]
		t.siftDown(0, n)
	}
}
