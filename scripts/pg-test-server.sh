#!/usr/bin/env bash
# Throwaway PostgreSQL server for the persist/postgres tests.
#
#   eval "$(scripts/pg-test-server.sh start)"   # start; exports the variables below
#   go test ./persist/postgres/...
#   scripts/pg-test-server.sh stop              # stop and delete it
#
#   scripts/pg-test-server.sh run go test ./persist/...   # start, run, stop
#   scripts/pg-test-server.sh status
#
# start prints (stdout; everything else goes to stderr):
#   export SANDBOX_AGENT_TEST_POSTGRES_URL=postgres://postgres@/sandbox_agent_test?host=<dir>&port=<port>&sslmode=disable
#   export SANDBOX_AGENT_TEST_POSTGRES_DIR=<dir>
#
# The server lives in a fresh temporary directory (data, log and its Unix
# socket), listens on that socket only (no TCP port, so servers of parallel
# runs cannot clash), trusts local connections and runs with fsync off: it is
# for tests only. Run as root (as CI does), the server runs as the OS user
# "postgres" (created if missing; override with PG_TEST_OS_USER), since
# PostgreSQL refuses to run as root.
#
# stop/status take the directory as an argument or from
# SANDBOX_AGENT_TEST_POSTGRES_DIR.
#
# Environment: PG_BIN (directory of initdb/pg_ctl; default: newest
# /usr/lib/postgresql/*/bin, preferring 15), PG_TEST_TMP (parent of the
# temporary directory, default /tmp), PG_TEST_PORT (socket port number, default
# 5432), PG_TEST_DB (default sandbox_agent_test), PG_TEST_OS_USER,
# PG_TEST_NO_INSTALL=1 (never apt-get install PostgreSQL when it is missing).
set -euo pipefail

MARKER=".sandbox-agent-pg-test"
DB_NAME="${PG_TEST_DB:-sandbox_agent_test}"
PORT="${PG_TEST_PORT:-5432}"

