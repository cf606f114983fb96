package multiplayer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Defaults of Options, Rivet's where Rivet has one.
const (
	DefaultSleepTimeout      = 30 * time.Second
	DefaultSleepGrace        = 15 * time.Second
	DefaultStateSaveInterval = time.Second
	DefaultActionTimeout     = 60 * time.Second
	DefaultHookTimeout       = 5 * time.Second
)

// Options tune one actor definition. Zero values take the defaults above.
type Options struct {
	// SleepTimeout: an actor with no connection, no action in flight and no
	// KeepAwake sleeps after this long (negative: never sleeps).
	SleepTimeout time.Duration
	// SleepGrace bounds OnSleep/OnDestroy; the state is saved after it
	// anyway.
	SleepGrace time.Duration
	// StateSaveInterval throttles state saves: the state is written at most
	// once per interval after turns that changed it, and at sleep.
	StateSaveInterval time.Duration
	// ActionTimeout bounds one action; the caller then gets
	// actor.action_timed_out. A turn that overruns keeps the actor busy
	// until it returns: Go cannot preempt it, so its ctx is cancelled.
	ActionTimeout time.Duration
	// HookTimeout bounds CreateVars, OnWake, OnBeforeConnect and
	// OnConnect.
	HookTimeout time.Duration
}

func (o Options) withDefaults() Options {
	if o.SleepTimeout == 0 {
		o.SleepTimeout = DefaultSleepTimeout
	}
	if o.SleepGrace <= 0 {
		o.SleepGrace = DefaultSleepGrace
	}
	if o.StateSaveInterval <= 0 {
		o.StateSaveInterval = DefaultStateSaveInterval
	}
	if o.ActionTimeout <= 0 {
		o.ActionTimeout = DefaultActionTimeout
	}
	if o.HookTimeout <= 0 {
		o.HookTimeout = DefaultHookTimeout
	}
	return o
}

// Def defines an actor type: the Go counterpart of rivetkit's actor({...}).
// S is the persisted state (JSON-encoded), V the per-wake variables (never
// persisted: SDK clients, subscriptions).
type Def[S, V any] struct {
	// Name is the actor type clients address (client.<name>.getOrCreate).
	Name string
	// CreateState runs once, when the actor is created; input is what the
	// creator passed (nil when nothing). Without it the state starts as S's
	// zero value.
	CreateState func(c *InitCtx, input json.RawMessage) (S, error)
	// CreateVars runs at every wake, before OnWake.
	CreateVars func(c *Ctx[S, V]) (V, error)
	// OnWake runs at every wake, after CreateVars.
	OnWake func(c *Ctx[S, V]) error
	// OnSleep runs when the actor goes to sleep. Best effort: a crash or a
	// kill skips it; never rely on it for durability.
	OnSleep func(c *Ctx[S, V]) error
	// OnDestroy runs when the actor is destroyed.
	OnDestroy func(c *Ctx[S, V]) error
	// OnBeforeConnect authorises a connection from its params (rivetkit's
	// connection params); an error rejects it and reaches the client.
	OnBeforeConnect func(c *Ctx[S, V], params json.RawMessage) error
	// OnConnect and OnDisconnect see connections come and go.
	OnConnect    func(c *Ctx[S, V], conn *Conn) error
	OnDisconnect func(c *Ctx[S, V], conn *Conn)
	// Actions by name; build them with Action or Long.
	Actions map[string]ActionFunc[S, V]
	// Options tune this actor type (timeouts, sleep, save throttle).
	Options Options
}

// ActionFunc is one action of a Def; see Action and Long.
type ActionFunc[S, V any] struct {
	long bool
	turn func(c *Ctx[S, V], args json.RawMessage) (any, error)
	run  func(c *AsyncCtx[S, V], args json.RawMessage) (any, error)
}

