# test/lib.sh: set-up shared by the test runner, the demo and the benchmarks.
#
# Sourced, not run.  Installs what is missing from Debian packages, builds
# and installs the extension, and starts throwaway servers on loopback
# ports it picks: redis-server (no persistence) and a PostgreSQL cluster
# run by an unprivileged user (initdb refuses root).  Every process it
# starts is recorded by PID and stopped by PID in bmf_cleanup, which the
# caller installs as an EXIT trap.

BMF_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BMF_USER=${BMF_USER:-bmfredis_test}

# The PostgreSQL major version to build for and test on: BMF_PG if set,
# else the distribution's own (Debian 12: 15, Debian 13: 17, testing: 18,
# whatever apt's "postgresql" package depends on).  Its bin directory goes
# first in PATH, so that pg_config, psql and the rest are that version's
# whichever others are installed; make reads PG_CONFIG.
bmf_default_pg() {
	local codename v
	codename=$(. /etc/os-release 2>/dev/null && echo "${VERSION_CODENAME:-}")
	case $codename in
	bookworm) echo 15; return ;;
	trixie) echo 17; return ;;
	esac
	v=$(apt-cache depends postgresql 2>/dev/null | sed -n 's/^ *Depends: postgresql-\([0-9][0-9]*\)$/\1/p' | head -1)
	if [ -z "$v" ] && [ "$(id -u)" = 0 ]; then
		apt-get update -q >/tmp/bmfredis-apt.log 2>&1
		v=$(apt-cache depends postgresql 2>/dev/null | sed -n 's/^ *Depends: postgresql-\([0-9][0-9]*\)$/\1/p' | head -1)
	fi
	echo "$v"
}
BMF_PG=${BMF_PG:-$(bmf_default_pg)}
case $BMF_PG in
15 | 16 | 17 | 18) ;;
"") printf 'error: cannot tell which PostgreSQL this system ships (no Debian 12 or 13, and apt has no "postgresql" package): set BMF_PG to the major version to use\n' >&2; exit 1 ;;
*) printf 'error: BMF_PG is "%s": bmfredis builds for PostgreSQL 15 to 18\n' "$BMF_PG" >&2; exit 1 ;;
esac
PG_CONFIG=/usr/lib/postgresql/$BMF_PG/bin/pg_config
PATH=/usr/lib/postgresql/$BMF_PG/bin:$PATH
export BMF_PG PG_CONFIG PATH

# The Debian packages each entry point installs.  An entry "program=package"
# installs the package only when the program is missing (Node.js may come
# from elsewhere, and NodeSource's nodejs conflicts with Debian's npm).
# test/t/programs.sh checks that these cover every program the entry
# points' scripts call, apart from what every Debian system has.
BMF_PACKAGES="postgresql-$BMF_PG postgresql-server-dev-$BMF_PG postgresql-client-$BMF_PG redis-server redis-tools libhiredis-dev libssl-dev openssl make gcc procps"
BMF_DEMO_PACKAGES="$BMF_PACKAGES"
BMF_TEST_PACKAGES="$BMF_PACKAGES redis-sentinel node=nodejs npm=npm"
BMF_FUZZ_PACKAGES="clang libclang-rt-dev"
BMF_PACKAGE_PACKAGES="build-essential debhelper dpkg-dev postgresql-server-dev-all"
BMF_VALGRIND_PACKAGES="$BMF_PACKAGES valgrind"
BMF_BENCH_PACKAGES="$BMF_PACKAGES postgresql-contrib memcached postgresql-$BMF_PG-pgmemcache gnuplot-nox node=nodejs npm=npm"
# BMF_SERVER=valkey runs Valkey (on Debian 12, 8.0 from bookworm-backports)
# instead of Redis as every test server; redis-cli stays the client either
# way
BMF_SERVER=${BMF_SERVER:-redis}
BMF_VALKEY_PACKAGES="valkey-server valkey-sentinel"
# Programs of packages this machine may not have installed yet, so that the
# check can name their package before anything is installed.
BMF_PROGRAM_PACKAGES="redis-server=redis-server redis-cli=redis-tools redis-benchmark=redis-tools
redis-sentinel=redis-sentinel valkey-server=valkey-server valkey-sentinel=valkey-sentinel memcached=memcached gnuplot=gnuplot-nox valgrind=valgrind
clang=clang openssl=openssl make=make gcc=gcc node=nodejs npm=npm pgrep=procps ps=procps
pg_config=postgresql-client-$BMF_PG psql=postgresql-client-$BMF_PG pgbench=postgresql-$BMF_PG initdb=postgresql-$BMF_PG
pg_ctl=postgresql-$BMF_PG postgres=postgresql-$BMF_PG pg_isready=postgresql-client-$BMF_PG getconf=libc-bin
pg_regress=postgresql-client-$BMF_PG pg_isolation_regress=postgresql-client-$BMF_PG
dpkg-buildpackage=dpkg-dev dpkg-deb=dpkg pg_buildext=postgresql-common"

