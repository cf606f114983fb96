package server

import (
	"errors"
	"log/slog"
	"net/http"

	"github.com/sandbox-agent-go/sandbox-agent/internal/httpjson"
	"github.com/sandbox-agent-go/sandbox-agent/internal/problem"
)

// HandlerFunc is an endpoint that reports failure by returning it instead of
// writing it: an error answer is then one statement (return err), and a
// handler cannot write an error and fall through into its success path.
type HandlerFunc func(http.ResponseWriter, *http.Request) error

// Handle adapts fn to a Route handler. An error fn returns before it wrote
// anything is the answer, rendered by httpjson.Error: an extractor
// *httpjson.TextError as plain text, a *problem.Problem anywhere in the
// chain (errors.As) as problem+json with its own status and code, and any
// other error as the 502 stream_error every endpoint has always answered
// for it (logged too, since it is not one of the answers a handler chose).
// An error returned after the answer started (a stream that broke, a
// hijacked connection) cannot be answered any more: it is logged, never
// written over the response already on the wire.
func Handle(fn HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := fn(w, r); err != nil {
			answerError(w, r, err)
		}
	}
}

func answerError(w http.ResponseWriter, r *http.Request, err error) {
	g := guardOf(w)
	log := slog.Default()
	if g != nil {
		log = g.log
	}
	if g != nil && g.wrote {
		log.Warn("handler failed after answering", "method", r.Method, "path", r.URL.Path, "error", err)
		return
	}
	if !chosenAnswer(err) {
		log.Warn("handler failed", "method", r.Method, "path", r.URL.Path, "error", err)
	}
	httpjson.Error(w, err)
}

// chosenAnswer reports whether err is an answer a handler built on purpose
// (a problem or an extractor error) rather than a failure passed through.
func chosenAnswer(err error) bool {
	var p *problem.Problem
	var te *httpjson.TextError
	var mbe *http.MaxBytesError
	return errors.As(err, &p) || errors.As(err, &te) || errors.As(err, &mbe)
}

// guardOf finds the request's guard, which knows whether the answer started;
// a handler run outside a Handler (no guard) is answered unconditionally.
func guardOf(w http.ResponseWriter) *guard {
	for {
		switch v := w.(type) {
		case *guard:
			return v
		case interface{ Unwrap() http.ResponseWriter }:
			w = v.Unwrap()
		default:
			return nil
		}
	}
}