// Action is an action that runs as a turn: serialised with every other
// turn of the actor, with exclusive access to its state. In is decoded from
// the first argument the client passed (rivetkit actions take positional
// arguments; an action with several uses Args as In).
func Action[S, V, In, Out any](fn func(c *Ctx[S, V], in In) (Out, error)) ActionFunc[S, V] {
	return ActionFunc[S, V]{turn: func(c *Ctx[S, V], args json.RawMessage) (any, error) {
		var in In
		if err := decodeArgs(args, &in); err != nil {
			return nil, err
		}
		return fn(c, in)
	}}
}

// Long is an action that runs on its own goroutine, so that it may wait
// (for an agent's reply, minutes) without blocking the actor's other
// actions. It touches state only through c.Do, which runs a turn.
func Long[S, V, In, Out any](fn func(c *AsyncCtx[S, V], in In) (Out, error)) ActionFunc[S, V] {
	return ActionFunc[S, V]{long: true, run: func(c *AsyncCtx[S, V], args json.RawMessage) (any, error) {
		var in In
		if err := decodeArgs(args, &in); err != nil {
			return nil, err
		}
		return fn(c, in)
	}}
}

// Args is an action input that keeps every positional argument raw.
type Args []json.RawMessage

// decodeArgs decodes a JSON array of arguments into in: all of them when in
// is *Args, else the first (absent → zero value).
func decodeArgs(args json.RawMessage, in any) error {
	if p, ok := in.(*Args); ok {
		if len(args) == 0 {
			return nil
		}
		if err := json.Unmarshal(args, p); err != nil {
			return &Error{Group: "action", Code: "invalid_request", Message: "arguments are not an array: " + err.Error()}
		}
		return nil
	}
	var list []json.RawMessage
	if len(args) > 0 {
		if err := json.Unmarshal(args, &list); err != nil {
			return &Error{Group: "action", Code: "invalid_request", Message: "arguments are not an array: " + err.Error()}
		}
	}
	if len(list) == 0 || string(list[0]) == "null" {
		return nil
	}
	if err := json.Unmarshal(list[0], in); err != nil {
		return &Error{Group: "action", Code: "invalid_request", Message: "bad argument: " + err.Error()}
	}
	return nil
}

// Error is an error with Rivet's group, code and message; the client
// receives it as an ActorError with the same fields. Actions return
// UserError for their own errors; any other error reaches the client as
// ("actor","internal_error") without its text.
type Error struct {
	// Group and Code classify it ("user" and the action's code for a
	// UserError); clients branch on them.
	Group string
	Code  string
	// Message is for people.
	Message string
	// Metadata is any JSON-encodable detail (nil: none).
	Metadata any
	// kick: a Disconnect by the actor (WebSocket close 1000, as Rivet).
	kick bool
}

func (e *Error) Error() string { return fmt.Sprintf("%s.%s: %s", e.Group, e.Code, e.Message) }

// UserError makes an error the client receives with group "user" and the
// given code, message and metadata (metadata may be nil).
func UserError(code, message string, metadata any) error {
	if code == "" {
		code = "user_error"
	}
	return &Error{Group: "user", Code: code, Message: message, Metadata: metadata}
}

// Errors of the runtime, as Rivet names them.
var (
	errActionNotFound = func(name string) *Error {
		// As rivetkit 2.3's server answers (2.2's said action.not_found).
		return &Error{Group: "actor", Code: "action_not_found", Message: "Action `" + name + "` was not found."}
	}
	errTimedOut     = &Error{Group: "actor", Code: "action_timed_out", Message: "action timed out"}
	errInternal     = &Error{Group: "actor", Code: "internal_error", Message: "an internal error occurred"}
	errStopping     = &Error{Group: "actor", Code: "stopping", Message: "actor stopping"}
	errAborted      = &Error{Group: "actor", Code: "aborted", Message: "the actor stopped while the action ran"}
	errNotFound     = &Error{Group: "actor", Code: "not_found", Message: "actor not found"}
	errDuplicateKey = &Error{Group: "actor", Code: "duplicate_key", Message: "an actor with this key exists"}
)

// publicError turns any error into what a client may see.
func publicError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return errTimedOut
	}
	return errInternal
}
