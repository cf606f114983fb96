//go:build unix

package fakesandbox

import (
	"net/http"
	"strconv"
	"sync"
	"time"
)

// Fault is a canned vendor failure.
type Fault struct {
	Status int
	// RetryAfter, when positive, is sent as Retry-After in whole seconds
	// (vendors' 429).
	RetryAfter time.Duration
	// Body is written as is with ContentType (default application/json).
	Body        string
	ContentType string
}

// Request is one entry of the request log.
type Request struct {
	Method, Path string
	Header       http.Header
	Status       int // the status the fault answered with; 0 when passed on
}

// Faults is middleware a vendor fake wraps its API in: it fails the next
// requests with queued faults and logs every request for assertions. The
// zero value passes everything through. Safe for concurrent use.
type Faults struct {
	mu    sync.Mutex
	queue []Fault
	log   []Request
}

// FailNext makes the next n requests answer with f.
func (fs *Faults) FailNext(n int, f Fault) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	for range n {
		fs.queue = append(fs.queue, f)
	}
}

// Log returns the requests seen so far.
func (fs *Faults) Log() []Request {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return append([]Request(nil), fs.log...)
}

// Wrap returns h behind the fault queue and request log.
func (fs *Faults) Wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fs.mu.Lock()
		entry := Request{Method: r.Method, Path: r.URL.Path, Header: r.Header.Clone()}
		var f *Fault
		if len(fs.queue) > 0 {
			f = &fs.queue[0]
			fs.queue = fs.queue[1:]
			entry.Status = f.Status
		}
		fs.log = append(fs.log, entry)
		fs.mu.Unlock()
		if f == nil {
			h.ServeHTTP(w, r)
			return
		}
		ct := f.ContentType
		if ct == "" {
			ct = "application/json"
		}
		w.Header().Set("Content-Type", ct)
		if f.RetryAfter > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(int((f.RetryAfter+time.Second-1)/time.Second)))
		}
		w.WriteHeader(f.Status)
		_, _ = w.Write([]byte(f.Body))
	})
}
