package untar_test

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/sandbox-agent-go/sandbox-agent/internal/untar"
)

func ExampleExtract() {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	_ = tw.WriteHeader(&tar.Header{Name: "../outside", Mode: 0o644, Size: 2})
	_, _ = tw.Write([]byte("hi"))
	_ = tw.Close()

	dest, _ := os.MkdirTemp("", "untar-example-")
	defer os.RemoveAll(dest)
	_, err := untar.Extract(context.Background(), dest, &buf, untar.Options{
		Limits: untar.Limits{MaxBytes: 1 << 20, MaxEntries: 100},
	})
	var ie *untar.InvalidError
	fmt.Println(errors.As(err, &ie), err)
	// Output: true invalid relative path: ../outside
}
