#!/usr/bin/env sh
# Side-by-side benchmarks of this server against upstream sandbox-agent 0.4.2.
# Installs upstream from npm into bench/.cache, builds ours, runs every
# benchmark against both in alternation and rewrites BENCHMARKS.md.
# Flags are passed through: ./bench/run.sh -rounds 5 -out /tmp/B.md
set -eu
cd "$(dirname "$0")/.."
exec go run ./bench "$@"
