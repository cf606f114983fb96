//go:build race

package vercel_test

import (
	"compress/gzip"

	"github.com/sandbox-agent-go/sandbox-agent/provider/vercel"
)

// Under the race detector, gzip of the 16 MB test binary takes seconds
// on each side; stored blocks keep every sandbox's create well under one.
// Without -race the tests upload at the production level.
func init() { vercel.SetUploadLevel(gzip.NoCompression) }
