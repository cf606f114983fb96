#!/usr/bin/env bash
# bench/multiplayer/run.sh [driver flags...]: the same actor shapes on
# rivetkit 2.3.19 (its own local stack: node + rivet-engine) and on the Go
# runtime (mpserver, local SQLite backend), driven by the same protocol-level
# driver in the same run, then the ratios Go / rivetkit.
#
#   bench/multiplayer/run.sh -actors 300 -concurrency 8
#
# Needs multiplayer/compat/node_modules (npm ci there). Results: $OUT
# (default /tmp/mpbench), one JSON per server and ratios.txt.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${OUT:-/tmp/mpbench}
mkdir -p "$out"
go build -o "$out/driver" ./bench/multiplayer
go build -o "$out/mpserver" ./multiplayer/internal/compatactors/mpserver

wait_ready() { # file → the READY JSON line
	for _ in $(seq 1 600); do
		if line=$(grep -m1 '^READY ' "$1" 2>/dev/null); then echo "${line#READY }"; return 0; fi
		sleep 0.1
	done
	echo "server did not get ready: $1" >&2; return 1
}
field() { node -e 'const j=JSON.parse(process.argv[1]);console.log(j[process.argv[2]]??"")' "$1" "$2"; }

echo "== rivetkit 2.3.19"
node multiplayer/compat/rivet-server.mjs --port 6520 --sleepy-timeout-ms 1000 >"$out/rivet.log" 2>&1 &
rk=$!
trap 'kill $rk $go 2>/dev/null || true' EXIT
go=
ready=$(wait_ready "$out/rivet.log")
pids="$(field "$ready" pid),$(field "$ready" enginePid)"
# rivetkit's stack fails some benches under load (route_resolve_query_timeout);
# the driver still writes what it measured, and the run goes on.
"$out/driver" -endpoint "$(field "$ready" endpoint)" -pid "$pids" -label rivetkit -json "$out/rivetkit.json" "$@" || echo "(rivetkit: some benches failed; see above)"
kill -INT $rk; wait $rk 2>/dev/null || true

echo "== Go (multiplayer, local backend)"
"$out/mpserver" -listen 127.0.0.1:6620 -sleepy-sleep 1s >"$out/go.log" 2>&1 &
go=$!
ready=$(wait_ready "$out/go.log")
"$out/driver" -endpoint "$(field "$ready" endpoint)" -pid "$(field "$ready" pid)" -label go -json "$out/go.json" "$@" || echo "(go: some benches failed; see above)"
kill -INT $go; wait $go 2>/dev/null || true

node -e '
const [rk, go] = process.argv.slice(1).map((f) => JSON.parse(require("fs").readFileSync(f)));
const key = (r) => r.bench + " " + r.metric;
const g = new Map(go.rows.map((r) => [key(r), r]));
console.log("| bench | metric | rivetkit | Go | Go / rivetkit |\n|---|---|---|---|---|");
for (const r of rk.rows) {
  const o = g.get(key(r));
  if (!o || typeof r.value !== "number") continue;
  const ratio = r.value ? (o.value / r.value).toFixed(3) + "×" : "–";
  console.log(`| ${r.bench} | ${r.metric} | ${+r.value.toFixed(3)} ${r.unit ?? ""} | ${+o.value.toFixed(3)} ${o.unit ?? ""} | ${ratio} |`);
}' "$out/rivetkit.json" "$out/go.json" | tee "$out/ratios.txt"
