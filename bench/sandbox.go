package main

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/coder/websocket"
)

// batchFileSize is the content size of each file in the upload-batch tar.
// Each entry takes 1 KiB of tar (512-byte header + one data block), so
// 2,000 files (2,049,024 bytes) is the largest round count that fits
// upstream's 2 MiB body cap; 10,000 files is 10 MiB.
const batchFileSize = 16

// smallTar builds a plain tar of n regular files of batchFileSize bytes.
func smallTar(n int) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	content := bytes.Repeat([]byte("0123456789abcde\n"), 1)[:batchFileSize]
	for i := range n {
		_ = tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("f%05d.txt", i), Mode: 0o644, Size: batchFileSize, Typeflag: tar.TypeReg, ModTime: time.Unix(1700000000, 0)})
		_, _ = tw.Write(content)
	}
	_ = tw.Close()
	return buf.Bytes()
}

// tarExtract times `tar -xf archive -C dir` into a fresh dir.
func tarExtract(ctx context.Context, archive, dir string) (time.Duration, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return 0, err
	}
	cctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	t0 := time.Now()
	out, err := exec.CommandContext(cctx, "tar", "-xf", archive, "-C", dir).CombinedOutput()
	d := time.Since(t0)
	if err != nil {
		return d, fmt.Errorf("tar -xf: %v %s", err, out)
	}
	return d, nil
}

// uploadBatch: POST /v1/fs/upload-batch of a tar of small files against
// `tar -xf` of the same archive on the same filesystem. 2,000 files (fits
// upstream's 2 MiB cap) on both; 10,000 files (10 MiB) where accepted.
func (b *bench) uploadBatch(ctx context.Context, in *instance) error {
	name := in.t.name
	c := newClient(1, time.Minute)
	defer closeClient(c)
	dir := filepath.Join(in.home, "batch")
	for _, n := range []int{2000, b.cfg.batchN} {
		key := fmt.Sprintf("batch.%d", n)
		arch := smallTar(n)
		label := fmt.Sprintf("%d × %d B files, %.2f MiB tar", n, batchFileSize, float64(len(arch))/(1<<20))
		af := filepath.Join(in.home, fmt.Sprintf("batch-%d.tar", n))
		if err := os.WriteFile(af, arch, 0o644); err != nil {
			return err
		}
		dt, err := tarExtract(ctx, af, filepath.Join(dir, fmt.Sprintf("tar-%d", n)))
		if err != nil {
			return err
		}
		b.res.add(name, key+".tar", "`tar -xf` of the same "+fmt.Sprint(n)+"-file archive, same filesystem and round", "files/s", neutral, float64(n)/dt.Seconds())
		u := in.base + "/v1/fs/upload-batch?path=" + url.QueryEscape(filepath.Join(dir, fmt.Sprintf("api-%d", n)))
		t0 := time.Now()
		st, resp, err := do(ctx, c, http.MethodPost, u, arch, "Content-Type", "application/x-tar")
		d := time.Since(t0)
		rowName := "POST /v1/fs/upload-batch, " + label
		if err != nil && len(arch) > 2<<20 && !isTimeout(err) {
			// Upstream may answer 413 and close before the body is sent.
			why := "connection closed while sending the body (2 MiB cap): " + err.Error()
			b.res.missing(name, key, rowName, "files/s", higherBetter, trunc([]byte(why)))
			continue
		}
		if err != nil {
			return err
		}
		if st == http.StatusNotFound {
			return errNotImplemented
		}
		if st != http.StatusOK {
			b.res.missing(name, key, rowName, "files/s", higherBetter, fmt.Sprintf("HTTP %d", st))
			b.res.missing(name, key+".vs.tar", "upload-batch "+fmt.Sprint(n)+" files: time ÷ `tar -xf` time", "×", lowerBetter, fmt.Sprintf("HTTP %d", st))
			continue
		}
		if got, err := countFiles(filepath.Join(dir, fmt.Sprintf("api-%d", n))); err != nil || got != n {
			return fmt.Errorf("upload-batch %d: %d files on disk (%v), response %s", n, got, err, trunc(resp))
		}
		b.res.add(name, key, rowName, "files/s", higherBetter, float64(n)/d.Seconds())
		b.res.add(name, key+".vs.tar", "upload-batch "+fmt.Sprint(n)+" files: time ÷ `tar -xf` time", "×", lowerBetter, d.Seconds()/dt.Seconds())
	}
	return os.RemoveAll(dir)
}

func countFiles(dir string) (int, error) {
	ents, err := os.ReadDir(dir)
	return len(ents), err
}

