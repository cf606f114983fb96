// Package release holds the end-to-end test of the release path:
// scripts/release.sh builds the archives and checksums, scripts/install.sh
// downloads, verifies and installs them. It has no Go API; the package exists
// so `go test ./...` exercises the shell scripts.
package release
