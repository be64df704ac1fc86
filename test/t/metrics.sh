# metrics: redis_metrics() gives exactly the metrics docs/reference.md documents
# (names, types, labels), with values that add up (counters that count,
# cumulative buckets, a reset time); and the example collectors for
# sql_exporter and pg_exporter, read with a real YAML parser, run every
# query they hold and export every documented metric with its type.
. "$(dirname "$0")/../tap.sh"
tap_need node=nodejs npm=npm
tap_db bmf_metrics
cd "$BMF_ROOT" || exit 1

# --- what docs/reference.md documents: "| `name` | type | labels | meaning |"
documented=$(sed -n -E 's/^\| `(bmfredis_[a-z_]+)` \| (counter|gauge|histogram) \| ([^|]*)\|.*$/\1 \2 \3/p' docs/reference.md |
	sed -E 's/`//g; s/, /,/g; s/ +$//' | sort)
check "docs/reference.md documents the metrics (a table of name, type, labels)" [ "$(wc -l <<<"$documented")" -ge 30 ]

# --- what redis_metrics() gives: one line per metric, its labels
q "SELECT redis_cache_set('m1', 'v'), redis_cache_get('m1'), redis_cache_get('nope')" >/dev/null
given=$(q "SELECT DISTINCT metric || ' ' || type || rtrim(' ' || concat_ws(',',
	CASE WHEN kind IS NOT NULL THEN 'kind' END, CASE WHEN class IS NOT NULL THEN 'class' END,
	CASE WHEN le IS NOT NULL THEN 'le' END)) FROM redis_metrics()" | sort)
is "redis_metrics() gives exactly the documented metrics, types and labels" "$given" "$documented"
is "  every counter's name ends in _total, and only a counter's" \
	"$(q "SELECT count(*) FROM redis_metrics() WHERE (type = 'counter') <> (metric LIKE '%\_total')")" "0"
is "  every row has a help text and a value" \
	"$(q "SELECT count(*) FROM redis_metrics() WHERE help IS NULL OR help = '' OR value IS NULL OR value < 0")" "0"
is "  errors by kind" "$(q "SELECT string_agg(kind, ' ' ORDER BY kind) FROM redis_metrics() WHERE metric = 'bmfredis_errors_total'")" \
	"connect down io protocol reply timeout"

# counters count
before=$(q "SELECT value FROM redis_metrics() WHERE metric = 'bmfredis_cache_hits_total'")
q "SELECT redis_cache_get('m1') FROM generate_series(1, 5)" >/dev/null
after=$(q "SELECT value FROM redis_metrics() WHERE metric = 'bmfredis_cache_hits_total'")
is "bmfredis_cache_hits_total counts reads that found a value" "$((after - before))" "5"

# the histogram: cumulative buckets, +Inf equal to the count, a sum
out=$(q "WITH b AS (SELECT class, le, value, row_number() OVER (PARTITION BY class ORDER BY
	CASE le WHEN '+Inf' THEN 'Infinity'::float8 ELSE le::float8 END) AS i
	FROM redis_metrics() WHERE metric = 'bmfredis_command_duration_seconds_bucket')
	SELECT count(*) FILTER (WHERE b.value < p.value) FROM b JOIN b p ON p.class = b.class AND p.i = b.i - 1")
