// Package stats holds the summary statistics both benchmark drivers (bench/
// and bench/multiplayer) report, so that their figures mean the same thing.
package stats

import (
	"cmp"
	"math"
	"slices"
)

// Percentile is the p-th percentile (0..100) of xs by nearest rank; ok is
// false for no samples.
func Percentile[T cmp.Ordered](xs []T, p float64) (v T, ok bool) {
	if len(xs) == 0 {
		return v, false
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	rank := int(math.Ceil(p/100*float64(len(s)))) - 1
	return s[max(0, min(rank, len(s)-1))], true
}

// Median interpolates between the two middle values of an even count; NaN
// for no samples.
func Median(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
