package sim

import "errors"

// ErrNoPhases is returned by StaticOracle for traces without popularity phases.
var ErrNoPhases = errors.New("sim: trace has no known popularity ranking")

// StaticOracle returns the hit ratio of the best online policy for requests drawn
// independently from a known popularity distribution (the independent reference model):
// hold the capacity most probable chunks of the current phase (Aho, Denning, Ullman,
// "Principles of optimal page replacement", JACM 1971: policy A0). A request hits if
// its chunk is in that set and was requested before (the first request of a chunk is a
// compulsory miss for any policy). No online policy can expect to do better on such
// traces, so StaticOracle/Belady bounds what best_vs_belady can reach; on traces that
// are not independent draws (scans) it is a reference, not a bound.
func StaticOracle(t *Trace, capacity int) (Result, error) {
	if len(t.Phases) == 0 {
		return Result{}, ErrNoPhases
	}
	maxID := uint32(0)
	for _, id := range t.Requests {
		maxID = max(maxID, id)
	}
	seen := make([]bool, int(maxID)+1)
	inTop := make([]bool, int(maxID)+1)
	var a acc
	phase := -1
	for i, id := range t.Requests {
		for phase+1 < len(t.Phases) && t.Phases[phase+1].Start <= i {
			if phase >= 0 {
				for _, p := range t.Phases[phase].Ranked[:min(capacity, len(t.Phases[phase].Ranked))] {
					if int(p) < len(inTop) {
						inTop[p] = false
					}
				}
			}
			phase++
			for _, p := range t.Phases[phase].Ranked[:min(capacity, len(t.Phases[phase].Ranked))] {
				if int(p) < len(inTop) {
					inTop[p] = true
				}
			}
		}
		a.add(seen[id] && inTop[id], t.Size(id), t.Cost(id))
		seen[id] = true
	}
	return a.result(), nil
}