is "histogram buckets are cumulative (never smaller than the one before)" "$out" "0"
out=$(q "SELECT count(*) FROM redis_metrics() i JOIN redis_metrics() c USING (class)
	WHERE i.metric = 'bmfredis_command_duration_seconds_bucket' AND i.le = '+Inf'
	AND c.metric = 'bmfredis_command_duration_seconds_count' AND i.value = c.value")
is "  the +Inf bucket of each class equals its count" "$out" "6"
is "  bucket bounds: powers of two of microseconds, 64 us to 8.4 s, then +Inf" \
	"$(q "SELECT string_agg(le, ' ' ORDER BY ord) FROM (SELECT DISTINCT le, CASE le WHEN '+Inf' THEN 1e9 ELSE le::float8 END AS ord
		FROM redis_metrics() WHERE metric = 'bmfredis_command_duration_seconds_bucket') x" | tr ' ' '\n' | sed -n '1p;$p' | tr '\n' ' ')" \
	"0.000064 +Inf "
out=$(q "SELECT (SELECT value FROM redis_metrics() WHERE metric = 'bmfredis_command_duration_seconds_count' AND class = 'read')
	= (SELECT value FROM redis_stats WHERE name = 'latency_read_calls'),
	(SELECT value FROM redis_metrics() WHERE metric = 'bmfredis_command_duration_seconds_sum' AND class = 'read') > 0")
is "  the read count is redis_stats' latency_read_calls, and its sum is time spent" "$out" "t|t"

# reset
now=$(date +%s)
out=$(q "SELECT redis_stats_reset();
	SELECT (SELECT value FROM redis_metrics() WHERE metric = 'bmfredis_cache_hits_total'),
	       (SELECT round(value) FROM redis_metrics() WHERE metric = 'bmfredis_stats_reset_timestamp_seconds')" | tail -1)
is "redis_stats_reset() zeroes the counters" "${out%%|*}" "0"
d=$(( ${out#*|} - now ))
check "  and bmfredis_stats_reset_timestamp_seconds is the time of the reset (Unix seconds)" test "$d" -ge -2 -a "$d" -le 5
is "bmfredis_worker_up is 1 for this database's running worker" \
	"$(q "SELECT value FROM redis_metrics() WHERE metric = 'bmfredis_worker_up'")" "1"

# --- the example collectors, read by a YAML parser from npm
mkdir -p "$BMF_WORK/node"
if ! (cd "$BMF_WORK/node" && npm install --loglevel=error --no-audit --no-fund js-yaml@4 >"$BMF_WORK/npm-yaml.log" 2>&1); then
	not_ok "npm install js-yaml" "$(tail -5 "$BMF_WORK/npm-yaml.log")"
	exit 0
fi
if ! rows=$(NODE_PATH=$BMF_WORK/node/node_modules node test/metrics.js \
	examples/sql_exporter/bmfredis.collector.yml examples/pg_exporter/bmfredis.yml 2>&1); then
	not_ok "the example collectors parse as YAML" "$rows"
	exit 0
fi
ok "the example collectors parse as YAML"

# the health metrics docs/reference.md names next to the table
health=$(tr '\n' ' ' <docs/reference.md | grep -o '`bmfredis_redis_[a-z_]*` *([a-z]*' | sed -E 's/`//g; s/ *\(/ /' | sort -u)
check "docs/reference.md names the health metrics too" [ "$(wc -l <<<"$health")" -ge 5 ]
# each exporter must export the documented metrics (histogram parts as
# counters: all these exporters can express) and the health ones
want=$(printf '%s\n%s\n' "$(sed -E 's/ histogram/ counter/' <<<"$documented")" "$health" | sort)
for exporter in sql_exporter pg_exporter; do
	bad=()
	got=""
	while IFS=$'\x1f' read -r ex metric type labels column query; do
		[ "$ex" = "$exporter" ] || continue
		got+="$metric $type${labels:+ $labels}"$'\n'
		# the query runs, with a value in its value column and the labels named
		res=$(psql -X -q -A -t -v ON_ERROR_STOP=1 -d "$BMF_DB" \
			-c "SELECT count(*) FROM ($query) r WHERE r.\"$column\" IS NOT NULL$(for l in ${labels//,/ }; do printf ' AND r.\"%s\" IS NOT NULL' "$l"; done)" 2>&1)
		[ "$res" -ge 1 ] 2>/dev/null || bad+=("$metric: $res")
	done <<<"$rows"
	is "$exporter: every query runs and gives a value" "${bad[*]}" ""
	is "  it exports every documented metric with its type and labels, and no other" \
		"$(sort <<<"${got%$'\n'}")" "$want"
done
