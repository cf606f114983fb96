package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/sandbox-agent-go/sandbox-agent/multiplayer/backend"
)

// owner is a backend.Owner of a Backend.
type owner struct {
	b     *Backend
	actor backend.Actor
	gen   uint64

	lostOnce sync.Once
	lost     chan struct{}
}

var _ backend.Owner = (*owner)(nil)

func (o *owner) Actor() backend.Actor {
	a := o.actor
	a.Key = slices.Clone(a.Key)
	a.Input = cloneOrNil(a.Input)
	return a
}

func (o *owner) Generation() uint64    { return o.gen }
func (o *owner) Lost() <-chan struct{} { return o.lost }

// markLost closes Lost and forgets o in the registry.
func (o *owner) markLost() {
	o.lostOnce.Do(func() { close(o.lost) })
	o.b.mu.Lock()
	if o.b.owners[o.actor.ID] == o {
		delete(o.b.owners, o.actor.ID)
	}
	o.b.mu.Unlock()
}

func (o *owner) isLost() bool {
	select {
	case <-o.lost:
		return true
	default:
		return false
	}
}

func (o *owner) fenced() error {
	return fmt.Errorf("%w: actor %s generation %d", backend.ErrFenced, o.actor.ID, o.gen)
}

// write runs fn in a write transaction after checking, in that
// transaction, that o is still the live owner.
func (o *owner) write(ctx context.Context, op string, fn func(tx *sql.Tx) error) error {
	err := o.writeFenced(ctx, fn)
	if err != nil {
		return fmt.Errorf("sqlite backend: %s of actor %s: %w", op, o.actor.ID, err)
	}
	return nil
}

func (o *owner) writeFenced(ctx context.Context, fn func(tx *sql.Tx) error) error {
	if err := o.b.enter(); err != nil {
		return err
	}
	defer o.b.leave()
	if o.isLost() {
		return o.fenced()
	}
	return o.b.writeTx(ctx, func(tx *sql.Tx) error {
		var live uint64
		err := tx.StmtContext(ctx, o.b.st.fence).QueryRowContext(ctx, o.actor.ID).Scan(&live)
		if errors.Is(err, sql.ErrNoRows) {
			return o.fenced()
		}
		if err != nil {
			return err
		}
		if live != o.gen {
			return o.fenced()
		}
		return fn(tx)
	})
}

// read runs a query on the read pool.
func (o *owner) read(op string, fn func() error) error {
	if err := o.b.enter(); err != nil {
		return fmt.Errorf("sqlite backend: %s of actor %s: %w", op, o.actor.ID, err)
	}
	defer o.b.leave()
	if err := fn(); err != nil {
		return fmt.Errorf("sqlite backend: %s of actor %s: %w", op, o.actor.ID, err)
	}
	return nil
}

func (o *owner) LoadState(ctx context.Context) ([]byte, bool, error) {
	var state []byte
	found := true
	err := o.read("load state", func() error {
		err := o.b.st.loadState.QueryRowContext(ctx, o.actor.ID).Scan(&state)
		if errors.Is(err, sql.ErrNoRows) {
			found = false
			return nil
		}
		return err
	})
	if err != nil {
		return nil, false, err
	}
	if found && state == nil {
		state = []byte{}
	}
	return state, found, nil
}

func (o *owner) SaveState(ctx context.Context, state []byte) error {
	return o.write(ctx, "save state", func(tx *sql.Tx) error {
		_, err := tx.StmtContext(ctx, o.b.st.saveState).ExecContext(ctx, o.actor.ID, o.gen, nonNilBlob(state))
		return err
	})
}

func (o *owner) Append(ctx context.Context, name string, args json.RawMessage) (backend.Event, error) {
	ev := backend.Event{Name: name, Args: cloneOrNil(args), Generation: o.gen, Time: o.b.clock.Now().UTC()}
	err := o.write(ctx, "append", func(tx *sql.Tx) error {
		// Inside the write transaction: no other append between MAX and
		// INSERT (see sqlAppend).
		return tx.StmtContext(ctx, o.b.st.appendEvent).QueryRowContext(ctx, o.actor.ID, name, blobArg(ev.Args), o.gen, ev.Time.UnixNano()).Scan(&ev.Seq)
	})
	if err != nil {
		return backend.Event{}, err
	}
	return ev, nil
}

func (o *owner) Put(ctx context.Context, ns, key string, value []byte) error {
	return o.write(ctx, "put", func(tx *sql.Tx) error {
		_, err := tx.StmtContext(ctx, o.b.st.put).ExecContext(ctx, o.actor.ID, ns, key, nonNilBlob(value))
		return err
	})
}