bmf_log() { printf '%s\n' "$*" >&2; }
bmf_die() { bmf_log "error: $*"; exit 1; }

bmf_need_root() {
	[ "$(id -u)" = 0 ] || bmf_die "run as root (or with sudo): it installs packages and creates the user $BMF_USER"
}

# bmf_install_packages PKG...: apt-get install whatever is not installed
# yet; "program=package" installs package when program is missing
bmf_install_packages() {
	local missing=() p
	for p in "$@"; do
		case $p in
		*=*) command -v "${p%%=*}" >/dev/null 2>&1 || missing+=("${p#*=}") ;;
		*) dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p") ;;
		esac
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	case " ${missing[*]} " in
	*" postgresql-$BMF_PG "*)
		if [ -z "$(apt-cache show "postgresql-$BMF_PG" 2>/dev/null | head -1)" ]; then
			apt-get update -q >/tmp/bmfredis-apt.log 2>&1
			[ -n "$(apt-cache show "postgresql-$BMF_PG" 2>/dev/null | head -1)" ] ||
				bmf_die "apt knows no package postgresql-$BMF_PG (Debian 12 has 15, Debian 13 17, testing 18; none has 16): pick another BMF_PG, or add a source that has it (apt.postgresql.org)"
		fi ;;
	esac
	bmf_log "installing from Debian: ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	# Debian would start a system redis-server and PostgreSQL cluster on
	# install; we use our own throwaway servers, so forbid that (the
	# standard policy-rc.d mechanism), unless the machine has its own policy.
	local policy=""
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
		chmod 755 /usr/sbin/policy-rc.d
		policy=1
	fi
	# another apt (a test/matrix preparing its chroots) may hold the lock: wait
	if ! apt-get -o DPkg::Lock::Timeout=600 install -y -q "${missing[@]}" >/tmp/bmfredis-apt.log 2>&1; then
		apt-get update -q >>/tmp/bmfredis-apt.log 2>&1
		apt-get -o DPkg::Lock::Timeout=600 install -y -q "${missing[@]}" >>/tmp/bmfredis-apt.log 2>&1 ||
			{ [ -n "$policy" ] && rm -f /usr/sbin/policy-rc.d
			  bmf_die "apt-get install ${missing[*]} failed; see /tmp/bmfredis-apt.log"; }
	fi
	[ -n "$policy" ] && rm -f /usr/sbin/policy-rc.d
	return 0
}

# bmf_enable_backports: Debian 12's bookworm-backports suite (where Valkey
# 8 is), added to apt's sources when no source lists it yet; Debian 13 and
# later have Valkey in their main suite
bmf_enable_backports() {
	[ "$(. /etc/os-release 2>/dev/null && echo "${VERSION_CODENAME:-}")" = bookworm ] || return 0
	grep -rqs bookworm-backports /etc/apt/sources.list /etc/apt/sources.list.d/ && return 0
	bmf_log "adding bookworm-backports to apt's sources (/etc/apt/sources.list.d/bmfredis-backports.sources)"
	cat >/etc/apt/sources.list.d/bmfredis-backports.sources <<EOF
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
	apt-get update -q >>/tmp/bmfredis-apt.log 2>&1 || bmf_die "apt-get update failed; see /tmp/bmfredis-apt.log"
}

# bmf_install_server: the server BMF_SERVER names (redis comes with
# BMF_PACKAGES; valkey from the distribution, or bookworm-backports on Debian 12)
bmf_install_server() {
	case $BMF_SERVER in
	redis) ;;
	valkey)
		command -v valkey-server >/dev/null && command -v valkey-sentinel >/dev/null && return 0
		bmf_enable_backports
		bmf_install_packages $BMF_VALKEY_PACKAGES ;;
	*) bmf_die "BMF_SERVER is '$BMF_SERVER': it can be redis or valkey" ;;
	esac
}

