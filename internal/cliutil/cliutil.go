// Package cliutil holds what ragkv's command-line jobs share: the single-line JSON result
// printed by every --json eval and bench command, and progress reporting that draws a bar
// on a terminal and prints periodic lines otherwise.
package cliutil

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"golang.org/x/term"
)

// PrintJSON writes v as one compact JSON line. Eval and bench commands call it last, so
// that the last stdout line is exactly one JSON object.
func PrintJSON(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode json result: %w", err)
	}
	b = append(b, '\n')
	_, err = w.Write(b)
	return err
}

// Progress reports the advance of a long job on w (normally os.Stderr, so that stdout
// stays machine-readable). On a terminal it redraws a bar in place; otherwise it prints a
// line at most every Interval. It is safe for concurrent use.
type Progress struct {
	w        io.Writer
	label    string
	total    int64
	tty      bool
	interval time.Duration
	start    time.Time

	mu       sync.Mutex
	done     int64
	lastDraw time.Time
	finished bool
}

// NewProgress starts reporting a job of total units (total ≤ 0: unknown).
func NewProgress(w io.Writer, label string, total int64) *Progress {
	tty := false
	if f, ok := w.(*os.File); ok {
		tty = term.IsTerminal(int(f.Fd()))
	}
	iv := 5 * time.Second
	if tty {
		iv = 100 * time.Millisecond
	}
	return &Progress{w: w, label: label, total: total, tty: tty, interval: iv, start: time.Now()}
}

// Add advances the job by n units.
func (p *Progress) Add(n int64) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done += n
	if now := time.Now(); now.Sub(p.lastDraw) >= p.interval {
		p.lastDraw = now
		p.draw(false)
	}
}

// Finish prints the final state once.
func (p *Progress) Finish() {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.finished {
		return
	}
	p.finished = true
	p.draw(true)
}

func (p *Progress) draw(final bool) {
	el := time.Since(p.start).Seconds()
	rate := 0.0
	if el > 0 {
		rate = float64(p.done) / el
	}
	var line string
	if p.total > 0 {
		frac := float64(p.done) / float64(p.total)
		if frac > 1 {
			frac = 1
		}
		eta := ""
		if rate > 0 && !final {
			eta = fmt.Sprintf(" eta %s", time.Duration(float64(p.total-p.done)/rate*float64(time.Second)).Round(time.Second))
		}
		if p.tty {
			const width = 30
			n := int(frac * width)
			bar := make([]byte, width)
			for i := range bar {
				if i < n {
					bar[i] = '='
				} else {
					bar[i] = ' '
				}
			}
			line = fmt.Sprintf("\r%s [%s] %d/%d %.1f/s%s", p.label, bar, p.done, p.total, rate, eta)
		} else {
			line = fmt.Sprintf("%s: %d/%d (%.0f%%) %.1f/s%s\n", p.label, p.done, p.total, 100*frac, rate, eta)
		}
	} else if p.tty {
		line = fmt.Sprintf("\r%s: %d %.1f/s", p.label, p.done, rate)
	} else {
		line = fmt.Sprintf("%s: %d %.1f/s\n", p.label, p.done, rate)
	}
	if final && p.tty {
		line += "\n"
	}
	_, _ = io.WriteString(p.w, line)
}