// ptyEcho: create `cat` with a PTY, attach the terminal WebSocket, then
// send one byte at a time and wait for the line discipline's echo.
func (b *bench) ptyEcho(ctx context.Context, in *instance) error {
	name := in.t.name
	c := newClient(1, 10*time.Second)
	defer closeClient(c)
	st, resp, err := do(ctx, c, http.MethodPost, in.base+"/v1/processes", []byte(`{"command":"cat","tty":true,"interactive":true}`), "Content-Type", "application/json")
	if err != nil {
		return err
	}
	if st == http.StatusNotFound {
		return errNotImplemented
	}
	var info struct {
		ID string `json:"id"`
	}
	if st != 200 || json.Unmarshal(resp, &info) != nil || info.ID == "" {
		return fmt.Errorf("create tty process: %d %s", st, trunc(resp))
	}
	defer func() {
		_, _, _ = do(context.Background(), c, http.MethodPost, in.base+"/v1/processes/"+info.ID+"/kill", nil)
		_, _, _ = do(context.Background(), c, http.MethodDelete, in.base+"/v1/processes/"+info.ID, nil)
	}()
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	ws, _, err := websocket.Dial(wctx, "ws://"+in.addr+"/v1/processes/"+info.ID+"/terminal/ws", nil)
	if err != nil {
		return fmt.Errorf("terminal ws: %w", err)
	}
	defer ws.CloseNow()
	// The ready frame comes first.
	for {
		typ, data, err := ws.Read(wctx)
		if err != nil {
			return fmt.Errorf("terminal ws ready: %w", err)
		}
		if typ == websocket.MessageText && bytes.Contains(data, []byte(`"ready"`)) {
			break
		}
	}
	n := b.cfg.ptyN
	frame := []byte(`{"type":"input","data":"x"}`)
	lat := make([]time.Duration, 0, n)
	for i := range n + n/10 {
		// Canonical mode: cat sees nothing until a newline, so only the
		// echo comes back; the line buffer (4095) is never filled.
		t0 := time.Now()
		if err := ws.Write(wctx, websocket.MessageText, frame); err != nil {
			return err
		}
		for {
			typ, data, err := ws.Read(wctx)
			if err != nil {
				return fmt.Errorf("terminal echo %d: %w", i, err)
			}
			if typ == websocket.MessageText {
				if bytes.Contains(data, []byte(`"error"`)) || bytes.Contains(data, []byte(`"exit"`)) {
					return fmt.Errorf("terminal: %s", trunc(data))
				}
				continue
			}
			if bytes.IndexByte(data, 'x') >= 0 {
				break
			}
		}
		if i >= n/10 {
			lat = append(lat, time.Since(t0))
		}
	}
	_ = ws.Write(wctx, websocket.MessageText, []byte(`{"type":"close"}`))
	b.latencies(name, "pty.echo", "PTY echo round trip over /v1/processes/{id}/terminal/ws (1 byte)", lat)
	return nil
}

