package ctxsync

import (
	"context"
	"io"
)

// Reader returns a reader that fails with ctx's error once ctx is done, so
// a copy, a decompressor or a parser reading from r stops within one read
// of ctx ending, not only when r itself fails.
func Reader(ctx context.Context, r io.Reader) io.Reader { return &ctxReader{ctx: ctx, r: r} }

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
