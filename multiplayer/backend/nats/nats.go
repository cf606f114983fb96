// Package natsbackend is the distributed driver of multiplayer/backend on
// NATS JetStream: many nodes share one NATS cluster, and JetStream's Raft
// provides the consensus (there is none of our own).
//
// Layout, for a Prefix p (default "mp"):
//
//   - KV p_actors, the registry: "n.<name>.<hash of canonical key>" and
//     "i.<actor id>" both hold the immutable actor record (the canonical key
//     inside detects a hash collision). Create is kv.Create.
//   - KV p_nodes, node leases: "<node>" = {node, epoch}, in a bucket whose
//     TTL is LeaseTTL, renewed every Renew by kv.Update(rev). (A per-key
//     TTL would be dropped by kv.Update, so the bucket TTL it is.) The
//     epoch is the revision that created the lease; a node that loses its
//     lease gets a new epoch, which kills every owner record naming the old.
//   - Stream p_data, one message per subject ("last value"), every actor
//     under p.d.<actor id>.>: .o the owner record {node, epoch, generation},
//     .s the state, .e.<seq> the durable events, .k.<ns>.<key> the items,
//     .t.<id> the schedules. A delete is a tombstone message.
//
// Fencing: every write of an Owner carries Nats-Expected-Last-Subject-
// Sequence with the subject p.d.<actor>.> — a compare-and-swap on the last
// sequence of the whole actor, which the Owner tracks. A Claim writes the
// owner record under the same check, so once another node has claimed, the
// old owner's next write fails at the stream leader whatever it writes,
// even if it was paused and never noticed its lease expiring. On that
// failure the Owner rereads the owner record: still its own (node, epoch,
// generation) — only the Owner itself wrote since, e.g. after a lost
// acknowledgement — it adopts the new sequence and retries once; otherwise
// it is fenced (ErrFenced, Lost closed). Separately, a node whose lease
// renewal fails, or cannot reach the servers for LeaseTTL minus a margin,
// fences itself before its lease can expire on the server, so by the time
// another node may claim, the old Owners have already been told.
//
// A lease is dead when it is gone from the bucket, names another epoch, or
// when this node has seen the same revision of it for LeaseTTL on its own
// monotonic clock (a watcher on the bucket sights every renewal as it
// happens). The last rule is what keeps failover at LeaseTTL: the server's
// age sweep, which removes expired leases, can run a second or two late.
// No clocks of different machines are compared.
//
// Reads that decide ownership or read an Owner's own data go to the stream
// leader (AllowDirect is off), so they see every acknowledged write.
//
// Costs: one stream subject per durable event (the server indexes each);
// List, Schedules and DueSchedules list subjects from the stream info and
// then get each value (bounded concurrency), so they are O(keys); a
// deleted item leaves a small tombstone until the actor is destroyed.
//
// Bus: requests on core subject p.rpc.<actor> (nats.ErrNoResponders is
// backend.ErrNoOwner), live messages on p.bc.<actor>.
package natsbackend

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sandbox-agent-go/sandbox-agent/multiplayer/backend"
)

// Options configure Open.
type Options struct {
	// URLs of the NATS servers; ignored when Conn is set.
	URLs []string
	// Conn is an existing connection to use (Close leaves it open).
	Conn *nats.Conn
	// NodeID names this node; default a random id. Two live processes must
	// not share one: the second cannot take the lease until the first's
	// expires.
	NodeID string
	// Replicas of every bucket and stream (default 1; 3 in production).
	Replicas int
	// LeaseTTL is how long a node lease outlives its last renewal (default
	// 10 s): the failover time after a crash.
	LeaseTTL time.Duration
	// Renew is the renewal period (default LeaseTTL/3).
	Renew time.Duration
	// Prefix names the subjects, buckets and streams (default "mp"; letters,
	// digits, '-' and '_'). Deployments sharing a NATS account need
	// distinct prefixes.
	Prefix string
	// Logger (default slog.Default()).
	Logger *slog.Logger
}

const (
	hdrOp      = "Mp-Op" // "del" on a tombstone
	hdrTimeout = "Mp-Timeout"
	opDelete   = "del"
)

