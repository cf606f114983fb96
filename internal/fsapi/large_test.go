package fsapi

import (
	"crypto/sha256"
	"io"
	"net/http"
	"runtime"
	"testing"
)

// patternReader yields n deterministic bytes, sampling the heap as it goes.
type patternReader struct {
	n, off int64
	probe  *heapProbe
}

func (p *patternReader) Read(b []byte) (int, error) {
	if p.off >= p.n {
		return 0, io.EOF
	}
	k := min(int64(len(b)), p.n-p.off)
	for i := range b[:k] {
		b[i] = byte((p.off + int64(i)) * 7 >> 3)
	}
	p.probe.advance(p.off, k)
	p.off += k
	return int(k), nil
}

// heapProbe records the peak HeapInuse, sampled every 8 MiB of traffic.
type heapProbe struct {
	base, peak uint64
	next       int64
}

func newHeapProbe() *heapProbe {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return &heapProbe{base: ms.HeapInuse, peak: ms.HeapInuse}
}

func (h *heapProbe) advance(off, k int64) {
	if off+k < h.next {
		return
	}
	h.next = off + k + 8<<20
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	h.peak = max(h.peak, ms.HeapInuse)
}

func (h *heapProbe) growth() uint64 { return h.peak - min(h.base, h.peak) }

type hashWriter struct {
	w     io.Writer
	off   int64
	probe *heapProbe
}

func (h *hashWriter) Write(b []byte) (int, error) {
	h.probe.advance(h.off, int64(len(b)))
	h.off += int64(len(b))
	return h.w.Write(b)
}

// TestLargeFileStreams moves 64 MiB each way and checks the heap stays far
// below the file size (no whole-body buffering on either side).
func TestLargeFileStreams(t *testing.T) {
	if testing.Short() {
		t.Skip("large transfer")
	}
	const size = 64 << 20
	const maxGrowth = 16 << 20
	e := newEnv(t, Options{})

	want := sha256.New()
	_, _ = io.Copy(want, &patternReader{n: size, probe: &heapProbe{next: 1 << 62}})

	probe := newHeapProbe()
	req, _ := http.NewRequest("PUT", e.srv.URL+"/v1/fs/file?path=big.bin", &patternReader{n: size, probe: probe})
	req.ContentLength = size
	res, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || string(body) != `{"path":"`+e.home+`/big.bin","bytesWritten":67108864}` {
		t.Fatalf("PUT: %d %s", res.StatusCode, body)
	}
	if g := probe.growth(); g > maxGrowth {
		t.Errorf("PUT heap grew by %d MiB for a %d MiB body", g>>20, size>>20)
	}
	putGrowth := probe.growth()

	probe = newHeapProbe()
	res, err = e.srv.Client().Get(e.srv.URL + "/v1/fs/file?path=big.bin")
	if err != nil {
		t.Fatal(err)
	}
	got := sha256.New()
	n, err := io.Copy(&hashWriter{w: got, probe: probe}, res.Body)
	res.Body.Close()
	if err != nil || n != size || res.ContentLength != size {
		t.Fatalf("GET: %d bytes, length %d, %v", n, res.ContentLength, err)
	}
	if string(got.Sum(nil)) != string(want.Sum(nil)) {
		t.Fatal("content mismatch")
	}
	if g := probe.growth(); g > maxGrowth {
		t.Errorf("GET heap grew by %d MiB for a %d MiB file", g>>20, size>>20)
	}
	t.Logf("peak heap growth for %d MiB: PUT %d KiB, GET %d KiB", size>>20, putGrowth>>10, probe.growth()>>10)
}
