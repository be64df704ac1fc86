# bench/trigger.sh: UPDATE of every row of a products table, per trigger
# variant, at 10,000 / 100,000 / 1,000,000 rows, on a fresh table each run
# (autovacuum off, CHECKPOINT before timing); the time covers the UPDATE
# and its COMMIT.  The watch variant is what keeps Redis true to the table
# (issue 3's redis_watch: three key templates, two tags); watch_events
# adds a change event per row (channel bench_product); watch_nostream is
# watch with bmfredis.stream_invalidations = off; watch_row is watch with
# a trigger per row; watch_redis_down is watch with Redis stopped.  With
# two CPUs or more, PostgreSQL runs on CPU 0 and Redis and memcached on
# CPU 1 (pin_apart).  Peak backend memory comes from separate, untimed
# runs.  The per-row costs go to bench/out/trigger_per_row.dat and,
# through gnuplot, to a chart.
# Sourced by bench/run.

trigger_setup() {
	psql -X -q -d bench >/dev/null <<'SQL'
CREATE EXTENSION IF NOT EXISTS pgmemcache;
CREATE OR REPLACE FUNCTION bench_noop() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NULL; END$$;
CREATE OR REPLACE FUNCTION bench_notify() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN PERFORM pg_notify('product_changed', NEW.id::text); RETURN NULL; END$$;
CREATE OR REPLACE FUNCTION bench_memcache() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN PERFORM memcache_delete('product:' || NEW.id); RETURN NULL; END$$;
SQL
}

# trigger_once VARIANT ROWS -> milliseconds.  A set-up that fails (a
# variant whose trigger could not be made) ends the whole benchmark: a
# figure measured without its trigger would look like a fast trigger.
trigger_once() {
	local out
	if ! out=$(psql -X -q -d bench -v ON_ERROR_STOP=1 -v rows="$2" -v variant="$1" \
		-f "$BMF_ROOT/bench/trigger_update.sql" 2>>"$BMF_WORK/bench-errors.log"); then
		bmf_log "trigger benchmark: variant $1 at $2 rows failed:"
		tail -3 "$BMF_WORK/bench-errors.log" >&2
		kill -TERM $$
		exit 1
	fi
	tail -1 <<<"$out"
}

# peak RssAnon (kB) of the backend running one UPDATE of VARIANT at ROWS,
# sampled from /proc every 20 ms while it runs the UPDATE or its COMMIT
trigger_peak_kb() {
	local variant=$1 rows=$2 job max=0 pid v
	trigger_once "$variant" "$rows" >/dev/null &
	job=$!
	while kill -0 "$job" 2>/dev/null; do
		for pid in $(pgrep -f '^postgres: postgres bench .*(UPDATE|COMMIT)'); do
			v=$(awk '/^RssAnon/ { print $2 }' "/proc/$pid/status" 2>/dev/null)
			[ "${v:-0}" -gt "$max" ] && max=$v
		done
		sleep 0.02
	done
	wait "$job"
	echo "$max"
}

# wait (up to 20 s) until the worker has sent what waited for Redis, so
# that its drain does not run under the next measurement
trigger_drained() {
	local i
	for i in $(seq 1 100); do
		[ "$(psql -X -At -d bench -c 'SELECT retry_pending + retry_namespaces FROM redis_health()' 2>/dev/null)" = 0 ] && return 0
		sleep 0.2
	done
}

