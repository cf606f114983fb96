package sandboxagent

import (
	"context"
	"io"
	"net/http"
	"net/url"
)

// FsEntry is one directory entry or stat result.
type FsEntry struct {
	Name      string `json:"name,omitempty"`
	Path      string `json:"path"`
	EntryType string `json:"entryType"` // "file" or "directory"
	Size      int64  `json:"size"`
	Modified  string `json:"modified,omitempty"`
}

func pathQuery(p string) url.Values {
	v := url.Values{}
	if p != "" {
		v.Set("path", p)
	}
	return v
}

// ListEntries lists a directory (relative paths resolve against $HOME).
func (c *Client) ListEntries(ctx context.Context, path string) ([]FsEntry, error) {
	var r []FsEntry
	err := c.doJSON(ctx, request{method: http.MethodGet, path: "/fs/entries", query: pathQuery(path)}, &r)
	return r, err
}

// ReadFile streams a file's bytes into w and returns the count.
func (c *Client) ReadFile(ctx context.Context, path string, w io.Writer) (int64, error) {
	resp, err := c.do(ctx, request{method: http.MethodGet, path: "/fs/file", query: pathQuery(path), accept: "application/octet-stream"})
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	return io.Copy(w, resp.Body)
}

// WriteFileResponse is the answer of WriteFile.
type WriteFileResponse struct {
	Path         string `json:"path"`
	BytesWritten int64  `json:"bytesWritten"`
}

// WriteFile streams r into a file (parents are created).
func (c *Client) WriteFile(ctx context.Context, path string, r io.Reader) (WriteFileResponse, error) {
	var out WriteFileResponse
	err := c.doJSON(ctx, request{method: http.MethodPut, path: "/fs/file", query: pathQuery(path), body: r, ctype: "application/octet-stream"}, &out)
	return out, err
}

// Stat describes a path (symlinks followed).
func (c *Client) Stat(ctx context.Context, path string) (FsEntry, error) {
	var r FsEntry
	err := c.doJSON(ctx, request{method: http.MethodGet, path: "/fs/stat", query: pathQuery(path)}, &r)
	return r, err
}

// Mkdir creates a directory and its parents; it returns the absolute path.
func (c *Client) Mkdir(ctx context.Context, path string) (string, error) {
	var r struct {
		Path string `json:"path"`
	}
	err := c.doJSON(ctx, request{method: http.MethodPost, path: "/fs/mkdir", query: pathQuery(path)}, &r)
	return r.Path, err
}

// MoveOptions configure Move.
type MoveOptions struct {
	// Overwrite replaces an existing destination; without it Move fails
	// when to exists.
	Overwrite bool
}

// Move renames from to to.
func (c *Client) Move(ctx context.Context, from, to string, opts MoveOptions) error {
	body := map[string]any{"from": from, "to": to}
	if opts.Overwrite {
		body["overwrite"] = true
	}
	return c.doJSON(ctx, request{method: http.MethodPost, path: "/fs/move", json: body}, nil)
}

// DeleteEntryOptions configure DeleteEntry.
type DeleteEntryOptions struct {
	// Recursive removes a non-empty directory with its contents; without
	// it only files and empty directories are removed.
	Recursive bool
}

// DeleteEntry removes a file or directory.
func (c *Client) DeleteEntry(ctx context.Context, path string, opts DeleteEntryOptions) error {
	q := pathQuery(path)
	if opts.Recursive {
		q.Set("recursive", "true")
	}
	return c.doJSON(ctx, request{method: http.MethodDelete, path: "/fs/entry", query: q}, nil)
}

// UploadBatchResponse is the answer of UploadBatch.
type UploadBatchResponse struct {
	Paths     []string `json:"paths"`
	Truncated bool     `json:"truncated"`
}

// UploadBatch extracts an uncompressed tar stream under dir.
func (c *Client) UploadBatch(ctx context.Context, dir string, tar io.Reader) (UploadBatchResponse, error) {
	var r UploadBatchResponse
	err := c.doJSON(ctx, request{method: http.MethodPost, path: "/fs/upload-batch", query: pathQuery(dir), body: tar, ctype: "application/x-tar"}, &r)
	return r, err
}
