package mcpconfig

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"github.com/sandbox-agent-go/sandbox-agent/internal/problem"
)

// keyedMutex serialises writers of one config file inside this process;
// entries are reference-counted so the map does not grow without bound.
type keyedMutex struct {
	mu sync.Mutex
	m  map[string]*refMutex
}

type refMutex struct {
	sync.Mutex
	refs int
}

func (k *keyedMutex) lock(key string) func() {
	k.mu.Lock()
	if k.m == nil {
		k.m = map[string]*refMutex{}
	}
	rm := k.m[key]
	if rm == nil {
		rm = &refMutex{}
		k.m[key] = rm
	}
	rm.refs++
	k.mu.Unlock()
	rm.Lock()
	return func() {
		rm.Unlock()
		k.mu.Lock()
		if rm.refs--; rm.refs == 0 {
			delete(k.m, key)
		}
		k.mu.Unlock()
	}
}

// load reads a config file into decoded entries. ok is false when the file
// does not exist. A file that does not parse is upstream's 400 "invalid
// config file <path>: <error>".
func load[T any](file string) (entries map[string]T, ok bool, err error) {
	data, err := os.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]T{}, false, nil
	}
	if err != nil {
		return nil, false, osProblem(err)
	}
	entries = map[string]T{}
	if err := json.Unmarshal(data, &entries); err != nil {
		return nil, false, problem.Invalid("invalid config file " + file + ": " + err.Error())
	}
	if entries == nil { // the file held "null"
		entries = map[string]T{}
	}
	return entries, true, nil
}

// encode renders the map as upstream stores it: 2-space indentation, keys
// sorted, no HTML escaping.
func encode(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// writeFileAtomic replaces file with data: a temporary sibling is written,
// fsynced and renamed over it, so readers never see a partial file.
func writeFileAtomic(file string, data []byte) error {
	dir := filepath.Dir(file)
	var rnd [8]byte
	_, _ = rand.Read(rnd[:])
	tmp := filepath.Join(dir, "."+filepath.Base(file)+".tmp-"+hex.EncodeToString(rnd[:]))
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o666)
	if err != nil {
		return err
	}
	done := false
	defer func() {
		if !done {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()
	if _, err := f.Write(data); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, file); err != nil {
		return err
	}
	done = true
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	return nil
}