// bigFile: PUT and GET of a large file (1 GiB) on ours, beside `cp` of the
// same file on the same filesystem, `cat file > /dev/null`, and the same
// bytes over a bare loopback socket into a file or a discarding reader (the
// limits of a network transfer, which is what PUT and GET are). Upstream
// caps request bodies at 2 MiB, so it is recorded as not available.
func bigFile(ctx context.Context, cfg *config, res *results, ours *target, tmp, agentBin string) error {
	size := cfg.bigSize
	label := fmt.Sprintf("%.0f MiB", float64(size)/(1<<20))
	if size >= 1<<30 {
		label = fmt.Sprintf("%.0f GiB", float64(size)/(1<<30))
	}
	why := "request bodies are capped at 2 MiB (PUT of 4 MiB → HTTP 413)"
	for _, k := range []string{"big.put", "big.get"} {
		res.missing("upstream", k, k, "MiB/s", higherBetter, why)
	}
	in, _, err := startServer(ctx, ours, tmp, agentBin)
	if err != nil {
		return err
	}
	defer in.stop()
	dir := filepath.Join(in.home, "big")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	src := filepath.Join(dir, "src.bin")
	if err := writeRandom(src, size); err != nil {
		return err
	}
	c := &http.Client{Timeout: 5 * time.Minute, Transport: &http.Transport{DisableCompression: true}}
	defer c.CloseIdleConnections()
	mib := float64(size) / (1 << 20)
	rate := func(d time.Duration) float64 { return mib / d.Seconds() }
	dst := filepath.Join(dir, "put.bin")
	u := in.base + "/v1/fs/file?path=" + url.QueryEscape(dst)
	for range cfg.bigN {
		if err := ctx.Err(); err != nil {
			return err
		}
		// cp first, so the source is equally warm in the page cache for both.
		cpDst := filepath.Join(dir, "cp.bin")
		t0 := time.Now()
		if out, err := exec.CommandContext(ctx, "cp", src, cpDst).CombinedOutput(); err != nil {
			return fmt.Errorf("cp: %v %s", err, out)
		}
		res.add("ours", "big.cp", "limit: `cp` of the same "+label+" file, same filesystem", "MiB/s", neutral, rate(time.Since(t0)))
		_ = os.Remove(cpDst)
		d, err := socketToFile(ctx, src, cpDst)
		if err != nil {
			return fmt.Errorf("loopback socket → file: %w", err)
		}
		res.add("ours", "big.sock2file", "limit: the same "+label+" file sent over a loopback TCP socket (sendfile) into a file (splice, then fsync as PUT does)", "MiB/s", neutral, rate(d))
		_ = os.Remove(cpDst)

		f, err := os.Open(src)
		if err != nil {
			return err
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodPut, u, f)
		req.ContentLength = size
		req.Header.Set("Content-Type", "application/octet-stream")
		t0 = time.Now()
		resp, err := c.Do(req)
		f.Close()
		if err != nil {
			return err
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		dp := time.Since(t0)
		if resp.StatusCode != 200 || !bytes.Contains(body, fmt.Appendf(nil, `"bytesWritten":%d`, size)) {
			return fmt.Errorf("big PUT: %d %s", resp.StatusCode, trunc(body))
		}
		res.add("ours", "big.put", "PUT /v1/fs/file "+label+" (write)", "MiB/s", higherBetter, rate(dp))

		t0 = time.Now()
		if out, err := exec.CommandContext(ctx, "sh", "-c", `cat "$1" > /dev/null`, "sh", dst).CombinedOutput(); err != nil {
			return fmt.Errorf("cat: %v %s", err, out)
		}
		res.add("ours", "big.cat", "limit: `cat` of the same "+label+" file to /dev/null", "MiB/s", neutral, rate(time.Since(t0)))
		d, err = socketToFile(ctx, dst, "")
		if err != nil {
			return fmt.Errorf("loopback socket → discard: %w", err)
		}
		res.add("ours", "big.sock2discard", "limit: the same "+label+" file sent over a loopback TCP socket (sendfile) into a discarding reader", "MiB/s", neutral, rate(d))

		req, _ = http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		t0 = time.Now()
		resp, err = c.Do(req)
		if err != nil {
			return err
		}
		n, err := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		dg := time.Since(t0)
		if err != nil || resp.StatusCode != 200 || n != size {
			return fmt.Errorf("big GET: %d, %d bytes, %v", resp.StatusCode, n, err)
		}
		res.add("ours", "big.get", "GET /v1/fs/file "+label+" (read, to a discarding client)", "MiB/s", higherBetter, rate(dg))
		_ = os.Remove(dst)
	}
	rss, err := statusBytes(in.pid, "VmHWM:")
	if err == nil {
		res.add("ours", "big.hwm", "server peak RSS (VmHWM) after the "+label+" PUTs and GETs", "B", lowerBetter, rss)
	}
	return nil
}

// socketToFile is the physical limit of an HTTP file transfer without
// HTTP: src is sent over a loopback TCP connection with sendfile(2) and
// received into dst with splice(2) (Go's zero-copy paths) and fsynced (PUT
// makes its file durable before answering, so the limit must too), or into
// io.Discard (the way the bench's HTTP client reads a GET) when dst is "".
// It returns the time from connect to the last byte stored.
func socketToFile(ctx context.Context, src, dst string) (time.Duration, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	type result struct {
		n   int64
		err error
	}
	got := make(chan result, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- result{err: err}
			return
		}
		defer c.Close()
		var w io.Writer = io.Discard
		if dst != "" {
			f, err := os.Create(dst)
			if err != nil {
				got <- result{err: err}
				return
			}
			defer f.Close()
			w = f
		}
		n, err := io.Copy(w, c)
		if f, ok := w.(*os.File); ok && err == nil {
			// PUT makes its file durable before it answers; so does the limit.
			err = f.Sync()
		}
		got <- result{n, err}
	}()
	f, err := os.Open(src)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	t0 := time.Now()
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", ln.Addr().String())
	if err != nil {
		return 0, err
	}
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	if _, err := io.Copy(c, f); err != nil {
		c.Close()
		return 0, err
	}
	c.Close()
	r := <-got
	if r.err == nil && r.n != fi.Size() {
		r.err = fmt.Errorf("received %d of %d bytes", r.n, fi.Size())
	}
	return time.Since(t0), r.err
}

// writeRandom writes size random bytes to path (1 MiB of randomness,
// repeated: incompressible enough for a filesystem without compression).
func writeRandom(path string, size int64) error {
	blk := make([]byte, 1<<20)
	_, _ = rand.Read(blk)
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	for left := size; left > 0; {
		n := min(left, int64(len(blk)))
		if _, err := f.Write(blk[:n]); err != nil {
			f.Close()
			return err
		}
		blk[0]++
		left -= n
	}
	return f.Close()
}
