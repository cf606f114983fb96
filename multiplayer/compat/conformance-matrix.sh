#!/usr/bin/env bash
# conformance-matrix.sh ENDPOINT: runs conformance.mjs for every pinned client
# version and both encodings, prints one summary line per cell, and exits 1 if
# any cell failed. EXPECT_FAIL lists cells ("client/encoding", space separated)
# that are known not to work against this ENDPOINT; they are reported but do
# not fail the run. Against rivetkit's own 2.3.19 server that is
# "rivetkit-2.2/bare rivetkit-2.0/bare": it only speaks BARE v4, which older
# clients reject ("Unknown version 4"). The Go gateway must pass all six.
set -u
endpoint=${1:?usage: conformance-matrix.sh ENDPOINT}
here=$(cd "$(dirname "$0")" && pwd)
logdir=${LOGDIR:-$(mktemp -d)}
expect_fail=" ${EXPECT_FAIL:-} "
rc=0
for enc in json bare; do
	for client in rivetkit rivetkit-2.2 rivetkit-2.0; do
		cell="$client/$enc"
		out="$logdir/${client}-${enc}.jsonl"
		# The script bounds every step itself; this outer timeout is a backstop.
		timeout 300 node "$here/conformance.mjs" "$endpoint" --client "$client" --encoding "$enc" \
			>"$out" 2>"$logdir/${client}-${enc}.stderr"
		status=$?
		summary=$(tail -n 1 "$out")
		if [ "$status" -eq 0 ]; then
			echo "PASS $cell $summary"
		elif [[ "$expect_fail" == *" $cell "* ]]; then
			echo "XFAIL $cell $summary"
		else
			echo "FAIL $cell $summary (log: $out)"
			grep '"ok":false' "$out" | head -n 3
			rc=1
		fi
	done
done
echo "logs: $logdir"
exit $rc
