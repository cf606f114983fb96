package stats

import (
	"math"
	"testing"
	"time"
)

func TestPercentileAndMedian(t *testing.T) {
	xs := []float64{5, 1, 4, 2, 3}
	for _, tc := range []struct {
		p    float64
		want float64
	}{{50, 3}, {0, 1}, {100, 5}, {99, 5}, {20, 1}, {21, 2}} {
		if got, ok := Percentile(xs, tc.p); !ok || got != tc.want {
			t.Errorf("p%v = %v, want %v", tc.p, got, tc.want)
		}
	}
	if _, ok := Percentile([]time.Duration(nil), 50); ok {
		t.Error("percentile of nothing")
	}
	if d, _ := Percentile([]time.Duration{3, 1, 2}, 50); d != 2 {
		t.Errorf("durations p50 %v", d)
	}
	if Median([]float64{4, 1, 3, 2}) != 2.5 || Median([]float64{3, 1, 2}) != 2 || !math.IsNaN(Median(nil)) {
		t.Error("median")
	}
}
