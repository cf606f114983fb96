#!/bin/sh
# Builds the release artifacts: one static archive per target
# (sandbox-agent_<version>_<os>_<arch>.tar.gz holding the binary), a
# checksums.txt in sha256sum format, and a copy of install.sh.
#
#   VERSION=1.2.3 TARGETS="linux/amd64 darwin/arm64" scripts/release.sh [out-dir]
#
# VERSION defaults to `git describe` without the leading v; TARGETS to the
# four supported os/arch pairs; out-dir to dist/. Archives are deterministic
# (fixed mtime, owner and order) so a rebuild of a tag gives the same sums.
set -eu
cd "$(dirname "$0")/.."
root=$(pwd)

out="${1:-dist}"
version="${VERSION:-$(git describe --tags --always 2>/dev/null | sed 's/^v//')}"
[ -n "$version" ] || { echo "release: VERSION is empty" >&2; exit 1; }
targets="${TARGETS:-linux/amd64 linux/arm64 darwin/amd64 darwin/arm64}"

mkdir -p "$out"
out=$(cd "$out" && pwd)
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT

for t in $targets; do
  os=${t%/*}
  arch=${t#*/}
  name="sandbox-agent_${version}_${os}_${arch}"
  mkdir -p "$stage/$name"
  CGO_ENABLED=0 GOOS=$os GOARCH=$arch go build -trimpath \
    -ldflags "-s -w -X main.version=$version" \
    -o "$stage/$name/sandbox-agent" "$root/cmd/sandbox-agent"
  # GNU tar flags for reproducibility; fall back to plain tar elsewhere.
  if tar --version 2>/dev/null | grep -q 'GNU tar'; then
    tar -C "$stage/$name" --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner \
      -cf - sandbox-agent | gzip -n -9 >"$out/$name.tar.gz"
  else
    tar -C "$stage/$name" -cf - sandbox-agent | gzip -n -9 >"$out/$name.tar.gz"
  fi
done

cp "$root/scripts/install.sh" "$out/install.sh"
(
  cd "$out"
  # shellcheck disable=SC2046 # archive names have no spaces
  if command -v sha256sum >/dev/null 2>&1; then
    sha256sum $(ls sandbox-agent_*.tar.gz install.sh | sort) >checksums.txt
  else
    shasum -a 256 $(ls sandbox-agent_*.tar.gz install.sh | sort) >checksums.txt
  fi
)
echo "release: $version -> $out"
