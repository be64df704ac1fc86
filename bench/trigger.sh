# bench/trigger.sh: UPDATE of every row of a products table, per trigger
# variant, on a fresh table each run (autovacuum off, CHECKPOINT before
# timing); the time covers the UPDATE and its COMMIT.  Sourced by bench/run.

trigger_setup() {
	psql -X -q -d bench >/dev/null <<'SQL'
CREATE OR REPLACE FUNCTION bench_noop() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NULL; END$$;
CREATE OR REPLACE FUNCTION bench_notify() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN PERFORM pg_notify('product_changed', NEW.id::text); RETURN NULL; END$$;
SQL
}

# trigger_once VARIANT ROWS -> milliseconds
trigger_once() {
	psql -X -q -d bench -v rows="$2" -v variant="$1" -f "$BMF_ROOT/bench/trigger_update.sql" 2>>"$BMF_WORK/bench-errors.log" | tail -1
}

# bench_trigger ROWS VARIANT... : rounds of none + each variant
bench_trigger() {
	local rows=$1; shift
	local v i base t
	declare -A times ratios
	for i in $(seq 1 "$BMF_BENCH_RUNS"); do
		base=$(trigger_once none "$rows")
		times[none]+="$base "
		for v in "$@"; do
			if [ "$v" = watch_redis_down ]; then
				"$BMF_REDISCTL" stop
				t=$(trigger_once watch "$rows")
				"$BMF_REDISCTL" start
			else
				t=$(trigger_once "$v" "$rows")
			fi
			times[$v]+="$t "
			ratios[$v]+="$(ratio "$t" "$base") "
		done
	done
	record "UPDATE $rows rows, no trigger" "$(tr ' ' '\n' <<<"${times[none]}" | grep . | median)" ms
	for v in "$@"; do
		record "UPDATE $rows rows, $v" "$(tr ' ' '\n' <<<"${times[$v]}" | grep . | median)" ms \
			"no trigger" "$(tr ' ' '\n' <<<"${ratios[$v]}" | grep . | median)" "$(trigger_target "$v")"
	done
}

trigger_target() {
	case $1 in
	watch) echo "<= 1.3" ;;
	watch_redis_down) echo "<= 1.5" ;;
	*) echo "" ;;
	esac
}
