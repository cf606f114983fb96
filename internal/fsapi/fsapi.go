// Package fsapi serves the filesystem endpoints (/v1/fs/*): directory
// listings, file read/write, stat, mkdir, move, delete and tar batch upload.
//
// Paths follow upstream sandbox-agent v0.4.2: absolute paths are used as
// given, relative paths resolve against the home directory and may not
// contain "..". Beyond upstream, file bodies stream in both directions with
// constant memory (no 2 MiB cap unless configured), GET honours HTTP Range,
// PUT replaces files atomically, and upload-batch accepts gzip-compressed
// tar and refuses every way an archive could write outside its destination.
package fsapi

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"mime"
	"net/http"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/sandbox-agent-go/sandbox-agent/internal/ctxsync"
	"github.com/sandbox-agent-go/sandbox-agent/internal/httpjson"
	"github.com/sandbox-agent-go/sandbox-agent/internal/problem"
	"github.com/sandbox-agent-go/sandbox-agent/internal/rawpath"
	"github.com/sandbox-agent-go/sandbox-agent/internal/server"
)

// Options configures the filesystem API.
type Options struct {
	// Home is where relative paths resolve ($HOME when empty).
	Home string
	// MaxFileBytes caps one file: the body of PUT /v1/fs/file (larger
	// bodies get upstream's 413 text) and the logical size of each entry of
	// POST /v1/fs/upload-batch (a 413 limit_exceeded problem); 0 means
	// unlimited.
	MaxFileBytes int64
	// Upload bounds each POST /v1/fs/upload-batch as a whole.
	Upload UploadLimits
	// BodyIdleTimeout bounds how long a large PUT /v1/fs/file, whose body
	// is spliced from the hijacked connection (so the server's own body
	// idle timeout does not see it), may deliver nothing before it fails
	// with 408; 0 means 30 s. Set it to the server's body idle timeout.
	BodyIdleTimeout time.Duration
	// Logger receives diagnostics (slog.Default when nil).
	Logger *slog.Logger
}

// Handler serves /v1/fs/*.
type Handler struct {
	home    string
	maxFile int64
	upload  UploadLimits
	idle    time.Duration
	log     *slog.Logger
	bufs    sync.Pool
}

// copyBufSize is the per-request copy buffer: large enough for full-speed
// streaming, small enough that memory stays flat under many uploads.
const copyBufSize = 512 << 10