// Backend is one node of a NATS deployment. It implements backend.Backend.
type Backend struct {
	opts    Options
	log     *slog.Logger
	nc      *nats.Conn
	ownConn bool
	js      jetstream.JetStream
	reg     jetstream.KeyValue
	nodes   jetstream.KeyValue
	data    jetstream.Stream
	node    string // NodeID
	nodeKey string // NodeID as a KV key
	margin  time.Duration
	bus     *bus

	mu        sync.Mutex
	epoch     uint64        // lease epoch; 0 while the lease is not held
	leaseRev  uint64        // last revision of our lease
	leaseSent time.Time     // when the write that took the lease was sent
	leaseUp   chan struct{} // closed while the lease is held
	owners    map[string]*owner
	closed    bool

	seenMu sync.Mutex
	seen   map[string]sighting // lease key → first sighting of its last revision

	stop chan struct{}
	wg   sync.WaitGroup

	// Fault hooks for tests (export_test.go): blockRenew makes renewals not
	// happen, as if the process were paused; noSelfFence keeps a node that
	// missed its deadline believing it still owns its actors, so only the
	// stream-side fencing stands between it and the data.
	blockRenew  atomic.Bool
	noSelfFence atomic.Bool
}

var _ backend.Backend = (*Backend)(nil)

// Open connects (unless o.Conn is given), creates or binds the buckets and
// the stream, and takes this node's lease. It retries while JetStream is
// not ready yet (a forming cluster) until ctx is done.
func Open(ctx context.Context, o Options) (*Backend, error) {
	if o.Replicas <= 0 {
		o.Replicas = 1
	}
	if o.LeaseTTL <= 0 {
		o.LeaseTTL = 10 * time.Second
	}
	if o.Renew <= 0 || o.Renew >= o.LeaseTTL {
		o.Renew = o.LeaseTTL / 3
	}
	if o.Prefix == "" {
		o.Prefix = "mp"
	}
	if escapeToken(o.Prefix) != o.Prefix {
		return nil, fmt.Errorf("natsbackend: prefix %q: only letters, digits, '-' and '_'", o.Prefix)
	}
	if o.NodeID == "" {
		o.NodeID = newID()
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	b := &Backend{
		opts:    o,
		log:     o.Logger.With("node", o.NodeID),
		node:    o.NodeID,
		nodeKey: escapeToken(o.NodeID),
		// The node stops trusting its lease this long before the server
		// may expire it; it covers the time to tell the actors.
		margin:  o.LeaseTTL / 5,
		leaseUp: make(chan struct{}),
		owners:  map[string]*owner{},
		seen:    map[string]sighting{},
		stop:    make(chan struct{}),
	}
	b.bus = &bus{b: b, serves: map[*serving]struct{}{}}
	if o.Conn != nil {
		b.nc = o.Conn
	} else {
		url := nats.DefaultURL
		if len(o.URLs) > 0 {
			url = joinURLs(o.URLs)
		}
		nc, err := nats.Connect(url, nats.Name("multiplayer "+o.NodeID), nats.MaxReconnects(-1))
		if err != nil {
			return nil, fmt.Errorf("natsbackend: connect: %w", err)
		}
		b.nc, b.ownConn = nc, true
	}
	js, err := jetstream.New(b.nc)
	if err != nil {
		b.closeConn()
		return nil, fmt.Errorf("natsbackend: jetstream: %w", err)
	}
	b.js = js
	if err := retry(ctx, b.ensure); err != nil {
		b.closeConn()
		return nil, err
	}
	if err := retry(ctx, b.acquire); err != nil {
		b.closeConn()
		return nil, err
	}
	b.wg.Add(2)
	go b.leaseLoop()
	go b.watchLeases()
	return b, nil
}

func joinURLs(urls []string) string {
	s := ""
	for i, u := range urls {
		if i > 0 {
			s += ","
		}
		s += u
	}
	return s
}

// retry runs f until it succeeds or ctx is done; JetStream answers "not
// available", or nothing at all, for a few seconds while a cluster elects
// its leaders, so each attempt gets at most 2 s.
func retry(ctx context.Context, f func(context.Context) error) error {
	wait := 50 * time.Millisecond
	for {
		actx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := f(actx)
		cancel()
		if err == nil {
			return nil
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("natsbackend: %w (last error: %w)", ctx.Err(), err)
		case <-t.C:
		}
		wait = min(wait*2, time.Second)
	}
}

func (b *Backend) closeConn() {
	if b.ownConn {
		b.nc.Close()
	}
}

func (b *Backend) streamName() string { return b.opts.Prefix + "_data" }
func (b *Backend) actorFilter(id string) string {
	return b.opts.Prefix + ".d." + id + ".>"
}
func (b *Backend) subj(id, rest string) string { return b.opts.Prefix + ".d." + id + "." + rest }

// ensure creates or binds the buckets and the data stream, all with
// AllowDirect off: direct gets may be answered by a lagging replica, and
// these reads decide ownership.
func (b *Backend) ensure(ctx context.Context) error {
	var err error
	if b.reg, err = b.ensureKV(ctx, jetstream.KeyValueConfig{
		Bucket: b.opts.Prefix + "_actors", History: 1, Replicas: b.opts.Replicas, Storage: jetstream.FileStorage,
	}); err != nil {
		return err
	}
	if b.nodes, err = b.ensureKV(ctx, jetstream.KeyValueConfig{
		Bucket: b.opts.Prefix + "_nodes", History: 1, Replicas: b.opts.Replicas, TTL: b.opts.LeaseTTL,
		Storage: jetstream.FileStorage,
	}); err != nil {
		return err
	}
	if st, err := b.nodes.Status(ctx); err == nil && st.TTL() != b.opts.LeaseTTL {
		b.log.Warn("natsbackend: the lease bucket has another TTL; it wins", "bucket_ttl", st.TTL(), "lease_ttl", b.opts.LeaseTTL)
	}
	cfg := jetstream.StreamConfig{
		Name:              b.streamName(),
		Subjects:          []string{b.opts.Prefix + ".d.>"},
		MaxMsgsPerSubject: 1,
		Storage:           jetstream.FileStorage,
		Replicas:          b.opts.Replicas,
		Discard:           jetstream.DiscardOld,
		AllowDirect:       false,
	}
	b.data, err = b.js.CreateStream(ctx, cfg)
	if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		b.data, err = b.js.Stream(ctx, cfg.Name)
	}
	if err != nil {
		return fmt.Errorf("natsbackend: stream %s: %w", cfg.Name, err)
	}
	return nil
}

