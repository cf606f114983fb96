package fsapi

// upload-batch's extraction is internal/untar's; this file holds its
// limits and maps untar's errors to upstream's answers.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"

	"github.com/sandbox-agent-go/sandbox-agent/internal/problem"
	"github.com/sandbox-agent-go/sandbox-agent/internal/untar"
)

// maxListedPaths caps the paths upload-batch reports (upstream: 1024).
const maxListedPaths = 1024

// The names of the upload limits in problems: the server's flag names, so
// whoever reads the error knows which knob to turn.
const (
	LimitUploadBytes     = "upload-max-bytes"
	LimitUploadFileBytes = "upload-max-file-bytes"
	LimitUploadEntries   = "upload-max-entries"
	LimitUploadDepth     = "upload-max-depth"
	LimitUploadPathBytes = "upload-max-path-bytes"
)

// UploadLimits bounds one POST /v1/fs/upload-batch (the size of each entry
// is Options.MaxFileBytes). Zero fields are unlimited. Sizes are logical:
// a sparse file's holes count although they are not written as blocks.
type UploadLimits struct {
	// MaxBytes caps the bytes of all entries together (413).
	MaxBytes int64
	// MaxEntries caps the archive's entries, skipped types included (413).
	MaxEntries int
	// MaxDepth caps the components of an entry's name (400).
	MaxDepth int
	// MaxPathBytes caps the length of an entry's name and link target (400).
	MaxPathBytes int
}

// DefaultUploadLimits are the server's defaults (its --upload-max-* flags):
// room for any real source tree or dataset upload, while a hostile archive
// is stopped long before it fills a sandbox's disk or burns its CPU.
var DefaultUploadLimits = UploadLimits{
	MaxBytes:     8 << 30,
	MaxEntries:   200_000,
	MaxDepth:     256,
	MaxPathBytes: 4096, // PATH_MAX
}

// DefaultMaxFileBytes is the server's default for Options.MaxFileBytes
// (--upload-max-file-bytes).
const DefaultMaxFileBytes = 4 << 30

// stagingPrefix starts the name of upload-batch's staging directories
// (tests and operators recognise a leftover one by it).
const stagingPrefix = ".sa-upload-"

type extractOptions struct {
	limits       UploadLimits
	maxFileBytes int64 // per entry (0: unlimited)
	buf          []byte
	log          *slog.Logger
}

type extractResult struct {
	paths     []string
	truncated bool
	// walkOps counts the directory syscalls (fstatat, mkdirat, openat) of
	// path resolution, so a test can check that it is linear in depth.
	walkOps int
}

// errCanceled is the cause reported when the request ended mid-upload.
var errCanceled = errors.New("upload canceled: the request ended")

// extract unpacks an upload-batch body into dest with untar.Extract (all
// or nothing, never outside dest; see there) and maps its failures to
// upstream's answers: limits to limit_exceeded problems named after the
// server's flags, refused entries to 400, filesystem failures as fsError,
// archive read failures as archiveError, and any failure once ctx ended to
// errCanceled.
func extract(ctx context.Context, dest string, body io.Reader, opts extractOptions) (extractResult, error) {
	l := opts.limits
	res, err := untar.Extract(ctx, dest, body, untar.Options{
		Limits: untar.Limits{
			MaxBytes:     l.MaxBytes,
			MaxFileBytes: opts.maxFileBytes,
			MaxEntries:   l.MaxEntries,
			MaxDepth:     l.MaxDepth,
			MaxPathBytes: l.MaxPathBytes,
		},
		MaxListed:     maxListedPaths,
		StagingPrefix: stagingPrefix,
		Buf:           opts.buf,
		Log:           opts.log,
	})
	out := extractResult{paths: res.Paths, truncated: res.Truncated, walkOps: res.DirOps}
	if err != nil && ctx.Err() != nil {
		return out, fmt.Errorf("%w: %w", errCanceled, context.Cause(ctx))
	}
	return out, uploadError(err)
}

// uploadLimitNames are the server's flag names of untar's limits and the
// status each answers with: too much data is 413, a malformed name 400.
var uploadLimitNames = map[untar.Limit]struct {
	name   string
	status int
}{
	untar.LimitBytes:     {LimitUploadBytes, http.StatusRequestEntityTooLarge},
	untar.LimitFileBytes: {LimitUploadFileBytes, http.StatusRequestEntityTooLarge},
	untar.LimitEntries:   {LimitUploadEntries, http.StatusRequestEntityTooLarge},
	untar.LimitDepth:     {LimitUploadDepth, http.StatusBadRequest},
	untar.LimitPathBytes: {LimitUploadPathBytes, http.StatusBadRequest},
}

// uploadError maps an untar failure to upload-batch's answer; anything
// else (nil included) is returned as it is.
func uploadError(err error) error {
	var (
		le *untar.LimitError
		ie *untar.InvalidError
		re *untar.ReadError
		pe *untar.PathError
	)
	switch {
	case errors.As(err, &le):
		n, ok := uploadLimitNames[le.Limit]
		if !ok {
			n.name, n.status = string(le.Limit), http.StatusRequestEntityTooLarge
		}
		return problem.OverLimit(n.status, n.name, le.Max, le.Msg)
	case errors.As(err, &ie):
		return problem.Invalid(ie.Msg)
	case errors.As(err, &re):
		return archiveError(re.Err)
	case errors.As(err, &pe):
		return fsError(pe.Path, pe.Err)
	}
	return err
}

// archiveError maps a failure to read the archive: an over-limit body is
// upstream's 413 text, a problem of the body (the server's 408 for a
// stalled one) is passed through, anything else (bad format, truncated
// stream, dropped connection) is a 502 stream_error.
func archiveError(err error) error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return bodyError(err)
	}
	var p *problem.Problem
	if errors.As(err, &p) {
		return p
	}
	return problem.Stream(err.Error())
}