# bench_trigger [--floors] ROWS VARIANT... : rounds of none + each variant;
# --floors: a side measurement (not charted, no memory figures)
bench_trigger() {
	local floors=false
	[ "$1" = --floors ] && { floors=true; shift; }
	local rows=$1; shift
	local v i base t runs=$BMF_BENCH_RUNS
	declare -A times ratios
	[ "$rows" -ge 1000000 ] && runs=$(( BMF_BENCH_RUNS < 3 ? BMF_BENCH_RUNS : 3 ))
	# paired: each variant's ratio is against a baseline measured right
	# before it, so that the machine's drift over a round (other tenants,
	# the worker draining after watch_redis_down) does not lean on one side
	for i in $(seq 1 "$runs"); do
		for v in "$@"; do
			base=$(trigger_once none "$rows")
			times[none]+="$base "
			if [ "$v" = watch_redis_down ]; then
				"$BMF_REDISCTL" stop
				t=$(trigger_once watch "$rows")
				"$BMF_REDISCTL" start
				repin_redis
				trigger_drained
			else
				t=$(trigger_once "$v" "$rows")
			fi
			times[$v]+="$t "
			ratios[$v]+="$(ratio "$t" "$base") "
		done
	done
	t=$(tr ' ' '\n' <<<"${times[none]}" | grep . | median)
	record "UPDATE $rows rows, no trigger" "$t" ms
	$floors || per_row "$rows" none "$t"
	for v in "$@"; do
		t=$(tr ' ' '\n' <<<"${times[$v]}" | grep . | median)
		record "UPDATE $rows rows, $v" "$t" ms \
			"no trigger" "$(tr ' ' '\n' <<<"${ratios[$v]}" | grep . | median)" "$(trigger_target "$v")"
		$floors || per_row "$rows" "$v" "$t"
	done
	$floors && return 0
	local none_kb watch_kb
	none_kb=$(trigger_peak_kb none "$rows")
	watch_kb=$(trigger_peak_kb watch "$rows")
	record "UPDATE $rows rows, peak backend memory, no trigger" "$(( none_kb / 1024 ))" "MB"
	record "UPDATE $rows rows, peak backend memory, watch" "$(( watch_kb / 1024 ))" "MB" \
		"no trigger" "+$(( (watch_kb - none_kb) / 1024 )) MB" "< 64 MB more"
}

trigger_target() {
	case $1 in
	watch) echo "<= 1.3" ;;
	watch_redis_down) echo "<= 1.5" ;;
	*) echo "" ;;
	esac
}

# per-row cost, kept for the chart: per_row ROWS VARIANT MS
BENCH_PER_ROW=()
per_row() {
	BENCH_PER_ROW+=("$1 $2 $(awk -v ms="$3" -v n="$1" 'BEGIN { printf "%.3f", ms * 1000 / n }')")
}

# the chart: µs per row against rows changed, one line per variant
trigger_chart() {
	local dat=$BMF_BENCH_OUT/trigger_per_row.dat png=$BMF_BENCH_OUT/trigger_per_row.png
	local variants=(none watch watch_events watch_redis_down pg_notify memcache) rows v line val
	mkdir -p "$BMF_BENCH_OUT"
	{
		echo "# rows ${variants[*]} (µs per row; NaN: not measured at that size)"
		for rows in $(printf '%s\n' "${BENCH_PER_ROW[@]}" | awk '{ print $1 }' | sort -n -u); do
			line=$rows
			for v in "${variants[@]}"; do
				val=$(printf '%s\n' "${BENCH_PER_ROW[@]}" | awk -v r="$rows" -v v="$v" '$1 == r && $2 == v { print $3 }')
				line="$line ${val:-NaN}"
			done
			echo "$line"
		done
	} >"$dat"
	command -v gnuplot >/dev/null || { bmf_log "gnuplot missing: no chart"; return 0; }
	gnuplot <<GP
set terminal png size 900,600 noenhanced
set output '$png'
set title 'UPDATE of every row: cost per row against rows changed (median of runs)'
set xlabel 'rows changed'
set ylabel 'microseconds per row'
set logscale x
set logscale y
set key below
set grid
plot '$dat' using 1:2 with linespoints lw 2 title 'no trigger', \
     '' using 1:3 with linespoints lw 2 title 'bmfredis redis_watch (keys and tags)', \
     '' using 1:4 with linespoints lw 2 title 'redis_watch with change events', \
     '' using 1:5 with linespoints lw 2 title 'redis_watch, Redis stopped', \
     '' using 1:6 with linespoints lw 2 title 'PL/pgSQL pg_notify trigger', \
     '' using 1:7 with linespoints lw 2 title 'PL/pgSQL memcache_delete trigger'
GP
	bmf_log "chart: $png"
}