func (b *Backend) ensureKV(ctx context.Context, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	_, err := b.js.CreateKeyValue(ctx, cfg)
	if err != nil && !errors.Is(err, jetstream.ErrBucketExists) {
		return nil, fmt.Errorf("natsbackend: bucket %s: %w", cfg.Bucket, err)
	}
	s, err := b.js.Stream(ctx, "KV_"+cfg.Bucket)
	if err != nil {
		return nil, fmt.Errorf("natsbackend: bucket %s: %w", cfg.Bucket, err)
	}
	if sc := s.CachedInfo().Config; sc.AllowDirect {
		sc.AllowDirect = false
		if _, err := b.js.UpdateStream(ctx, sc); err != nil {
			return nil, fmt.Errorf("natsbackend: bucket %s: turn off direct gets: %w", cfg.Bucket, err)
		}
	}
	kv, err := b.js.KeyValue(ctx, cfg.Bucket)
	if err != nil {
		return nil, fmt.Errorf("natsbackend: bucket %s: %w", cfg.Bucket, err)
	}
	return kv, nil
}

// NodeID names this node.
func (b *Backend) NodeID() string { return b.node }

// Bus returns the node's bus.
func (b *Backend) Bus() backend.Bus { return b.bus }

// Close releases every Owner of this node, stops serving, and gives up the
// lease so that other nodes may claim at once.
func (b *Backend) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	owners := make([]*owner, 0, len(b.owners))
	for _, o := range b.owners {
		owners = append(owners, o)
	}
	b.mu.Unlock()
	close(b.stop)
	b.wg.Wait()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, o := range owners {
		if err := o.Release(ctx); err != nil {
			b.log.Warn("natsbackend: release on close", "actor", o.a.ID, "err", err)
		}
	}
	b.bus.close()
	b.mu.Lock()
	rev, held := b.leaseRev, b.epoch != 0
	b.epoch = 0
	b.mu.Unlock()
	if held {
		if err := b.nodes.Delete(ctx, b.nodeKey, jetstream.LastRevision(rev)); err != nil {
			b.log.Warn("natsbackend: drop lease on close", "err", err)
		}
	}
	b.closeConn()
	return nil
}

func (b *Backend) isClosed() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.closed
}

// isWrongLastSeq: the compare-and-swap failed. R1 and R>1 streams report it
// with different codes.
func isWrongLastSeq(err error) bool {
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) {
		return false
	}
	return apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant
}

// lastMsg reads the last message on subj (a wildcard is allowed) from the
// stream leader; nil when there is none.
func (b *Backend) lastMsg(ctx context.Context, subj string) (*jetstream.RawStreamMsg, error) {
	m, err := b.data.GetLastMsgForSubject(ctx, subj)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("natsbackend: read %s: %w", subj, err)
	}
	return m, nil
}

