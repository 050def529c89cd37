package pii_test

import (
	"context"
	"math/rand/v2"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vigilhq/vigil"
	"github.com/vigilhq/vigil/pii"
)

// chatCorpus returns n messages of chat text: a share pii of them carry a
// seeded value (from the quality corpus), the rest are plain chat of
// typical length.
func chatCorpus(n int, pii float64) ([]string, int) {
	r := rand.New(rand.NewPCG(7, 11))
	labelled := genCorpus(99, n)
	var msgs []string
	total := 0
	for i := 0; i < n; i++ {
		var m string
		if r.Float64() < pii {
			m = labelled[i].text
		} else {
			// 1–4 filler sentences: ~30–250 bytes, like most chat lines.
			var b strings.Builder
			for k := 0; k <= r.IntN(4); k++ {
				if k > 0 {
					b.WriteByte(' ')
				}
				b.WriteString(pick(r, fillers))
			}
			m = b.String()
		}
		msgs = append(msgs, m)
		total += len(m)
	}
	return msgs, total
}

var benchDir = pii.Directory{
	Sender:       vigil.Participant{ID: "u-anna", DisplayName: "Anna Lee"},
	Participants: []vigil.Participant{{ID: "u-bob", DisplayName: "Robert Okafor"}, {ID: "u-maria", DisplayName: "Maria Garcia"}},
}

// cpuTime returns the process's user+system CPU time. Benchmarks report
// MB per CPU-second next to wall-clock MB/s because the machine is shared:
// wall time includes waiting for other people's processes.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// loopCPU runs body in b.Loop and reports MB per CPU-second.
func loopCPU(b *testing.B, bytesPerOp int, body func()) {
	b.SetBytes(int64(bytesPerOp))
	b.ReportAllocs()
	start := cpuTime()
	n := 0
	for b.Loop() {
		body()
		n++
	}
	if cpu := cpuTime() - start; cpu > 0 {
		b.ReportMetric(float64(bytesPerOp)*float64(n)/cpu.Seconds()/1e6, "MB/cpu-s")
	}
}

func BenchmarkDetect(b *testing.B) {
	d, err := pii.NewDetector(pii.Policy{})
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name string
		pii  float64
		dir  pii.Directory
	}{
		{"no-pii", 0, benchDir},
		{"typical-5pct", 0.05, benchDir},
		{"typical-5pct-nodir", 0.05, pii.Directory{}},
		{"pii-every-msg", 1, benchDir},
	} {
		msgs, total := chatCorpus(2000, bc.pii)
		b.Run(bc.name, func(b *testing.B) {
			loopCPU(b, total, func() {
				for _, m := range msgs {
					d.Detect(m, bc.dir)
				}
			})
		})
	}
}

// BenchmarkTokenize measures Tokenizer.Tokenize with the real vault
// (embedded JetStream). The first pass stores every value; the measured
// passes find them in the stored-value cache, as repeated values in chat do.
func BenchmarkTokenize(b *testing.B) {
	r := newRig(b)
	ctx := context.Background()
	for _, bc := range []struct {
		name string
		pii  float64
	}{
		{"no-pii", 0},
		{"typical-5pct", 0.05},
		{"pii-every-msg", 1},
	} {
		msgs, total := chatCorpus(2000, bc.pii)
		for _, m := range msgs {
			if _, _, err := r.tok.Tokenize(ctx, "bench", m, benchDir); err != nil {
				b.Fatal(err)
			}
		}
		b.Run(bc.name, func(b *testing.B) {
			loopCPU(b, total, func() {
				for _, m := range msgs {
					if _, _, err := r.tok.Tokenize(ctx, "bench", m, benchDir); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}

// BenchmarkTokenizeNewValues measures the write path: every message carries
// a value the vault has not seen (index, wrapped key on first use,
// ciphertext: several KV round trips per value).
func BenchmarkTokenizeNewValues(b *testing.B) {
	r := newRig(b)
	ctx := context.Background()
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		i++
		text := "reach me at user" + strings.Repeat("x", i%7) + itoa(i) + "@example.com please"
		if _, _, err := r.tok.Tokenize(ctx, "bench", text, benchDir); err != nil {
			b.Fatal(err)
		}
	}
}

func itoa(i int) string {
	var b [20]byte
	n := len(b)
	for {
		n--
		b[n] = byte('0' + i%10)
		i /= 10
		if i == 0 {
			return string(b[n:])
		}
	}
}

// BenchmarkRegexpBaseline is the approach the detectors replace: Go regexp
// for e-mail, card and phone, one pass each.
func BenchmarkRegexpBaseline(b *testing.B) {
	res := []*regexp.Regexp{
		regexp.MustCompile(`[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}`),
		regexp.MustCompile(`\b(?:\d[ -]?){13,19}\b`),
		regexp.MustCompile(`\+?\d{1,3}?[ .-]?\(?\d{3}\)?[ .-]?\d{3}[ .-]?\d{4}`),
	}
	msgs, total := chatCorpus(2000, 0.05)
	loopCPU(b, total, func() {
		for _, m := range msgs {
			for _, re := range res {
				re.FindAllStringIndex(m, -1)
			}
		}
	})
}
