#!/bin/sh
# Installs a sandbox-agent release binary. POSIX sh; needs curl or wget,
# tar, gzip and sha256sum or shasum.
#
#   curl -fsSL <base>/install.sh | sh -s -- [--version V] [--base-url URL] [--dir DIR]
#
# Environment: SANDBOX_AGENT_VERSION, SANDBOX_AGENT_BASE_URL,
# SANDBOX_AGENT_INSTALL_DIR (flags win). The archive's sha256 must match
# checksums.txt from the same base URL, else nothing is installed.
set -eu

version="${SANDBOX_AGENT_VERSION:-}"
base="${SANDBOX_AGENT_BASE_URL:-}"
dir="${SANDBOX_AGENT_INSTALL_DIR:-}"

die() { echo "install.sh: $*" >&2; exit 1; }

while [ $# -gt 0 ]; do
  case "$1" in
    --version) [ $# -ge 2 ] || die "--version needs a value"; version=$2; shift 2 ;;
    --base-url) [ $# -ge 2 ] || die "--base-url needs a value"; base=$2; shift 2 ;;
    --dir) [ $# -ge 2 ] || die "--dir needs a value"; dir=$2; shift 2 ;;
    -h|--help) sed -n '2,10p' "$0" 2>/dev/null; exit 0 ;;
    *) die "unknown argument: $1" ;;
  esac
done

[ -n "$version" ] || die "no version: pass --version or set SANDBOX_AGENT_VERSION"
version=${version#v}
[ -n "$base" ] || base="https://github.com/sandbox-agent-go/sandbox-agent/releases/download/v$version"

case "$(uname -s)" in
  Linux) os=linux ;;
  Darwin) os=darwin ;;
  *) die "unsupported OS: $(uname -s) (supported: Linux, Darwin)" ;;
esac
case "$(uname -m)" in
  x86_64|amd64) arch=amd64 ;;
  aarch64|arm64) arch=arm64 ;;
  *) die "unsupported architecture: $(uname -m) (supported: x86_64, aarch64/arm64)" ;;
esac

if [ -z "$dir" ]; then
  if [ -d /usr/local/bin ] && [ -w /usr/local/bin ]; then dir=/usr/local/bin; else dir="$HOME/.local/bin"; fi
fi
mkdir -p "$dir" || die "cannot create $dir"

fetch() { # url dest
  if command -v curl >/dev/null 2>&1; then
    curl --fail --silent --show-error --location --connect-timeout 10 --max-time 300 -o "$2" "$1"
  elif command -v wget >/dev/null 2>&1; then
    wget -q -T 60 -O "$2" "$1"
  else
    die "need curl or wget"
  fi
}
sha256() {
  if command -v sha256sum >/dev/null 2>&1; then sha256sum "$1" | cut -d' ' -f1
  elif command -v shasum >/dev/null 2>&1; then shasum -a 256 "$1" | cut -d' ' -f1
  else die "need sha256sum or shasum"; fi
}

name="sandbox-agent_${version}_${os}_${arch}.tar.gz"
tmp=$(mktemp -d)
staged=""
cleanup() { rm -rf "$tmp"; [ -z "$staged" ] || rm -f "$staged"; }
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

fetch "$base/$name" "$tmp/$name" || die "download failed: $base/$name"
fetch "$base/checksums.txt" "$tmp/checksums.txt" || die "download failed: $base/checksums.txt"
want=$(awk -v n="$name" '$2 == n || $2 == "*" n { print $1 }' "$tmp/checksums.txt")
[ -n "$want" ] || die "no checksum for $name in checksums.txt"
got=$(sha256 "$tmp/$name")
[ "$got" = "$want" ] || die "checksum mismatch for $name: got $got, want $want; nothing installed"

tar -xzf "$tmp/$name" -C "$tmp" sandbox-agent || die "cannot unpack $name"
# Stage next to the target so the final mv is an atomic rename.
staged="$dir/.sandbox-agent.tmp.$$"
cp "$tmp/sandbox-agent" "$staged"
chmod 0755 "$staged"
mv -f "$staged" "$dir/sandbox-agent"
staged=""
echo "installed $dir/sandbox-agent ($version)"