# bmf_install_everything: what every stage of test/run installs (test/matrix
# prepares a chroot with it)
bmf_install_everything() {
	bmf_install_packages $BMF_TEST_PACKAGES $BMF_PACKAGE_PACKAGES $BMF_FUZZ_PACKAGES ca-certificates && bmf_install_server
}

# bmf_server_bin / bmf_sentinel_bin: the server program BMF_SERVER names,
# and its Sentinel
bmf_server_bin() { case $BMF_SERVER in valkey) echo valkey-server ;; *) echo redis-server ;; esac; }
bmf_sentinel_bin() { case $BMF_SERVER in valkey) echo valkey-sentinel ;; *) echo redis-sentinel ;; esac; }

bmf_build_install() {
	local cflags=${BMF_CFLAGS:--Wall -Wextra}
	bmf_log "building bmfredis (PG_CFLAGS='$cflags')"
	make -s -C "$BMF_ROOT" PG_CFLAGS="$cflags" >/tmp/bmfredis-build.log 2>&1 ||
		{ cat /tmp/bmfredis-build.log >&2; bmf_die "build failed"; }
	make -s -C "$BMF_ROOT" install >>/tmp/bmfredis-build.log 2>&1 ||
		{ cat /tmp/bmfredis-build.log >&2; bmf_die "install failed"; }
}

bmf_setup_user() {
	id "$BMF_USER" >/dev/null 2>&1 ||
		useradd --system --no-create-home --shell /usr/sbin/nologin "$BMF_USER" ||
		bmf_die "could not create user $BMF_USER"
}

# run a command as the unprivileged user
bmf_as_user() {
	setpriv --reuid="$BMF_USER" --regid="$BMF_USER" --init-groups -- "$@"
}

# the same for a server started in the background: "bmf_spawn_as_user cmd &"
# execs, so that $! is the server's own PID
bmf_spawn_as_user() {
	exec setpriv --reuid="$BMF_USER" --regid="$BMF_USER" --init-groups -- "$@"
}

bmf_workdir() {
	BMF_WORK=$(mktemp -d /tmp/bmfredis.XXXXXX)
	chmod 755 "$BMF_WORK"
	chown "$BMF_USER" "$BMF_WORK"
	export BMF_WORK
}

# a loopback TCP port nobody listens on, not handed out before in this run
BMF_PORTS_USED=" "
bmf_free_port() {
	local p i lo=20000 hi=60000 elo
	# below the kernel's ephemeral range: a port some client socket used
	# (now in TIME_WAIT, thousands after a reconnect test) cannot be bound
	# for a minute, even by a server with SO_REUSEADDR
	read -r elo _ </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || elo=32768
	[ "${elo:-0}" -gt 11000 ] && hi=$elo && lo=$(( elo > 21000 ? 10000 : 1024 ))
	for i in $(seq 1 200); do
		p=$((lo + (RANDOM * 32768 + RANDOM) % (hi - lo)))
		case "$BMF_PORTS_USED" in *" $p "*) continue ;; esac
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			BMF_PORTS_USED="$BMF_PORTS_USED$p "
			echo "$p"
			return 0
		fi
	done
	bmf_die "no free port found"
}

# PIDs started by this shell, stopped by PID at exit
BMF_PIDS=()
bmf_track() { BMF_PIDS+=("$1"); }

bmf_stop_pid() {
	local pid=$1 sig=${2:-TERM} i
	kill -0 "$pid" 2>/dev/null || return 0
	kill -CONT "$pid" 2>/dev/null
	kill -"$sig" "$pid" 2>/dev/null
	for i in $(seq 1 100); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null
}