func (o *owner) Get(ctx context.Context, ns, key string) ([]byte, error) {
	var v []byte
	err := o.read("get", func() error {
		err := o.b.st.kvGet.QueryRowContext(ctx, o.actor.ID, ns, key).Scan(&v)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("%w: key %q in %q", backend.ErrNotFound, key, ns)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	if v == nil {
		v = []byte{}
	}
	return v, nil
}

// Delete of a missing key is not an error.
func (o *owner) Delete(ctx context.Context, ns, key string) error {
	return o.write(ctx, "delete", func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM actor_kv WHERE actor_id = ? AND ns = ? AND key = ?`, o.actor.ID, ns, key)
		return err
	})
}

func (o *owner) List(ctx context.Context, ns, after string, limit int) ([]backend.Item, error) {
	if limit <= 0 {
		limit = -1 // SQLite: no limit
	}
	var items []backend.Item
	err := o.read("list", func() error {
		rows, err := o.b.r.QueryContext(ctx, `SELECT key, value FROM actor_kv WHERE actor_id = ? AND ns = ? AND key > ? ORDER BY key LIMIT ?`,
			o.actor.ID, ns, after, limit)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var it backend.Item
			if err := rows.Scan(&it.Key, &it.Value); err != nil {
				return err
			}
			if it.Value == nil {
				it.Value = []byte{}
			}
			items = append(items, it)
		}
		return rows.Err()
	})
	return items, err
}

// AddSchedule stores s for this actor; an empty s.ActorID means this actor.
func (o *owner) AddSchedule(ctx context.Context, s backend.Schedule) error {
	if s.ID == "" {
		return errors.New("sqlite backend: add schedule: empty schedule id")
	}
	if s.ActorID != "" && s.ActorID != o.actor.ID {
		return fmt.Errorf("sqlite backend: add schedule %s: it belongs to actor %s, not %s", s.ID, s.ActorID, o.actor.ID)
	}
	return o.write(ctx, "add schedule", func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO schedules (`+scheduleColumns+`) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (actor_id, id) DO UPDATE SET due_at = excluded.due_at, action = excluded.action, args = excluded.args`,
			o.actor.ID, s.ID, s.At.UnixNano(), s.Action, blobArg(s.Args))
		return err
	})
}

func (o *owner) CancelSchedule(ctx context.Context, id string) (bool, error) {
	return o.deleteSchedule(ctx, "cancel schedule", id)
}

func (o *owner) TakeSchedule(ctx context.Context, id string) (bool, error) {
	return o.deleteSchedule(ctx, "take schedule", id)
}

// deleteSchedule removes one schedule; two racing calls cannot both see
// it, because write transactions are serialised.
func (o *owner) deleteSchedule(ctx context.Context, op, id string) (bool, error) {
	var removed bool
	err := o.write(ctx, op, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM schedules WHERE actor_id = ? AND id = ?`, o.actor.ID, id)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		removed = n == 1
		return err
	})
	return removed, err
}

func (o *owner) Schedules(ctx context.Context) ([]backend.Schedule, error) {
	var ss []backend.Schedule
	err := o.read("schedules", func() error {
		var err error
		ss, err = scanSchedules(o.b.r.QueryContext(ctx, `SELECT `+scheduleColumns+` FROM schedules WHERE actor_id = ? ORDER BY due_at, id`, o.actor.ID))
		return err
	})
	return ss, err
}

// Release is idempotent, and a no-op for an Owner that is not live any
// more (so a stale Release never frees a newer Owner).
func (o *owner) Release(ctx context.Context) error {
	if o.isLost() {
		return nil
	}
	if err := o.b.enter(); err != nil {
		// Close released it.
		return nil
	}
	defer o.b.leave()
	err := o.b.writeTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `UPDATE actors SET owner_gen = 0 WHERE actor_id = ? AND owner_gen = ?`, o.actor.ID, o.gen)
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlite backend: release actor %s: %w", o.actor.ID, err)
	}
	o.markLost()
	return nil
}

// Destroy deletes everything the actor stored and frees its name and key;
// its id stays reserved.
func (o *owner) Destroy(ctx context.Context) error {
	err := o.write(ctx, "destroy", func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `UPDATE actors SET destroyed_at = ?, owner_gen = 0 WHERE actor_id = ?`,
			o.b.clock.Now().UnixNano(), o.actor.ID); err != nil {
			return err
		}
		for _, table := range []string{"actor_state", "actor_events", "actor_kv", "schedules"} {
			if _, err := tx.ExecContext(ctx, `DELETE FROM `+table+` WHERE actor_id = ?`, o.actor.ID); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	o.markLost()
	return nil
}

// nonNilBlob stores nil as an empty blob (NOT NULL columns).
func nonNilBlob(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}
