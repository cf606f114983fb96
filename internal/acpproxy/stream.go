package acpproxy

import (
	"context"
	"errors"
	"sync"
	"time"
)

// entry is one published agent message. data is never mutated after
// publication, so readers may hold it outside the lock.
type entry struct {
	seq  uint64
	data []byte
}

// stream is an instance's ordered message log: a bounded replay ring plus
// the cursors of live readers. Publishing never overwrites a message a live
// reader has not been handed yet; instead it waits (backpressure on the
// agent's stdout) for at most slowReader, then cuts the laggards off so one
// stuck client cannot stall the agent forever. A cut reader resumes with
// Last-Event-ID; if the messages it missed have left the ring it receives an
// explicit gap notification, never a silent hole. A Last-Event-ID beyond the
// last message (the id was deleted and recreated, or the server restarted)
// is a reset: a gap notification, then everything retained.
//
// Ordering invariant (POST answers never overtake the stream): each reader
// reports the last seq it has flushed to its client (flushed, not just
// handed). A POST holding the response with seq n answers only once every
// live reader has flushed ≥ n, i.e. every reader has on the wire everything
// the agent wrote before (and including) that response. The wait is bounded
// by slowReader: a stalled reader delays an answer, never blocks it (and its
// own write deadline, the same timeout, cuts it off).
type stream struct {
	mu         sync.Mutex
	ring       []entry // grows by doubling up to size
	size       int     // replay capacity in messages
	count      int
	last       uint64
	bytes      int
	maxBytes   int
	slowReader time.Duration

	subs    map[*reader]struct{}
	dataCh  chan struct{} // closed on publish; nil when nobody waits
	spaceCh chan struct{} // closed when a reader advances; nil when nobody waits
	flushCh chan struct{} // closed when a reader flushes or leaves; nil when nobody waits
	closed  bool
	doneCh  chan struct{} // closed by close()
}

type reader struct {
	cursor  uint64        // last seq handed to this reader
	flushed uint64        // last seq this reader has flushed to its client
	cutCh   chan struct{} // closed when cut off for lagging
	cut     bool
	// abort, when set, fails the reader's pending and later writes at once
	// (it is cut off or the stream closed), so a client that stopped reading
	// does not hold its handler for a whole write deadline.
	abort func()
}

func newStream(size, maxBytes int, slowReader time.Duration) *stream {
	return &stream{
		ring:       make([]entry, min(size, initialRing)),
		size:       size,
		maxBytes:   maxBytes,
		slowReader: slowReader,
		subs:       map[*reader]struct{}{},
		doneCh:     make(chan struct{}),
	}
}

func (s *stream) oldestLocked() uint64 { return s.last - uint64(s.count) + 1 }

// errStreamClosed is returned by publish after close.
var errStreamClosed = errors.New("stream closed")

// publish appends data and returns its sequence number.
func (s *stream) publish(data []byte) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.publishLocked(data)
}

// publishBatch appends every message under one lock acquisition, so a
// burst read from the agent costs one lock and at most one reader wake-up.
func (s *stream) publishBatch(batch []outMsg) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range batch {
		seq, err := s.publishLocked(batch[i].data)
		if err != nil {
			return err
		}
		batch[i].seq = seq
	}
	return nil
}

// publishLocked appends data; s.mu is held (and released while waiting
// for a lagging reader).
func (s *stream) publishLocked(data []byte) (uint64, error) {
	var deadline time.Time
	if s.count == len(s.ring) && len(s.ring) < s.size {
		s.growLocked()
	}
	for s.count > 0 && (s.count == len(s.ring) || (s.maxBytes > 0 && s.bytes+len(data) > s.maxBytes)) {
		if s.closed {
			return 0, errStreamClosed
		}
		oldest := s.oldestLocked()
		if !s.neededLocked(oldest) {
			s.evictLocked()
			continue
		}
		if deadline.IsZero() {
			deadline = time.Now().Add(s.slowReader)
		}
		wait := time.Until(deadline)
		if wait <= 0 {
			s.cutLaggardsLocked(oldest)
			continue
		}
		if s.spaceCh == nil {
			s.spaceCh = make(chan struct{})
		}
		ch := s.spaceCh
		s.mu.Unlock()
		t := time.NewTimer(wait)
		select {
		case <-ch:
		case <-t.C:
		case <-s.doneCh:
		}
		t.Stop()
		s.mu.Lock()
	}
	if s.closed {
		return 0, errStreamClosed
	}
	s.last++
	s.ring[s.last%uint64(len(s.ring))] = entry{seq: s.last, data: data}
	s.count++
	s.bytes += len(data)
	if s.dataCh != nil {
		close(s.dataCh)
		s.dataCh = nil
	}
	return s.last, nil
}

// initialRing is the ring's starting size: an idle server keeps a small
// ring and only busy ones grow to the full replay capacity.
const initialRing = 64

// growLocked doubles the ring (up to size), moving entries to the slots
// their sequence numbers map to in the larger ring.
func (s *stream) growLocked() {
	next := make([]entry, min(2*len(s.ring), s.size))
	for seq := s.oldestLocked(); seq <= s.last && s.count > 0; seq++ {
		next[seq%uint64(len(next))] = s.ring[seq%uint64(len(s.ring))]
	}
	s.ring = next
}

