# bench/memory.sh: what an array call holds besides its arrays.  For a
# million keys, the peak resident memory (VmHWM) of a new backend that
# runs redis_cache_mget, redis_cache_mset, redis_cache_del or
# redis_invalidate(..., true), against a new backend that builds the same
# arrays without calling bmfredis (each in a session of its own: memory
# freed by one statement and kept by malloc would hide the next one's);
# the difference per key is the figure.  Then what the session still holds
# in its memory contexts after the statement (pg_backend_memory_contexts),
# against the session that only built the arrays.
# Sourced by bench/run.

# a psql session on two FIFOs (file descriptors that, unlike a coproc's,
# command substitutions inherit); MEM_PID is its backend
mem_start() {
	rm -f "$BMF_WORK/mem.in" "$BMF_WORK/mem.out"
	mkfifo "$BMF_WORK/mem.in" "$BMF_WORK/mem.out"
	psql -X -q -A -t -d bench <"$BMF_WORK/mem.in" >"$BMF_WORK/mem.out" 2>&1 &
	MEM_PSQL=$!
	exec {MEM_IN}>"$BMF_WORK/mem.in" {MEM_OUT}<"$BMF_WORK/mem.out"
	MEM_PID=$(mem_sql "SET bmfredis.key_prefix = 'mem:'; SELECT pg_backend_pid();")
}
mem_stop() {
	echo '\q' >&"$MEM_IN"
	exec {MEM_IN}>&- {MEM_OUT}<&-
	wait "$MEM_PSQL" 2>/dev/null
}
# run SQL in the session (a ; is added: a statement without one would wait), print its output
mem_sql() {
	local l
	printf '%s\n;\n\\echo __done\n' "$1" >&"$MEM_IN"
	while read -r l <&"$MEM_OUT"; do
		[ "$l" = __done ] && break
		echo "$l"
	done
}
# peak resident kB of a new session running one statement; $BMF_WORK/mem-held:
# what its memory contexts hold after it
mem_peak() {
	local out
	mem_start
	out=$(mem_sql "$1")
	case "$out" in *ERROR*) echo "$1: $out" >>"$BMF_WORK/bench-errors.log" ;; esac
	mem_held >"$BMF_WORK/mem-held"
	awk '/^VmHWM/ { print $2 }' /proc/"$MEM_PID"/status
	mem_stop
}
mem_held() { mem_sql "SELECT sum(total_bytes) FROM pg_backend_memory_contexts"; }

bench_memory() {
	local n=$1 i name call base b c held
	local keys="ARRAY(SELECT 'k' || g FROM generate_series(1, $n) g)"
	local vals="ARRAY(SELECT 'v' || g FROM generate_series(1, $n) g)"
	local -a cases=(
		"redis_cache_mget	SELECT array_length(redis_cache_mget($keys), 1)	SELECT array_length($keys, 1)"
		"redis_cache_mset	SELECT redis_cache_mset($keys, $vals)	SELECT array_length($keys, 1) + array_length($vals, 1)"
		"redis_cache_del	SELECT redis_cache_del($keys)	SELECT array_length($keys, 1)"
		"redis_invalidate(keys, true)	SELECT redis_invalidate($keys, true)	SELECT array_length($keys, 1)"
	)
	for c in "${cases[@]}"; do
		IFS=$'\t' read -r name call base <<<"$c"
		local -a v_call=() v_base=() per=() v_held=()
		for i in $(seq 1 "$BMF_BENCH_RUNS"); do
			b=$(mem_peak "$base")
			held=$(cat "$BMF_WORK/mem-held")
			c=$(mem_peak "$call")
			v_held+=("$(( $(cat "$BMF_WORK/mem-held") - held ))")
			v_base+=("$b"); v_call+=("$c")
			per+=("$(awk -v c="$c" -v b="$b" -v n="$n" 'BEGIN { printf "%.1f", (c - b) * 1024 / n }')")
		done
		b=$(printf '%s\n' "${v_base[@]}" | median)
		c=$(printf '%s\n' "${v_call[@]}" | median)
		record "$name of $n keys: backend peak" "$(awk -v k="$c" 'BEGIN { printf "%.1f", k / 1024 }')" MB \
			"the same arrays, no call" "$(ratio "$c" "$b")"
		record "  $name: memory per key beyond the arrays" "$(printf '%s\n' "${per[@]}" | median)" bytes \
			"" "" "<= 100"
		record "  $name: held after the statement" "$(printf '%s\n' "${v_held[@]}" | median)" bytes "" "" "about 0"
	done
}