log() { printf 'pg-test-server: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

is_root() { [ "$(id -u)" = 0 ]; }

find_bin() {
	if [ -n "${PG_BIN:-}" ]; then
		[ -x "$PG_BIN/pg_ctl" ] || die "PG_BIN=$PG_BIN has no pg_ctl"
		echo "$PG_BIN"
		return 0
	fi
	if [ -x /usr/lib/postgresql/15/bin/pg_ctl ]; then
		echo /usr/lib/postgresql/15/bin
		return 0
	fi
	local d
	d="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)"
	if [ -n "$d" ] && [ -x "$d/pg_ctl" ]; then
		echo "$d"
		return 0
	fi
	if command -v pg_config >/dev/null 2>&1 && [ -x "$(pg_config --bindir)/pg_ctl" ]; then
		pg_config --bindir
		return 0
	fi
	return 1
}

ensure_bin() {
	local bin
	if bin="$(find_bin)"; then
		echo "$bin"
		return 0
	fi
	if [ "${PG_TEST_NO_INSTALL:-}" != 1 ] && is_root && command -v apt-get >/dev/null 2>&1; then
		log "PostgreSQL not found; installing it with apt-get"
		export DEBIAN_FRONTEND=noninteractive
		apt-get update -qq >&2
		apt-get install -y -qq --no-install-recommends postgresql-15 >&2 ||
			apt-get install -y -qq --no-install-recommends postgresql >&2
		bin="$(find_bin)" || die "PostgreSQL still not found after installing it"
		echo "$bin"
		return 0
	fi
	die "PostgreSQL server binaries not found (set PG_BIN)"
}

os_user() {
	local u="${PG_TEST_OS_USER:-postgres}"
	if ! id "$u" >/dev/null 2>&1; then
		log "creating OS user $u to run the server"
		useradd --system --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$u" >&2 ||
			die "cannot create OS user $u (set PG_TEST_OS_USER to an existing non-root user)"
	fi
	echo "$u"
}

# as_server CMD... runs CMD as the server's OS user (directly when not root).
as_server() {
	if ! is_root; then
		"$@"
		return $?
	fi
	local u
	u="$(os_user)"
	# From /, so that the server user never needs access to the caller's
	# working directory.
	if command -v runuser >/dev/null 2>&1; then
		(cd / && runuser -u "$u" -- "$@")
	elif command -v setpriv >/dev/null 2>&1; then
		(cd / && setpriv --reuid="$u" --regid="$u" --init-groups -- "$@")
	else
		(cd / && su -s /bin/sh "$u" -c "$(printf '%q ' "$@")")
	fi
}

url_for() {
	local dir="$1"
	printf 'postgres://postgres@/%s?host=%s&port=%s&sslmode=disable' "$DB_NAME" "$dir" "$PORT"
}

check_dir() {
	local dir="$1"
	[ -n "$dir" ] || die "no server directory given (argument or SANDBOX_AGENT_TEST_POSTGRES_DIR)"
	[ -f "$dir/$MARKER" ] || die "$dir is not a pg-test-server directory"
}

cmd_start() {
	local bin dir
	bin="$(ensure_bin)"
	dir="${1:-}"
	if [ -z "$dir" ]; then
		dir="$(mktemp -d "${PG_TEST_TMP:-/tmp}/sandbox-agent-pg.XXXXXX")"
	else
		mkdir -p "$dir"
		dir="$(cd "$dir" && pwd)"
	fi
	# The socket path must fit in sun_path (107 bytes).
	[ "${#dir}" -le 80 ] || die "directory path too long for a Unix socket: $dir"
	touch "$dir/$MARKER"
	if is_root; then
		chown -R "$(os_user)": "$dir"
	fi
	chmod 700 "$dir"

	log "initdb in $dir/data ($bin)"
	as_server "$bin/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --locale=C --no-sync >"$dir/initdb.log" 2>&1 ||
		{ cat "$dir/initdb.log" >&2; die "initdb failed"; }

	log "starting server on $dir/.s.PGSQL.$PORT"
	as_server "$bin/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 60 \
		-o "-k $dir -p $PORT -c listen_addresses='' -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
		start >&2 ||
		{ cat "$dir/postgres.log" >&2 || true; die "server did not start"; }

	as_server "$bin/createdb" -h "$dir" -p "$PORT" -U postgres "$DB_NAME" >&2 ||
		{ as_server "$bin/pg_ctl" -D "$dir/data" -m immediate stop >&2 || true; die "createdb failed"; }

	local url
	url="$(url_for "$dir")"
	printf '%s\n' "$url" >"$dir/url"
	log "ready: $url"
	printf "export SANDBOX_AGENT_TEST_POSTGRES_URL='%s'\n" "$url"
	printf "export SANDBOX_AGENT_TEST_POSTGRES_DIR='%s'\n" "$dir"
}

cmd_stop() {
	local dir="${1:-${SANDBOX_AGENT_TEST_POSTGRES_DIR:-}}"
	check_dir "$dir"
	local bin
	bin="$(find_bin)" || die "PostgreSQL binaries not found (set PG_BIN)"
	if [ -f "$dir/data/postmaster.pid" ]; then
		log "stopping server in $dir"
		as_server "$bin/pg_ctl" -D "$dir/data" -m fast -w -t 60 stop >&2 ||
			as_server "$bin/pg_ctl" -D "$dir/data" -m immediate -w stop >&2 || true
	fi
	if [ "${PG_TEST_KEEP:-}" = 1 ]; then
		log "keeping $dir (PG_TEST_KEEP=1)"
	else
		rm -rf -- "$dir"
	fi
}

cmd_status() {
	local dir="${1:-${SANDBOX_AGENT_TEST_POSTGRES_DIR:-}}"
	check_dir "$dir"
	local bin
	bin="$(find_bin)" || die "PostgreSQL binaries not found (set PG_BIN)"
	as_server "$bin/pg_ctl" -D "$dir/data" status
	[ -f "$dir/url" ] && cat "$dir/url"
}

cmd_run() {
	[ $# -gt 0 ] || die "usage: $0 run COMMAND [ARG...]"
	local env_lines
	env_lines="$(cmd_start)"
	eval "$env_lines"
	local status=0
	trap 'cmd_stop "$SANDBOX_AGENT_TEST_POSTGRES_DIR"' EXIT
	"$@" || status=$?
	return "$status"
}

case "${1:-}" in
start) shift; cmd_start "$@" ;;
stop) shift; cmd_stop "$@" ;;
status) shift; cmd_status "$@" ;;
run) shift; cmd_run "$@" ;;
*)
	sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' >&2
	exit 2
	;;
esac
