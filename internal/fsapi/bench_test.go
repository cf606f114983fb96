package fsapi

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
)

// repeatReader serves n bytes from a fixed buffer (cheap to generate, so
// the benchmark measures the server, not the client).
type repeatReader struct {
	buf []byte
	n   int64
}

func (r *repeatReader) Read(p []byte) (int, error) {
	if r.n <= 0 {
		return 0, io.EOF
	}
	k := copy(p[:min(int64(len(p)), r.n)], r.buf)
	r.n -= int64(k)
	return k, nil
}

// BenchmarkFile256MiB writes and reads a 256 MiB file through the full
// HTTP stack (loopback TCP). PUT includes the fsync that makes the atomic
// replace durable.
func BenchmarkFile256MiB(b *testing.B) {
	const size = 256 << 20
	e := newEnv(b, Options{})
	chunk := make([]byte, 1<<20)
	for i := range chunk {
		chunk[i] = byte(i * 31)
	}
	client := e.srv.Client()
	put := func(b *testing.B) {
		req, _ := http.NewRequest("PUT", e.srv.URL+"/v1/fs/file?path=big.bin", &repeatReader{buf: chunk, n: size})
		req.ContentLength = size
		res, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode != 200 {
			b.Fatal(res.Status)
		}
	}
	b.Run("put", func(b *testing.B) {
		b.SetBytes(size)
		for b.Loop() {
			put(b)
		}
	})
	b.Run("get", func(b *testing.B) {
		put(b)
		b.SetBytes(size)
		b.ResetTimer()
		for b.Loop() {
			res, err := client.Get(e.srv.URL + "/v1/fs/file?path=big.bin")
			if err != nil {
				b.Fatal(err)
			}
			n, _ := io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if n != size {
				b.Fatalf("read %d bytes", n)
			}
		}
	})
}

// BenchmarkUploadBatch10k extracts a tar of 10,000 small files (in 100
// directories) through POST /v1/fs/upload-batch.
func BenchmarkUploadBatch10k(b *testing.B) {
	const files = 10_000
	var entries []tarEntry
	for d := range 100 {
		entries = append(entries, dir(fmt.Sprintf("d%02d/", d)))
		for f := range files / 100 {
			entries = append(entries, file(fmt.Sprintf("d%02d/file%03d.txt", d, f), strings.Repeat("x", 100+f)))
		}
	}
	archive := makeTar(b, entries...)
	e := newEnv(b, Options{})
	client := e.srv.Client()
	b.SetBytes(int64(len(archive)))
	i := 0
	for b.Loop() {
		i++
		req, _ := http.NewRequest("POST", fmt.Sprintf("%s/v1/fs/upload-batch?path=up%d", e.srv.URL, i), strings.NewReader(string(archive)))
		req.Header.Set("Content-Type", "application/x-tar")
		res, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode != 200 {
			b.Fatal(res.Status)
		}
	}
	b.ReportMetric(float64(files*b.N)/b.Elapsed().Seconds(), "files/s")
}
