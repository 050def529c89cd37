package chlocal

import (
	"bytes"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// chDB Native output (revision 0) captured from the engine.
var nativeSeeds = [][]byte{
	// SELECT 1
	[]byte("\x01\x01\x011\x05UInt8\x01"),
	// SELECT toDateTime(…,'Asia/Tokyo') a, toDateTime64(…,3,'Asia/Tokyo') b, toDateTime(…) c
	[]byte("\x03\x01\x01a\x08DateTime\xf0\x81\x91e\x01b\x1bDateTime64(3, 'Asia/Tokyo')\x80\x91c\xc0\x8c\x01\x00\x00\x01c\x08DateTime\x80\x00\x92e"),
	// SELECT CAST(['a','b'] AS Array(LowCardinality(String))) a, map('k','v') m,
	//        CAST('x' AS LowCardinality(Nullable(String))) l
	[]byte("\x03\x01\x01a\x1dArray(LowCardinality(String))\x01\x00\x00\x00\x00\x00\x00\x00\x02\x00\x00\x00\x00\x00\x00\x00\x00\x06\x00\x00\x00\x00\x00\x00\x03\x00\x00\x00\x00\x00\x00\x00\x00\x01a\x01b\x02\x00\x00\x00\x00\x00\x00\x00\x01\x02\x01m\x13Map(String, String)\x01\x00\x00\x00\x00\x00\x00\x00\x01k\x01v\x01l LowCardinality(Nullable(String))\x01\x00\x00\x00\x00\x00\x00\x00\x00\x06\x00\x00\x00\x00\x00\x00\x03\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01x\x01\x00\x00\x00\x00\x00\x00\x00\x02"),
}

func TestReframeNative(t *testing.T) {
	tests := []struct {
		name     string
		src      []byte
		revision uint64
		types    []string
		want     []byte
	}{
		{name: "revision 0 unchanged", src: nativeSeeds[0], revision: 0, want: nativeSeeds[0]},
		{
			name: "block info and custom byte", src: nativeSeeds[0], revision: 54460,
			want: []byte("\x01\x00\x02\xff\xff\xff\xff\x00\x01\x01\x011\x05UInt8\x00\x01"),
		},
		{
			name: "block info only below custom serialization", src: nativeSeeds[0], revision: 54453,
			want: []byte("\x01\x00\x02\xff\xff\xff\xff\x00\x01\x01\x011\x05UInt8\x01"),
		},
		{
			name: "zone restored", src: []byte("\x01\x01\x01a\x08DateTime\xf0\x81\x91e"), revision: 0,
			types: []string{"DateTime('Asia/Tokyo')"},
			want:  []byte("\x01\x01\x01a\x16DateTime('Asia/Tokyo')\xf0\x81\x91e"),
		},
		{
			name: "other type not replaced", src: nativeSeeds[0], revision: 0, types: []string{"UInt64"},
			want: nativeSeeds[0],
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := reframeNative(tc.src, tc.revision, tc.types)
			if err != nil {
				t.Fatalf("reframeNative = %v", err)
			}
			if !bytes.Equal(got, tc.want) {
				t.Fatalf("reframeNative =\n%q\nwant\n%q", got, tc.want)
			}
		})
	}
	// Walking the captured multi-type blocks consumes them exactly.
	for i, src := range nativeSeeds {
		got, err := reframeNative(src, 54460, nil)
		if err != nil {
			t.Fatalf("seed %d: %v", i, err)
		}
		if want := len(src) + len(blockInfo) + int(src[0]); len(got) != want {
			t.Fatalf("seed %d: %d bytes, want %d", i, len(got), want)
		}
	}
	if _, err := reframeNative(nativeSeeds[2][:len(nativeSeeds[2])-3], 54460, nil); err == nil {
		t.Fatalf("truncated block accepted")
	}
}

// FuzzReframeNative feeds arbitrary bytes to the Native walker: it must never
// panic or loop, and what it accepts grows by exactly the block info and one
// byte per column per block.
func FuzzReframeNative(f *testing.F) {
	for _, s := range nativeSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		if len(src) > maxFuzzInput {
			return
		}
		out, err := reframeNative(src, 54460, nil)
		if err != nil {
			return
		}
		if len(out) < len(src) {
			t.Fatalf("output shorter than input")
		}
		again, err := reframeNative(src, 0, []string{})
		if err != nil || !bytes.Equal(again, src) {
			t.Fatalf("revision 0 changed the bytes: %v", err)
		}
	})
}

func TestNewMetricsRegistersOnce(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	m1 := NewMetrics(reg)
	m2 := NewMetrics(reg) // an engine reopened in the same process
	m1.Requests.WithLabelValues(labelQuery, resultOK).Inc()
	if got := testutil.ToFloat64(m2.Requests.WithLabelValues(labelQuery, resultOK)); got != 1 {
		t.Fatalf("second NewMetrics does not share series: %v", got)
	}
	if n, err := testutil.GatherAndCount(reg); err != nil || n == 0 {
		t.Fatalf("gather: %d, %v", n, err)
	}
	NewMetrics(nil).Requests.WithLabelValues(labelPing, resultOK).Inc() // nil registerer: no panic
}