// New builds the handler.
func New(opts Options) *Handler {
	home := opts.Home
	if home == "" {
		if h, err := os.UserHomeDir(); err == nil {
			home = h
		} else {
			home = "/"
		}
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	h := &Handler{home: home, maxFile: opts.MaxFileBytes, upload: opts.Upload, idle: opts.BodyIdleTimeout, log: log}
	h.bufs.New = func() any { b := make([]byte, copyBufSize); return &b }
	return h
}

// Routes returns the /v1/fs routes.
func (h *Handler) Routes() []server.Route {
	return []server.Route{
		{Method: http.MethodGet, Pattern: "/v1/fs/entries", Handler: server.Handle(h.entries)},
		{Method: http.MethodGet, Pattern: "/v1/fs/file", Handler: server.Handle(h.readFile)},
		{Method: http.MethodPut, Pattern: "/v1/fs/file", Handler: server.Handle(h.writeFile), RawBody: true},
		{Method: http.MethodDelete, Pattern: "/v1/fs/entry", Handler: server.Handle(h.deleteEntry)},
		{Method: http.MethodPost, Pattern: "/v1/fs/mkdir", Handler: server.Handle(h.mkdir)},
		{Method: http.MethodPost, Pattern: "/v1/fs/move", Handler: server.Handle(h.move)},
		{Method: http.MethodGet, Pattern: "/v1/fs/stat", Handler: server.Handle(h.stat)},
		{Method: http.MethodPost, Pattern: "/v1/fs/upload-batch", Handler: server.Handle(h.uploadBatch), RawBody: true},
	}
}

// FsEntry is one directory entry (upstream's FsEntry).
type FsEntry struct {
	Name      string `json:"name"`
	Path      string `json:"path"`
	EntryType string `json:"entryType"`
	Size      int64  `json:"size"`
	Modified  string `json:"modified"`
}

// FsStat describes one path (upstream's FsStat).
type FsStat struct {
	Path      string `json:"path"`
	EntryType string `json:"entryType"`
	Size      int64  `json:"size"`
	Modified  string `json:"modified"`
}

type pathResponse struct {
	Path string `json:"path"`
}

type writeResponse struct {
	Path         string `json:"path"`
	BytesWritten int64  `json:"bytesWritten"`
}

type moveRequest struct {
	From      *string `json:"from"`
	To        *string `json:"to"`
	Overwrite *bool   `json:"overwrite"`
}

type moveResponse struct {
	From string `json:"from"`
	To   string `json:"to"`
}

type uploadResponse struct {
	Paths     []string `json:"paths"`
	Truncated bool     `json:"truncated"`
}

func (h *Handler) resolve(raw string) (string, error) { return resolvePath(h.home, raw) }

// requiredPath reads and resolves the mandatory ?path= parameter.
func (h *Handler) requiredPath(r *http.Request) (string, error) {
	raw, err := httpjson.QueryString(r, "path")
	if err != nil {
		return "", err
	}
	return h.resolve(raw)
}

func (h *Handler) entries(w http.ResponseWriter, r *http.Request) error {
	p, err := h.resolve(r.URL.Query().Get("path"))
	if err != nil {
		return err
	}
	fi, err := os.Stat(p)
	if err != nil {
		return fsError(p, err)
	}
	if !fi.IsDir() {
		return problem.Invalid("path is not a directory: " + p)
	}
	d, err := os.Open(p)
	if err != nil {
		return fsError(p, err)
	}
	defer d.Close()
	// File.ReadDir keeps the kernel's order (os.ReadDir would sort), and
	// DirEntry.Info is an lstat: symlinks are reported as themselves.
	des, err := d.ReadDir(-1)
	if err != nil {
		return fsError(p, err)
	}
	out := make([]FsEntry, 0, len(des))
	for _, de := range des {
		info, err := de.Info()
		if errors.Is(err, fs.ErrNotExist) {
			continue // removed while listing
		}
		if err != nil {
			return fsError(p, err)
		}
		out = append(out, FsEntry{
			Name:      de.Name(),
			Path:      rawpath.Join(p, de.Name()),
			EntryType: entryType(info),
			Size:      info.Size(),
			Modified:  formatModified(info.ModTime()),
		})
	}
	httpjson.Write(w, http.StatusOK, out)
	return nil
}

func (h *Handler) readFile(w http.ResponseWriter, r *http.Request) error {
	p, err := h.requiredPath(r)
	if err != nil {
		return err
	}
	fi, err := os.Stat(p)
	if err != nil {
		return fsError(p, err)
	}
	if !fi.Mode().IsRegular() {
		return problem.Invalid("path is not a file: " + p)
	}
	// O_NONBLOCK: should the path be swapped for a FIFO after the stat, the
	// open does not hang; the fstat below then rejects it.
	f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return fsError(p, err)
	}
	defer f.Close()
	if fi, err = f.Stat(); err != nil {
		return fsError(p, err)
	}
	if !fi.Mode().IsRegular() {
		return problem.Invalid("path is not a file: " + p)
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	// ServeContent streams from the file (sendfile where possible) and
	// implements Range, If-Range, conditional requests and HEAD.
	http.ServeContent(w, r, "", fi.ModTime(), f)
	return nil
}

// limitedBody applies the configurable upload limit to a streamed body,
// refusing up front when the declared length already exceeds it.
func (h *Handler) limitedBody(w http.ResponseWriter, r *http.Request) (io.Reader, error) {
	if h.maxFile <= 0 {
		return r.Body, nil
	}
	if r.ContentLength > h.maxFile {
		return nil, &httpjson.TextError{Status: http.StatusRequestEntityTooLarge, Msg: httpjson.BodyTooLargeMsg}
	}
	return http.MaxBytesReader(w, r.Body, h.maxFile), nil
}

func (h *Handler) writeFile(w http.ResponseWriter, r *http.Request) error {
	p, err := h.requiredPath(r)
	if err != nil {
		return err
	}
	body, err := h.limitedBody(w, r)
	if err != nil {
		return err
	}
	bp := h.bufs.Get().(*[]byte)
	defer h.bufs.Put(bp)
	ctx := r.Context()
	if sb, answer, ok := hijackUpload(w, r, h.idle); ok {
		// Content-Length is within the limit (checked above) and exactly
		// that many bytes are read.
		n, err := writeAtomic(p, sb, *bp)
		if err != nil && sb.short {
			h.log.Info("upload cut off", "path", p, "bytes", n, "error", err)
		}
		if err != nil && server.ShuttingDown(ctx) {
			err = problem.ShuttingDown()
		}
		answer(func(w http.ResponseWriter) {
			// The connection is hijacked: Handle cannot answer for us.
			if err != nil {
				httpjson.Error(w, err)
				return
			}
			httpjson.Write(w, http.StatusOK, writeResponse{Path: p, BytesWritten: n})
		})
		return nil
	}
	defer interruptBody(w, ctx)()
	n, err := writeAtomic(p, ctxsync.Reader(ctx, body), *bp)
	if err != nil {
		if server.ShuttingDown(ctx) {
			err = problem.ShuttingDown()
		}
		return err
	}
	httpjson.Write(w, http.StatusOK, writeResponse{Path: p, BytesWritten: n})
	return nil
}

func (h *Handler) deleteEntry(w http.ResponseWriter, r *http.Request) error {
	p, err := h.requiredPath(r)
	if err != nil {
		return err
	}
	recursive, err := httpjson.QueryBool(r, "recursive")
	if err != nil {
		return err
	}
	fi, err := os.Lstat(p)
	if err != nil {
		return fsError(p, err)
	}
	switch {
	case fi.IsDir() && recursive:
		err = os.RemoveAll(p)
	case fi.IsDir():
		err = syscall.Rmdir(p)
	default: // files and symlinks: the link itself goes
		err = syscall.Unlink(p)
	}
	if err != nil {
		return fsError(p, err)
	}
	httpjson.Write(w, http.StatusOK, pathResponse{Path: p})
	return nil
}

func (h *Handler) mkdir(w http.ResponseWriter, r *http.Request) error {
	p, err := h.requiredPath(r)
	if err != nil {
		return err
	}
	if err := rawpath.MkdirAll(p); err != nil {
		return fsError(p, err)
	}
	httpjson.Write(w, http.StatusOK, pathResponse{Path: p})
	return nil
}

func (h *Handler) move(w http.ResponseWriter, r *http.Request) error {
	var req moveRequest
	if err := httpjson.Decode(r, &req); err != nil {
		return err
	}
	if req.From == nil {
		return httpjson.MissingField("from")
	}
	if req.To == nil {
		return httpjson.MissingField("to")
	}
	from, err := h.resolve(*req.From)
	if err != nil {
		return err
	}
	to, err := h.resolve(*req.To)
	if err != nil {
		return err
	}
	if err := movePath(from, to, req.Overwrite != nil && *req.Overwrite); err != nil {
		return err
	}
	httpjson.Write(w, http.StatusOK, moveResponse{From: from, To: to})
	return nil
}

func (h *Handler) stat(w http.ResponseWriter, r *http.Request) error {
	p, err := h.requiredPath(r)
	if err != nil {
		return err
	}
	fi, err := os.Stat(p)
	if err != nil {
		return fsError(p, err)
	}
	httpjson.Write(w, http.StatusOK, FsStat{
		Path:      p,
		EntryType: entryType(fi),
		Size:      fi.Size(),
		Modified:  formatModified(fi.ModTime()),
	})
	return nil
}

// uploadMediaTypes are the accepted Content-Types of upload-batch. Upstream
// takes only application/x-tar; gzip-compressed tar is recognised by its
// magic bytes under any of them.
var uploadMediaTypes = map[string]bool{
	"application/x-tar":  true,
	"application/gzip":   true,
	"application/x-gzip": true,
}

func (h *Handler) uploadBatch(w http.ResponseWriter, r *http.Request) error {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || !uploadMediaTypes[mt] {
		return problem.Invalid("content-type must be application/x-tar")
	}
	dest, err := h.resolve(r.URL.Query().Get("path"))
	if err != nil {
		return err
	}
	ctx := r.Context()
	defer interruptBody(w, ctx)()
	bp := h.bufs.Get().(*[]byte)
	defer h.bufs.Put(bp)
	res, err := extract(ctx, dest, r.Body, extractOptions{limits: h.upload, maxFileBytes: h.maxFile, buf: *bp, log: h.log})
	if err != nil {
		h.log.Debug("upload-batch failed", "dest", dest, "err", err)
		switch {
		case server.ShuttingDown(ctx):
			err = problem.ShuttingDown()
		case errors.Is(err, errCanceled):
			// Nobody reads this answer; the staging directory is gone.
			h.log.Info("upload-batch: client went away", "dest", dest)
			err = problem.Invalid(err.Error())
		}
		return err
	}
	httpjson.Write(w, http.StatusOK, uploadResponse{Paths: res.paths, Truncated: res.truncated})
	return nil
}

// interruptBody makes a body read blocked on the socket return as soon as
// ctx ends (the client left or the server is shutting down), instead of
// waiting for data that will not come. The returned func disarms it.
func interruptBody(w http.ResponseWriter, ctx context.Context) func() bool {
	rc := http.NewResponseController(w)
	return context.AfterFunc(ctx, func() { _ = rc.SetReadDeadline(time.Now()) })
}