// value reads a last-value subject: nil when absent or a tombstone.
func (b *Backend) value(ctx context.Context, subj string) (*jetstream.RawStreamMsg, error) {
	m, err := b.lastMsg(ctx, subj)
	if err != nil || m == nil || m.Header.Get(hdrOp) == opDelete {
		return nil, err
	}
	return m, nil
}

// subjects lists the subjects matching filter that hold a message
// (tombstones included) — from the stream leader.
func (b *Backend) subjects(ctx context.Context, filter string) ([]string, error) {
	info, err := b.data.Info(ctx, jetstream.WithSubjectFilter(filter))
	if err != nil {
		return nil, fmt.Errorf("natsbackend: list %s: %w", filter, err)
	}
	out := make([]string, 0, len(info.State.Subjects))
	for s := range info.State.Subjects {
		out = append(out, s)
	}
	return out, nil
}

// values reads the values of subjs concurrently (bounded), in subjs'
// order; tombstones and vanished subjects come back nil.
func (b *Backend) values(ctx context.Context, subjs []string) ([]*jetstream.RawStreamMsg, error) {
	out := make([]*jetstream.RawStreamMsg, len(subjs))
	errs := make([]error, len(subjs))
	sem := make(chan struct{}, 16)
	var wg sync.WaitGroup
	for i, s := range subjs {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return nil, ctx.Err()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			out[i], errs[i] = b.value(ctx, s)
		}()
	}
	wg.Wait()
	return out, errors.Join(errs...)
}

// Events reads durable events with Seq > after: they sit on subjects
// p.d.<actor>.e.<seq>, so each is one get by subject.
func (b *Backend) Events(ctx context.Context, actorID string, after uint64, limit int) ([]backend.Event, error) {
	if b.isClosed() {
		return nil, errClosed
	}
	if !validID(actorID) {
		return nil, fmt.Errorf("natsbackend: actor %q: %w", actorID, backend.ErrNotFound)
	}
	if limit <= 0 {
		limit = 100
	}
	last, err := b.lastEventSeq(ctx, actorID)
	if err != nil {
		return nil, err
	}
	if last <= after {
		return []backend.Event{}, nil
	}
	n := min(uint64(limit), last-after)
	subjs := make([]string, n)
	for i := range subjs {
		subjs[i] = b.subj(actorID, fmt.Sprintf("e.%d", after+1+uint64(i)))
	}
	msgs, err := b.values(ctx, subjs)
	if err != nil {
		return nil, err
	}
	out := make([]backend.Event, 0, n)
	for i, m := range msgs {
		if m == nil {
			// Purged under us (the actor was destroyed): stop at the gap
			// rather than return a sequence with a hole.
			break
		}
		e, err := decodeEvent(after+1+uint64(i), m.Data)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}

func (b *Backend) lastEventSeq(ctx context.Context, actorID string) (uint64, error) {
	m, err := b.lastMsg(ctx, b.subj(actorID, "e.>"))
	if err != nil || m == nil {
		return 0, err
	}
	var seq uint64
	prefix := b.subj(actorID, "e.")
	if _, err := fmt.Sscanf(m.Subject[len(prefix):], "%d", &seq); err != nil {
		return 0, fmt.Errorf("natsbackend: event subject %s: %w", m.Subject, err)
	}
	return seq, nil
}

type eventBody struct {
	Name string          `json:"n"`
	Args json.RawMessage `json:"a"`
	Gen  uint64          `json:"g"`
	Time time.Time       `json:"t"`
}

func decodeEvent(seq uint64, data []byte) (backend.Event, error) {
	var e eventBody
	if err := json.Unmarshal(data, &e); err != nil {
		return backend.Event{}, fmt.Errorf("natsbackend: event %d: %w", seq, err)
	}
	return backend.Event{Seq: seq, Name: e.Name, Args: e.Args, Generation: e.Gen, Time: e.Time}, nil
}

// DueSchedules scans every actor's schedules (p.d.*.t.*): O(schedules).
func (b *Backend) DueSchedules(ctx context.Context, now time.Time, limit int) ([]backend.Schedule, error) {
	if b.isClosed() {
		return nil, errClosed
	}
	subjs, err := b.subjects(ctx, b.opts.Prefix+".d.*.t.*")
	if err != nil {
		return nil, err
	}
	all, err := b.readSchedules(ctx, subjs)
	if err != nil {
		return nil, err
	}
	out := all[:0]
	for _, s := range all {
		if !s.At.After(now) {
			out = append(out, s)
		}
	}
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}