bmf_cleanup() {
	local pid f
	# servers restarted by test/redisctl keep their current PID in a file
	if [ -n "${BMF_WORK:-}" ]; then
		for f in "$BMF_WORK"/*.pid; do
			[ -f "$f" ] && bmf_stop_pid "$(cat "$f")"
		done
	fi
	for pid in "${BMF_PIDS[@]}"; do
		bmf_stop_pid "$pid"
	done
	if [ -n "${BMF_PG_PID:-}" ]; then
		bmf_stop_pid "$BMF_PG_PID" INT
	fi
	if [ -n "${BMF_WORK:-}" ] && [ -z "${BMF_KEEP:-}" ]; then
		rm -rf "$BMF_WORK"
	fi
}

# bmf_start_redis NAME [redis-server options...]: sets BMF_REDIS_PORT
# Redis runs as the test user with no persistence; its PID goes to
# $BMF_WORK/NAME.pid (test/redisctl restarts it and updates the file).
bmf_start_redis() {
	local name=$1; shift
	command -v "$(bmf_server_bin)" >/dev/null || bmf_die "$(bmf_server_bin) is missing: run test/run, which installs it"
	local port; port=$(bmf_free_port)
	mkdir -p "$BMF_WORK/$name"
	chown "$BMF_USER" "$BMF_WORK/$name"
	cat >"$BMF_WORK/$name.args" <<EOF
--port $port --bind 127.0.0.1 --save "" --appendonly no --enable-debug-command local --dir $BMF_WORK/$name --logfile $BMF_WORK/$name/redis.log --daemonize no $*
EOF
	bmf_spawn_as_user sh -c "exec $(bmf_server_bin) $(cat "$BMF_WORK/$name.args")" </dev/null >/dev/null 2>&1 &
	echo $! >"$BMF_WORK/$name.pid"
	echo "$port" >"$BMF_WORK/$name.port"
	bmf_wait_redis "$port" || { cat "$BMF_WORK/$name/redis.log" >&2; bmf_die "$(bmf_server_bin) did not start"; }
	BMF_REDIS_PORT=$port
}

# bmf_start_cluster MASTERS REPLICAS_PER_MASTER [NAME]: a Redis Cluster on
# loopback made by redis-cli --cluster create; nodes are NAME1..NAMEn
# (NAME defaults to c; masters first, as redis-cli assigns them), each
# with its PID file like any bmf_start_redis server; bmf_stop_cluster NAME
# stops them.  Sets BMF_CLUSTER_PORTS (all nodes, in order).
# With BMF_CLUSTER_TLS=<certs dir> every port (clients, cluster bus,
# replication) is TLS only; with BMF_CLUSTER_PASS the nodes require that
# password.  bmf_cluster_cli PORT ARGS... talks to a node either way.
bmf_cluster_cli() {
	local p=$1; shift
	redis-cli -p "$p" ${BMF_CLUSTER_TLS:+--tls --cacert "$BMF_CLUSTER_TLS/ca.crt"} \
		${BMF_CLUSTER_PASS:+--no-auth-warning -a "$BMF_CLUSTER_PASS"} "$@"
}
bmf_stop_cluster() {
	local f
	for f in "$BMF_WORK/${1:-c}"[0-9]*.pid; do
		[ -f "$f" ] && bmf_stop_pid "$(cat "$f")"
	done
	return 0
}
bmf_start_cluster() {
	local masters=$1 replicas=$2 c=${3:-c} i p elo ports addrs=() extra=""
	read -r elo _ </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || elo=32768
	BMF_CLUSTER_PORTS=()
	for i in $(seq 1 $((masters * (1 + replicas)))); do
		# the cluster bus listens on port + 10000: keep both below the
		# ephemeral range and free
		for _ in $(seq 1 50); do
			p=$(bmf_free_port)
			[ $((p + 10000)) -lt "$elo" ] || continue
			(exec 3<>"/dev/tcp/127.0.0.1/$((p + 10000))") 2>/dev/null && continue
			break
		done
		ports="--port $p"
		if [ -n "${BMF_CLUSTER_TLS:-}" ]; then
			ports="--port 0 --tls-port $p --tls-cluster yes --tls-replication yes --tls-cert-file $BMF_CLUSTER_TLS/server.crt --tls-key-file $BMF_CLUSTER_TLS/server.key --tls-ca-cert-file $BMF_CLUSTER_TLS/ca.crt --tls-client-cert-file $BMF_CLUSTER_TLS/client.crt --tls-client-key-file $BMF_CLUSTER_TLS/client.key --tls-auth-clients no"
		fi
		[ -n "${BMF_CLUSTER_PASS:-}" ] && extra="--requirepass $BMF_CLUSTER_PASS --masterauth $BMF_CLUSTER_PASS"
		mkdir -p "$BMF_WORK/$c$i"
		chown "$BMF_USER" "$BMF_WORK/$c$i"
		echo "$ports $extra --bind 127.0.0.1 --save \"\" --appendonly no --enable-debug-command local --cluster-enabled yes --cluster-config-file $BMF_WORK/$c$i/nodes.conf --cluster-node-timeout 1000 --dir $BMF_WORK/$c$i --logfile $BMF_WORK/$c$i/redis.log --daemonize no" >"$BMF_WORK/$c$i.args"
		bmf_spawn_as_user sh -c "exec $(bmf_server_bin) $(cat "$BMF_WORK/$c$i.args")" </dev/null >/dev/null 2>&1 &
		echo $! >"$BMF_WORK/$c$i.pid"
		echo "$p" >"$BMF_WORK/$c$i.port"
		touch "$BMF_WORK/$c$i.cluster"
		BMF_CLUSTER_PORTS+=("$p")
		addrs+=("127.0.0.1:$p")
	done
	for p in "${BMF_CLUSTER_PORTS[@]}"; do
		for i in $(seq 1 100); do
			bmf_cluster_cli "$p" PING 2>/dev/null | grep -q PONG && break
			sleep 0.05
		done
	done
	bmf_cluster_cli "${BMF_CLUSTER_PORTS[0]}" --cluster create "${addrs[@]}" --cluster-replicas "$replicas" --cluster-yes \
		>"$BMF_WORK/cluster-create.log" 2>&1 || { cat "$BMF_WORK/cluster-create.log" >&2; bmf_die "redis-cli --cluster create failed"; }
	# every node must say ok, not only the first: a node that has not yet
	# heard of every slot's owner answers CLUSTERDOWN for a moment
	local all_ok
	for _ in $(seq 1 200); do
		all_ok=1
		for p in "${BMF_CLUSTER_PORTS[@]}"; do
			[ "$(bmf_cluster_cli "$p" CLUSTER INFO | tr -d '\r' | grep cluster_state)" = cluster_state:ok ] || { all_ok=""; break; }
		done
		[ -n "$all_ok" ] &&
			bmf_cluster_cli "${BMF_CLUSTER_PORTS[0]}" --cluster check "127.0.0.1:${BMF_CLUSTER_PORTS[0]}" >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	bmf_die "the cluster did not become ok"
}

bmf_wait_redis() {
	local i
	for i in $(seq 1 100); do
		case "$(redis-cli -p "$1" ping 2>&1)" in PONG | NOAUTH*) return 0 ;; esac
		sleep 0.05
	done
	return 1
}

# bmf_start_pg [extra postgresql.conf lines] [name]: a throwaway cluster
# in $BMF_WORK/<name> (default pgdata); sets PGHOST PGPORT PGUSER
# (exported) and BMF_PG_PID.  Extra lines come last, so they win.
bmf_start_pg() {
	local extra=${1:-}
	local name=${2:-pgdata}
	local pgbin; pgbin=$(pg_config --bindir)
	PGPORT=$(bmf_free_port)
	BMF_PGDATA=$BMF_WORK/$name
	bmf_as_user "$pgbin/initdb" -D "$BMF_PGDATA" -U postgres --auth=trust \
		--no-sync -E UTF8 --locale=C >"$BMF_WORK/initdb-$name.log" 2>&1 ||
		{ cat "$BMF_WORK/initdb-$name.log" >&2; bmf_die "initdb failed"; }
	cat >>"$BMF_PGDATA/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $PGPORT
unix_socket_directories = '$BMF_WORK'
fsync = off
synchronous_commit = off
full_page_writes = off
max_prepared_transactions = 4
max_worker_processes = 40
lc_messages = 'C'
shared_preload_libraries = 'bmfredis'
bmfredis.host = '127.0.0.1'
bmfredis.port = ${BMF_REDIS_PORT:-6379}
$extra
EOF
	# core files land in the data directory, for gdb after a crash
	ulimit -c unlimited 2>/dev/null
	bmf_as_user "$pgbin/pg_ctl" -D "$BMF_PGDATA" -l "$BMF_WORK/$name.log" -w -t 60 start \
		>/dev/null 2>&1 || { cat "$BMF_WORK/$name.log" >&2; bmf_die "PostgreSQL did not start"; }
	BMF_PG_PID=$(head -1 "$BMF_PGDATA/postmaster.pid")
	export PGHOST=127.0.0.1 PGPORT PGUSER=postgres BMF_PGDATA BMF_PG_PID
}

# bmf_make_certs DIR: test PKI made with the openssl CLI, readable by the
# test user.  ca.crt signs server.crt (localhost, 127.0.0.1, ::1),
# other.crt (another host name), expired.crt (valid only in 2020) and
# client.crt (client authentication); rogue-ca.crt signs rogue.crt, a
# server certificate for the right names that nobody trusts.
bmf_make_certs() {
	local d=$1 n
	mkdir -p "$d"
	(
		set -e
		cd "$d"
		ossl() { openssl "$@" >>"$d/openssl.log" 2>&1; }
		mkca() {
			ossl req -x509 -new -nodes -newkey rsa:2048 -keyout "$1.key" -out "$1.crt" \
				-days 3650 -subj "/CN=$2" -addext basicConstraints=critical,CA:TRUE \
				-addext keyUsage=critical,keyCertSign,cRLSign
		}
		mkca ca "bmfredis test CA"
		mkca rogue-ca "bmfredis rogue CA"
		# the CA database "openssl ca" needs for arbitrary validity dates
		mkdir -p cadb && : >cadb/index.txt && echo 1000 >cadb/serial
		cat >ca.cnf <<CNF
[ca]
default_ca = testca
[testca]
dir = $d
database = $d/cadb/index.txt
serial = $d/cadb/serial
new_certs_dir = $d/cadb
default_md = sha256
policy = anything
unique_subject = no
copy_extensions = copy
[anything]
commonName = supplied
CNF
		# sign NAME CA SAN EXTENDED_KEY_USAGE [openssl ca date options]
		sign() {
			local name=$1 ca=$2 san=$3 eku=$4; shift 4
			ossl req -new -nodes -newkey rsa:2048 -keyout "$name.key" -out "$name.csr" \
				-subj "/CN=$name" -addext "subjectAltName=$san" -addext "extendedKeyUsage=$eku"
			ossl ca -batch -config ca.cnf -cert "$ca.crt" -keyfile "$ca.key" \
				-in "$name.csr" -out "$name.crt" -notext "$@"
		}
		sign server ca "DNS:localhost,IP:127.0.0.1,IP:::1" serverAuth -days 3650
		sign other ca "DNS:other.example" serverAuth -days 3650
		sign expired ca "DNS:localhost,IP:127.0.0.1" serverAuth \
			-startdate 20200101000000Z -enddate 20200201000000Z
		sign rogue rogue-ca "DNS:localhost,IP:127.0.0.1" serverAuth -days 3650
		sign client ca "DNS:bmfredis-client" clientAuth -days 3650
	) || { cat "$d/openssl.log" >&2; bmf_die "could not make test certificates"; }
	chown -R "$BMF_USER" "$d"
	chmod 700 "$d"
	for n in "$d"/*.key; do chmod 600 "$n"; done
}

# reload the server's configuration after editing postgresql.conf
bmf_pg_reload() {
	kill -HUP "$BMF_PG_PID"
	sleep 0.3
}

# bmf_busy_start: a busy loop on every core (a Redis starved of CPU is
# late with what it writes); bmf_busy_stop ends them.  Their PIDs are in
# BMF_BUSY (and tracked, so that bmf_cleanup stops them too).
BMF_BUSY=()
bmf_busy_start() {
	local _
	for _ in $(seq 1 "$(getconf _NPROCESSORS_ONLN)"); do
		sh -c 'while :; do :; done' &
		BMF_BUSY+=($!)
		bmf_track $!
	done
}
bmf_busy_stop() {
	[ ${#BMF_BUSY[@]} -gt 0 ] && kill "${BMF_BUSY[@]}" 2>/dev/null
	BMF_BUSY=()
	return 0
}

# export what the SQL suites and shell tests use to reach the servers
bmf_export_env() {
	export BMF_WORK BMF_REDIS_PORT BMF_SERVER
	export BMF_REDISCTL="$BMF_ROOT/test/redisctl"
	export PGHOST PGPORT PGUSER
}