func (s *stream) neededLocked(seq uint64) bool {
	for r := range s.subs {
		if r.cursor < seq {
			return true
		}
	}
	return false
}

func (s *stream) evictLocked() {
	i := s.oldestLocked() % uint64(len(s.ring))
	s.bytes -= len(s.ring[i].data)
	s.ring[i] = entry{}
	s.count--
}

func (s *stream) cutLaggardsLocked(seq uint64) {
	for r := range s.subs {
		if r.cursor < seq {
			r.cut = true
			close(r.cutCh)
			delete(s.subs, r)
			if r.abort != nil {
				r.abort()
			}
		}
	}
	s.wakeFlushWaitersLocked()
}

// subscribe registers a live reader positioned after lastID (0: from the
// oldest retained message). gap reports messages that left the ring, or a
// reset when lastID is beyond the last message (missed is then unknown: 0).
// abort (may be nil) is called, under the stream's lock, when the reader is
// cut off or the stream closes.
func (s *stream) subscribe(lastID uint64, hasLastID bool, abort func()) (r *reader, gap *gapInfo) {
	s.mu.Lock()
	defer s.mu.Unlock()
	oldest := s.oldestLocked()
	cursor := lastID
	switch {
	case hasLastID && cursor > s.last:
		// Ids from another incarnation of this server id: waiting for
		// them would deliver nothing, ever.
		gap = &gapInfo{after: cursor, next: oldest, reset: true}
		cursor = oldest - 1
	case !hasLastID || cursor+1 < oldest:
		if hasLastID && cursor < s.last && cursor+1 < oldest {
			gap = &gapInfo{after: cursor, next: oldest, missed: oldest - cursor - 1}
		}
		cursor = oldest - 1
	}
	r = &reader{cursor: cursor, flushed: cursor, cutCh: make(chan struct{}), abort: abort}
	if !s.closed {
		s.subs[r] = struct{}{}
	}
	return r, gap
}

type gapInfo struct {
	after, next, missed uint64
	reset               bool
}

func (s *stream) unsubscribe(r *reader) {
	s.mu.Lock()
	delete(s.subs, r)
	s.wakeWriterLocked()
	s.wakeFlushWaitersLocked()
	s.mu.Unlock()
}

// markFlushed records that r's client has been sent everything up to seq.
func (s *stream) markFlushed(r *reader, seq uint64) {
	s.mu.Lock()
	if seq > r.flushed {
		r.flushed = seq
		s.wakeFlushWaitersLocked()
	}
	s.mu.Unlock()
}

func (s *stream) wakeFlushWaitersLocked() {
	if s.flushCh != nil {
		close(s.flushCh)
		s.flushCh = nil
	}
}

// flushedLocked reports whether every live reader has flushed seq.
func (s *stream) flushedLocked(seq uint64) bool {
	if s.closed {
		return true
	}
	for r := range s.subs {
		if r.flushed < seq {
			return false
		}
	}
	return true
}

// waitFlushed returns once every live reader has flushed seq (see the
// ordering invariant), the slow-reader timeout passed, ctx ended or the
// stream closed.
func (s *stream) waitFlushed(ctx context.Context, seq uint64) {
	s.mu.Lock()
	if s.flushedLocked(seq) { // the common case: no reader, or it was quick
		s.mu.Unlock()
		return
	}
	s.mu.Unlock()
	t := time.NewTimer(s.slowReader)
	defer t.Stop()
	for {
		s.mu.Lock()
		if s.flushedLocked(seq) {
			s.mu.Unlock()
			return
		}
		if s.flushCh == nil {
			s.flushCh = make(chan struct{})
		}
		ch := s.flushCh
		s.mu.Unlock()
		select {
		case <-ch:
		case <-t.C:
			return
		case <-ctx.Done():
			return
		case <-s.doneCh:
			return
		}
	}
}

func (s *stream) wakeWriterLocked() {
	if s.spaceCh != nil {
		close(s.spaceCh)
		s.spaceCh = nil
	}
}

// next hands r up to max messages (and at most maxBytes, but at least one)
// after its cursor. With none available it returns a channel closed on the
// next publish.
func (s *stream) next(r *reader, dst []entry, max, maxBytes int) ([]entry, <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r.cut || s.closed {
		return dst, nil
	}
	if r.cursor < s.oldestLocked()-1 {
		// Only possible for readers positioned before the ring; subscribe
		// clamps, so treat as start of ring.
		r.cursor = s.oldestLocked() - 1
	}
	n := 0
	for r.cursor < s.last && len(dst) < max {
		e := s.ring[(r.cursor+1)%uint64(len(s.ring))]
		if len(dst) > 0 && n+len(e.data) > maxBytes {
			break
		}
		dst = append(dst, e)
		n += len(e.data)
		r.cursor++
	}
	if len(dst) > 0 {
		s.wakeWriterLocked()
		return dst, nil
	}
	if s.dataCh == nil {
		s.dataCh = make(chan struct{})
	}
	return dst, s.dataCh
}

// close ends every reader and refuses further publishes.
func (s *stream) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	s.closed = true
	close(s.doneCh)
	for r := range s.subs {
		if r.abort != nil {
			r.abort()
		}
	}
	s.wakeFlushWaitersLocked()
	if s.dataCh != nil {
		close(s.dataCh)
		s.dataCh = nil
	}
	s.wakeWriterLocked()
}
