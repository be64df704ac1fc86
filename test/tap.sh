# test/tap.sh: helpers for the shell tests in test/t (sourced).
# Each check prints "ok N - what" or "not ok N - what"; test/run counts them.
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
TAP_N=0
ok() { TAP_N=$((TAP_N + 1)); echo "ok $TAP_N - $1"; }
not_ok() { TAP_N=$((TAP_N + 1)); echo "not ok $TAP_N - $1"; [ -n "${2:-}" ] && echo "#   $2"; return 0; }
# check "what" COMMAND...: ok when the command succeeds
check() { local what=$1; shift; if "$@"; then ok "$what"; else not_ok "$what"; fi; }
# refute "what" COMMAND...: ok when the command fails
refute() { local what=$1; shift; if "$@"; then not_ok "$what"; else ok "$what"; fi; }
# is "what" GOT WANT
is() { if [ "$2" = "$3" ]; then ok "$1"; else not_ok "$1" "got '$2', want '$3'"; fi; }
# like "what" GOT REGEX
like() { if [[ $2 =~ $3 ]]; then ok "$1"; else not_ok "$1" "got '$2', want match of '$3'"; fi; }
# q SQL: one value, no alignment, errors to stdout too
q() { psql -X -q -A -t -v ON_ERROR_STOP=1 -d "${BMF_DB:-bmf_t}" -c "$1" 2>&1; }
# qv: a script on stdin, errors shown with their SQLSTATE
qv() { (echo '\set VERBOSITY verbose'; cat) | psql -X -q -A -t -d "${BMF_DB:-bmf_t}" 2>&1; }
# qs: a script on stdin
qs() { psql -X -q -A -t -v ON_ERROR_STOP=1 -d "${BMF_DB:-bmf_t}" 2>&1; }
ms_now() { date +%s%3N; }
# tap_need PROGRAM=PACKAGE...: a test that needs a program that is missing
# ends at once, with one failure that names the Debian package to install
tap_need() {
	local e
	for e in "$@"; do
		command -v "${e%%=*}" >/dev/null 2>&1 && continue
		not_ok "${e%%=*} is missing: install the Debian package ${e#*=} (test/run installs it)"
		exit 0
	done
}
# tap_npm PACKAGE@VERSION...: Node packages from the npm registry, into
# the work directory once, on NODE_PATH; a test that cannot get them ends
# with one failure saying why.  tap_ioredis: ioredis (the Node services'
# client), which most of them need.
tap_npm() {
	local p missing=()
	mkdir -p "$BMF_WORK/node"
	for p in "$@"; do [ -d "$BMF_WORK/node/node_modules/${p%@*}" ] || missing+=("$p"); done
	if [ ${#missing[@]} -gt 0 ] && ! (cd "$BMF_WORK/node" &&
		npm install --loglevel=error --no-audit --no-fund "${missing[@]}" >"$BMF_WORK/npm.log" 2>&1); then
		not_ok "npm install ${missing[*]}" "$(tail -5 "$BMF_WORK/npm.log")"
		exit 0
	fi
	export NODE_PATH=$BMF_WORK/node/node_modules
}
tap_ioredis() { tap_npm ioredis@5; }
# tap_netproxy NAME TARGET_PORT [DELAY_US [JITTER_US]]: test/netproxy (a
# network distance, see there) in front of TARGET_PORT; prints its port.
# Its control port is in $BMF_WORK/NAME.ctl, its PID in NAME.pid (stopped
# at exit); np_ctl NAME COMMAND sends it a command and prints the answer.
tap_netproxy() {
	local name=$1 port ctl
	[ -x "$BMF_WORK/netproxy" ] ||
		gcc -O2 -Wall -Wextra -Werror -o "$BMF_WORK/netproxy" "$BMF_ROOT/test/netproxy.c" ||
		{ not_ok "netproxy builds"; exit 0; }
	port=$(bmf_free_port)
	ctl=$(bmf_free_port)
	"$BMF_WORK/netproxy" "$port" "$2" "$ctl" "${3:-0}" "${4:-0}" </dev/null >"$BMF_WORK/$name.log" 2>&1 &
	echo $! >"$BMF_WORK/$name.pid"
	echo "$ctl" >"$BMF_WORK/$name.ctl"
	for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$ctl") 2>/dev/null && break; sleep 0.05; done
	echo "$port"
}
np_ctl() {
	local l
	exec 3<>"/dev/tcp/127.0.0.1/$(cat "$BMF_WORK/$1.ctl")"
	echo "$2" >&3
	read -r l <&3
	exec 3<&-
	echo "$l"
}
# a fresh database with the extension, for one shell test
tap_db() {
	BMF_DB=${1:-bmf_t}
	psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $BMF_DB" -c "CREATE DATABASE $BMF_DB" >/dev/null
	psql -X -q -d "$BMF_DB" -c "CREATE EXTENSION bmfredis" >/dev/null
	export BMF_DB
}
# tap_restart_worker: the database's worker starts anew (to read settings
# made with ALTER DATABASE), and has made its first pass; prints "restarted"
tap_restart_worker() {
	local old w
	old=$(q "SELECT worker_pid FROM redis_health()")
	[ -n "$old" ] && q "SELECT pg_terminate_backend($old)" >/dev/null
	for _ in $(seq 1 100); do
		w=$(q "SELECT worker_pid FROM redis_health()")
		if [ -n "$w" ] && [ "$w" != "$old" ]; then
			sleep 0.5	# its first pass records the Redis and prefix it serves
			echo restarted
			return 0
		fi
		sleep 0.1
	done
	return 1
}
# subscriber_pid [DB]: the pid of the database's worker once it relays
# channels (waits up to 10 s), or nothing
subscriber_pid() {
	local i pid
	for i in $(seq 1 100); do
		pid=$(psql -X -A -t -d "${1:-$BMF_DB}" -c "SELECT subscriber_pid FROM redis_health()" 2>/dev/null)
		[ -n "$pid" ] && { echo "$pid"; return 0; }
		sleep 0.1
	done
	return 1
}
# server_set NAME=VALUE ...: ALTER SYSTEM SET each, reload, give backends
# and workers time to see it; server_reset NAME ...: the same, RESET
server_set() {
	local a args=()
	for a in "$@"; do args+=(-c "ALTER SYSTEM SET ${a%%=*} = '${a#*=}'"); done
	psql -X -q -d postgres "${args[@]}" -c "SELECT pg_reload_conf()" >/dev/null
	sleep 0.5
}
server_reset() {
	local a args=()
	for a in "$@"; do args+=(-c "ALTER SYSTEM RESET $a"); done
	psql -X -q -d postgres "${args[@]}" -c "SELECT pg_reload_conf()" >/dev/null
	sleep 0.5
}
# tap_cold_mark [LOG]: where the server log is now; tap_cold_over MARK
# [LOG]: after a crash, wait (up to 60 s) until the cold start that began
# since MARK is over: every database queued its namespace (the launcher
# says so) and nothing waits any more in this test's database.  LOG: the main test server's by default.
tap_cold_mark() { grep -c 'queued its cold-start invalidation' "${1:-$BMF_WORK/pgdata.log}"; }
tap_cold_over() {
	local i log=${2:-$BMF_WORK/pgdata.log}
	for i in $(seq 1 600); do
		[ "$(grep -c 'queued its cold-start invalidation' "$log")" -gt "$1" ] &&
			[ "$(q "SELECT retry_pending FROM redis_workers() WHERE database = current_database()" 2>/dev/null)" = 0 ] &&
			return 0
		sleep 0.1
	done
	return 1
}
# regress_passed OUT SUITE: pg_regress' output OUT says SUITE passed ("test
# name ... ok" up to PostgreSQL 15, TAP's "ok N - name" from 16 on)
regress_passed() { grep -Eq "^((test| ) *$2 +\.\.\. ok|ok [0-9]+ +[-+] +$2( |$))" "$1"; }
