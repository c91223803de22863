package eviction

// wtinylfu is W-TinyLFU (Einziger, Friedman, Manes, TOS 2017, §4; the policy of the
// Caffeine cache): a window LRU of 1% of the bytes admits every new entry; entries
// overflowing the window become candidates for the main segmented LRU (probation +
// protected, 80% protected) and enter it only if their TinyLFU frequency estimate beats
// that of main's victim, otherwise they are the victim. Hits in probation promote to
// protected; protected overflow demotes back to probation. The window keeps recency-
// heavy workloads (bursts, shifts) working while the filter keeps frequency-heavy ones
// (Zipf, scans) near the best static choice.
type wtinylfu struct {
	s                                     *store
	window, pending, probation, protected list
	windowTarget, protectedTarget         int64
	sketch                                *tinyLFU
}

const (
	queueWindow    uint8 = 3
	queuePending   uint8 = 4
	queueProbation uint8 = 5
	queueProtected uint8 = 6
)

func newWTinyLFU(s *store) *wtinylfu {
	return &wtinylfu{s: s, window: newList(), pending: newList(), probation: newList(), protected: newList(),
		sketch: newTinyLFU(0)}
}

func (p *wtinylfu) miss(uint64, int64) {}

func (p *wtinylfu) name() string { return PolicyWTinyLFU }
func (p *wtinylfu) count() int {
	return p.window.n + p.pending.n + p.probation.n + p.protected.n
}

func (p *wtinylfu) setCapacity(bytes int64) {
	p.windowTarget = max(1, bytes/100)
	p.protectedTarget = (bytes - p.windowTarget) * 8 / 10
}

func (p *wtinylfu) listOf(q uint8) *list {
	switch q {
	case queueWindow:
		return &p.window
	case queuePending:
		return &p.pending
	case queueProbation:
		return &p.probation
	}
	return &p.protected
}

func (p *wtinylfu) push(l *list, q uint8, i int32) {
	p.s.ents[i].queue = q
	l.pushHead(p.s, i)
}

func (p *wtinylfu) insert(i int32, restored bool) {
	e := &p.s.ents[i]
	if !restored {
		p.sketch.record(e.hash)
	}
	if n := p.count() + 1; p.sketch.needsGrow(n) {
		p.sketch.regrow(n, p.hashes)
	}
	if restored && e.hits > 1 {
		p.push(&p.probation, queueProbation, i)
		return
	}
	p.push(&p.window, queueWindow, i)
	for p.window.bytes > p.windowTarget && p.window.n > 1 {
		t := p.window.tail
		p.window.unlink(p.s, t)
		p.push(&p.pending, queuePending, t)
	}
}

func (p *wtinylfu) hashes(yield func(h uint64)) {
	for _, l := range []*list{&p.window, &p.pending, &p.probation, &p.protected} {
		for i := l.head; i != nilIdx; i = p.s.ents[i].next {
			yield(p.s.ents[i].hash)
		}
	}
}

func (p *wtinylfu) hit(i int32) {
	e := &p.s.ents[i]
	p.sketch.record(e.hash)
	switch e.queue {
	case queueWindow:
		p.window.moveHead(p.s, i)
	case queueProtected:
		p.protected.moveHead(p.s, i)
	default: // probation or pending: promote
		p.listOf(e.queue).unlink(p.s, i)
		p.push(&p.protected, queueProtected, i)
		for p.protected.bytes > p.protectedTarget && p.protected.n > 1 {
			t := p.protected.tail
			p.protected.unlink(p.s, t)
			p.push(&p.probation, queueProbation, t)
		}
	}
}

func (p *wtinylfu) remove(i int32, _ bool) {
	e := &p.s.ents[i]
	p.listOf(e.queue).unlink(p.s, i)
	e.queue = 0
}

func (p *wtinylfu) mainVictim() int32 {
	if p.probation.n > 0 {
		return p.probation.tail
	}
	return p.protected.tail
}

func (p *wtinylfu) victim() int32 {
	for p.pending.n > 0 {
		c := p.pending.tail
		v := p.mainVictim()
		if v == nilIdx {
			p.pending.unlink(p.s, c)
			p.push(&p.probation, queueProbation, c)
			continue
		}
		if p.sketch.admit(p.s.ents[c].hash, p.s.ents[v].hash) {
			p.pending.unlink(p.s, c)
			p.push(&p.probation, queueProbation, c)
			return v
		}
		return c
	}
	if v := p.mainVictim(); v != nilIdx {
		return v
	}
	return p.window.tail
}
