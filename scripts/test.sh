#!/usr/bin/env bash
# The README's test command: installs and starts everything the tests need on
# a fresh machine (npm packages for the TypeScript SDK and rivetkit compat
# suites, Debian Chromium for the browser tests, a
# throw-away PostgreSQL 15 run as a non-root user), then vets, runs staticcheck and every
# Go test with the race detector.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }

step "go version"
go version

step "npm ci (compat/: the official sandbox-agent TypeScript SDK, pinned)"
if ! (cd compat && npm ci --no-audit --no-fund --loglevel=error); then
  echo "npm ci failed: the npm registry must be reachable to install the pinned TypeScript SDK" >&2
  exit 1
fi

step "npm install (multiplayer/compat: the official rivetkit client 2.3.19, 2.2.1, 2.0.33, playwright-core; pinned)"
# npm install, not npm ci: the registry here lacks rivetkit's optional
# per-platform packages for other systems, so the lock file cannot list them
# and npm ci refuses it. npm install takes the lock's exact versions and
# integrity for everything else; the lock must come out unchanged.
if ! (cd multiplayer/compat && npm install --no-audit --no-fund --loglevel=error &&
  git diff --exit-code --quiet -- package-lock.json 2>/dev/null || [ ! -d ../../.git ]); then
  echo "npm install failed or changed package-lock.json: the npm registry must be reachable to install the pinned rivetkit clients" >&2
  exit 1
fi

step "Chromium (Debian) for the browser tests"
if [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null ||
      { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null; }
  else
    echo "chromium is missing and this is not root: install it with 'apt-get install chromium'" >&2
    [ "${CI:-}" = true ] && exit 1
  fi
fi
[ -x /usr/bin/chromium ] && /usr/bin/chromium --version

step "PostgreSQL for the persistence conformance suite"
pg_env=$(scripts/pg-test-server.sh start)
eval "$pg_env"
trap 'scripts/pg-test-server.sh stop >/dev/null 2>&1 || true' EXIT
echo "postgres: ${SANDBOX_AGENT_TEST_POSTGRES_URL%%\?*}"

step "gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './compat/node_modules/*'))
if [ -n "$unformatted" ]; then
  echo "gofmt would change:" >&2
  echo "$unformatted" >&2
  exit 1
fi

step "go vet"
go vet ./...

# Pinned here rather than in go.mod: as a tool requirement it would raise
# golang.org/x/* versions the SDK's users build with.
step "staticcheck (pinned)"
go run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...

step "real agents (pinned; our installer into .cache/agents)"
scripts/install-test-agents.sh

step "go test -race"
go test -race -count=1 -timeout 20m "$@" ./...

step "fuzzing (bounded): path resolution, tar extraction, envelope parsing"
# Bounded by executions, not time: with a duration -fuzztime, Go 1.26's fuzz
# coordinator can report a spurious "context deadline exceeded" failure at
# the deadline (golang/go#75804, fixed in 1.27).
fuzz() { go test -run '^$' -fuzz "^$1\$" -fuzztime "$3" -fuzzminimizetime 5s "$2"; }
fuzz FuzzResolvePath ./internal/fsapi "${FUZZ_RESOLVE:-100000x}"
fuzz FuzzExtract ./internal/fsapi "${FUZZ_EXTRACT:-10000x}"
fuzz FuzzParseMatchesDecoder ./acp "${FUZZ_PARSE:-300000x}"
fuzz FuzzDecodeToServer ./multiplayer/internal/wire "${FUZZ_WIRE:-100000x}"

step "static build"
CGO_ENABLED=0 go build -o /dev/null ./cmd/sandbox-agent

# The server also builds for macOS (a local provider on a developer's Mac),
# and the Go SDK an application imports builds for macOS and Windows too.
step "cross builds"
CGO_ENABLED=0 GOOS=darwin GOARCH=arm64 go build -o /dev/null ./cmd/sandbox-agent
for os in darwin windows; do
  CGO_ENABLED=0 GOOS=$os GOARCH=amd64 go build . ./acp/... ./persist/... ./provider/...
done
echo "all tests passed"
