#!/usr/bin/env bash
# Installs the pinned real agents that e2e/ and compat/claude.mjs drive
# (claude, codex, opencode, pi) into a cache directory, with this repo's own
# installer (`sandbox-agent install-agent --data-dir <cache>`), from the
# built-in pins only (no ACP registry, native CLIs from npm) so every run
# gets the same versions. Idempotent: installed agents are kept; a change of
# internal/agents/pins.go reinstalls them.
#
#   scripts/install-test-agents.sh [cache-dir]   (default .cache/agents)
#
# The tests find the cache through SANDBOX_AGENT_E2E_AGENTS_DIR (default
# <repo>/.cache/agents).
set -euo pipefail
cd "$(dirname "$0")/.."

cache="${1:-${SANDBOX_AGENT_E2E_AGENTS_DIR:-.cache/agents}}"
mkdir -p "$cache"
cache=$(cd "$cache" && pwd)
agents=(claude codex opencode pi)

if ! command -v npm >/dev/null 2>&1 || ! command -v node >/dev/null 2>&1; then
  echo "install-test-agents: node and npm are required to install the test agents (Node.js 20+)" >&2
  exit 1
fi

export SANDBOX_AGENT_ACP_REGISTRY_URL=off SANDBOX_AGENT_NATIVE_SOURCE=npm

bin=$(mktemp -d)/sandbox-agent
trap 'rm -rf "$(dirname "$bin")"' EXIT
CGO_ENABLED=0 go build -o "$bin" ./cmd/sandbox-agent

stamp="$cache/.pins.sha256"
want=$(sha256sum internal/agents/pins.go | cut -d' ' -f1)
reinstall=()
if [ -f "$stamp" ] && [ "$(cat "$stamp")" != "$want" ]; then
  echo "install-test-agents: pins changed, reinstalling"
  reinstall=(--reinstall)
fi

# Fail fast (instead of after npm's retries) when something must be
# installed and the npm registry cannot be reached.
need=0
[ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] || need=1
for a in "${agents[@]}"; do [ -x "$cache/bin/agent_processes/$a-acp" ] || need=1; done
if [ "$need" = 1 ] && ! timeout 60 npm ping --fetch-retries=0 >/dev/null 2>&1; then
  echo "install-test-agents: the npm registry ($(npm config get registry)) is unreachable; the real-agent tests need it once to fill $cache" >&2
  exit 1
fi

for a in "${agents[@]}"; do
  if ! "$bin" install-agent "$a" --data-dir "$cache" "${reinstall[@]}" >/dev/null; then
    if ! timeout 30 npm ping >/dev/null 2>&1; then
      echo "install-test-agents: the npm registry ($(npm config get registry)) is unreachable; the real-agent tests need it once to fill $cache" >&2
    else
      echo "install-test-agents: installing $a failed (see above)" >&2
    fi
    exit 1
  fi
  echo "install-test-agents: $a ok"
done
echo "$want" > "$stamp"

# The older Claude adapter (claude-code-acp 0.16.2) delegates file writes
# and terminals to the client, which the current one does not; it is a test
# fixture, installed from the lockfile in e2e/testdata with npm ci.
legacy="$cache/claude-code-acp"
lock=e2e/testdata/claude-code-acp/package-lock.json
lwant=$(sha256sum "$lock" | cut -d' ' -f1)
if [ ! -x "$legacy/node_modules/.bin/claude-code-acp" ] || [ "$(cat "$legacy/.lock.sha256" 2>/dev/null)" != "$lwant" ]; then
  rm -rf "$legacy"
  mkdir -p "$legacy"
  cp e2e/testdata/claude-code-acp/package.json "$lock" "$legacy/"
  if ! (cd "$legacy" && npm ci --no-audit --no-fund --loglevel=error >/dev/null); then
    echo "install-test-agents: npm ci of the legacy Claude adapter ($lock) failed" >&2
    exit 1
  fi
  echo "$lwant" > "$legacy/.lock.sha256"
fi
echo "install-test-agents: claude-code-acp (legacy adapter) ok"
echo "install-test-agents: agents cached in $cache (SANDBOX_AGENT_E2E_AGENTS_DIR)"
