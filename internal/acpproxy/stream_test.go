package acpproxy

import (
	"testing"
	"time"
)

func TestStreamBackpressureAndCutOff(t *testing.T) {
	s := newStream(4, 0, 20*time.Millisecond)
	slow, _ := s.subscribe(0, false, nil)
	fast, _ := s.subscribe(0, false, nil)
	for i := range 4 {
		if seq, err := s.publish([]byte{byte(i)}); err != nil || seq != uint64(i+1) {
			t.Fatalf("publish %d: %d %v", i, seq, err)
		}
	}
	// The fast reader drains; the slow one never reads. The fifth publish
	// must wait for the slow reader, then cut it off rather than overwrite
	// a message it has not seen.
	got, _ := s.next(fast, nil, 10, 1<<20)
	if len(got) != 4 {
		t.Fatalf("fast got %d", len(got))
	}
	if seq, err := s.publish([]byte{4}); err != nil || seq != 5 {
		t.Fatalf("publish 5: %d %v", seq, err)
	}
	select {
	case <-slow.cutCh:
	default:
		t.Fatal("slow reader should be cut off")
	}
	if b, wait := s.next(slow, nil, 10, 1<<20); len(b) != 0 || wait != nil {
		t.Fatal("a cut reader gets nothing more")
	}
	// The fast reader is not affected and sees 5 next.
	if got, _ := s.next(fast, nil, 10, 1<<20); len(got) != 1 || got[0].seq != 5 {
		t.Fatalf("fast after cut: %+v", got)
	}
	// Resuming the slow reader from where it was reports the gap.
	_, gap := s.subscribe(0, true, nil)
	if gap == nil || gap.after != 0 || gap.next != 2 || gap.missed != 1 {
		t.Fatalf("gap %+v", gap)
	}
	s.close()
	if _, err := s.publish([]byte{9}); err == nil {
		t.Fatal("publish after close")
	}
}

func TestStreamReaderWakesWriter(t *testing.T) {
	s := newStream(2, 0, time.Hour)
	r, _ := s.subscribe(0, false, nil)
	s.publish([]byte("a"))
	s.publish([]byte("b"))
	done := make(chan uint64)
	go func() {
		seq, _ := s.publish([]byte("c")) // blocks: r has read nothing
		done <- seq
	}()
	got, _ := s.next(r, nil, 1, 1<<20) // reading one frees one slot
	if len(got) != 1 {
		t.Fatal(got)
	}
	if seq := <-done; seq != 3 {
		t.Fatal(seq)
	}
	s.close()
}

func BenchmarkStreamPublishNext(b *testing.B) {
	s := newStream(1024, 0, time.Hour)
	r, _ := s.subscribe(0, false, nil)
	msg := []byte(`{"jsonrpc":"2.0","method":"session/update","params":{"sessionId":"s","update":{"sessionUpdate":"agent_message_chunk","content":{"type":"text","text":"hello"}}}}`)
	buf := make([]entry, 0, maxBatch)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		s.publish(msg)
		if i%256 == 255 {
			buf, _ = s.next(r, buf[:0], maxBatch, maxBatchBytes)
		}
	}
}

func TestStreamRingGrowsToReplayCapacity(t *testing.T) {
	s := newStream(1024, 0, time.Hour)
	if len(s.ring) != initialRing {
		t.Fatalf("an idle stream starts small: %d", len(s.ring))
	}
	for i := range 1500 {
		if _, err := s.publish([]byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if len(s.ring) != 1024 {
		t.Fatalf("ring %d, want the full replay capacity", len(s.ring))
	}
	// A new reader replays exactly the newest 1024, in order.
	r, gap := s.subscribe(0, false, nil)
	if gap != nil {
		t.Fatal("no gap without Last-Event-ID")
	}
	got, _ := s.next(r, nil, 2000, 1<<20)
	if len(got) != 1024 || got[0].seq != 477 || got[1023].seq != 1500 {
		t.Fatalf("replayed %d from %d", len(got), got[0].seq)
	}
	for i, e := range got {
		if e.seq != uint64(477+i) || e.data[0] != byte(476+i) {
			t.Fatalf("entry %d: seq %d data %d", i, e.seq, e.data[0])
		}
	}
	s.close()
}
