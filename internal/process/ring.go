package process

import (
	"sort"
	"sync"
	"sync/atomic"
)

// streamKind is the stream an output chunk was read from.
type streamKind uint8

const (
	streamStdout streamKind = 1 << iota
	streamStderr
	streamPTY
)

func (s streamKind) String() string {
	switch s {
	case streamStdout:
		return "stdout"
	case streamStderr:
		return "stderr"
	case streamPTY:
		return "pty"
	}
	return "combined"
}

// filter selects streams; "combined" is stdout|stderr.
type filter uint8

const (
	filterStdout   = filter(streamStdout)
	filterStderr   = filter(streamStderr)
	filterCombined = filter(streamStdout | streamStderr)
	filterPTY      = filter(streamPTY)
)

func (f filter) match(s streamKind) bool { return filter(s)&f != 0 }

func (f filter) String() string {
	switch f {
	case filterStdout:
		return "stdout"
	case filterStderr:
		return "stderr"
	case filterPTY:
		return "pty"
	}
	return "combined"
}

func parseFilter(s string) (filter, bool) {
	switch s {
	case "stdout":
		return filterStdout, true
	case "stderr":
		return filterStderr, true
	case "combined":
		return filterCombined, true
	case "pty":
		return filterPTY, true
	}
	return 0, false
}

// entry is one read chunk. data is never modified after append, so readers
// share it without copying.
type entry struct {
	seq    uint64
	ts     int64
	stream streamKind
	data   []byte
}

// entryOverhead approximates the memory an entry costs besides its data; the
// entry count is capped so tiny chunks cannot blow the memory bound.
const entryOverhead = 64

// ring is a process's log buffer: entries with a per-process sequence shared
// across streams, total data bytes at most limit, oldest evicted first. A
// single chunk larger than the limit is dropped (its sequence is consumed).
type ring struct {
	mu         sync.Mutex
	buf        []entry // live entries are buf[head:]
	head       int
	bytes      uint64
	limit      uint64
	maxEntries int
	last       uint64
	notify     chan struct{} // closed on the next append once handed out
	watched    bool
	acct       *atomic.Int64 // once retired: the exited-log total this ring's bytes count in
	dropped    bool          // released by the exited-log budget: empty for good
}

func newRing(limit uint64) *ring {
	maxEntries := 1024
	if n := limit / entryOverhead; n > uint64(maxEntries) {
		maxEntries = int(min(n, 1<<24))
	}
	return &ring{limit: limit, maxEntries: maxEntries, notify: make(chan struct{})}
}

func (r *ring) count() int { return len(r.buf) - r.head }

func (r *ring) append(s streamKind, chunk []byte, ts int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.last++
	before := r.bytes
	if n := uint64(len(chunk)); n <= r.limit && !r.dropped {
		for r.count() > 0 && (r.bytes+n > r.limit || r.count() >= r.maxEntries) {
			r.bytes -= uint64(len(r.buf[r.head].data))
			r.buf[r.head] = entry{}
			r.head++
		}
		if r.head >= 1024 && r.head*2 >= len(r.buf) {
			k := copy(r.buf, r.buf[r.head:])
			clear(r.buf[k:])
			r.buf, r.head = r.buf[:k], 0
		}
		data := make([]byte, len(chunk))
		copy(data, chunk)
		r.buf = append(r.buf, entry{seq: r.last, ts: ts, stream: s, data: data})
		r.bytes += n
	}
	if r.acct != nil && r.bytes != before {
		r.acct.Add(int64(r.bytes) - int64(before))
	}
	if r.watched {
		close(r.notify)
		r.notify, r.watched = make(chan struct{}), false
	}
}

// account makes the ring's bytes count in total from now on.
func (r *ring) account(total *atomic.Int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.acct == nil && !r.dropped {
		r.acct = total
		total.Add(int64(r.bytes))
	}
}

// unaccount stops counting the ring in its total (it was deleted).
func (r *ring) unaccount() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.acct != nil {
		r.acct.Add(-int64(r.bytes))
		r.acct = nil
	}
}

// release frees every entry for good: later reads are empty and later
// appends only consume sequences.
func (r *ring) release() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.acct != nil {
		r.acct.Add(-int64(r.bytes))
		r.acct = nil
	}
	r.buf, r.head, r.bytes, r.dropped = nil, 0, 0, true
}

// isDropped reports whether release ran.
func (r *ring) isDropped() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.dropped
}

// lastSeq is the sequence of the newest chunk (0 before any).
func (r *ring) lastSeq() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.last
}

// wait returns a channel closed by the next append.
func (r *ring) wait() <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.watched = true
	return r.notify
}

// read returns, in order, up to maxN entries (and about maxBytes of data,
// at least one entry) with sequence > after that match f, and the cursor to
// continue from: every sequence <= next has been considered.
func (r *ring) read(after uint64, f filter, maxN, maxBytes int) (out []entry, next uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	live := r.buf[r.head:]
	i := sort.Search(len(live), func(i int) bool { return live[i].seq > after })
	next = max(r.last, after)
	size := 0
	for ; i < len(live); i++ {
		e := live[i]
		if !f.match(e.stream) {
			continue
		}
		if len(out) >= maxN || (len(out) > 0 && size+len(e.data) > maxBytes) {
			next = e.seq - 1
			break
		}
		out = append(out, e)
		size += len(e.data)
	}
	return out, next
}

// tail returns the last n entries with sequence > after that match f, and
// the cursor to continue from.
func (r *ring) tail(after uint64, f filter, n uint64) (out []entry, next uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	next = max(r.last, after)
	live := r.buf[r.head:]
	var picked []entry
	for i := len(live) - 1; i >= 0 && uint64(len(picked)) < n; i-- {
		e := live[i]
		if e.seq <= after {
			break
		}
		if f.match(e.stream) {
			picked = append(picked, e)
		}
	}
	out = make([]entry, len(picked))
	for i, e := range picked {
		out[len(picked)-1-i] = e
	}
	return out, next
}
