//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package mcpconfig

// lockDir is a no-op where flock is unavailable; the in-process mutex
// still serialises this server's writers.
func lockDir(string) (func(), error) { return func() {}, nil }
