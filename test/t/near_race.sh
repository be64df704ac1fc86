# near_race: the near-cache against a writer it does not know (ioredis, in
# Node), under faults and with a busy loop on every core (a Redis starved
# of CPU is late with its invalidations).  Two backends with
# bmfredis.near_cache_max_lag = 0 (the strict form of the promise) read
# 50,000 times each: nr:acked:<k>
# through the ordinary path, then nr:race:<k> through the near-cache (one
# read in four by redis_cache_mget, with another key and a missing one); a
# value older than the one acknowledged before the read began is a
# violation.  Meanwhile FLUSHALL, CLIENT KILL of the subscriber and of
# normal connections, DEBUG SLEEP, a tracking table of two keys and a
# Redis restart.  Expected: 0 violations, and reads served from the
# backends' memory (as many as the writer leaves unchanged).
#   BMF_NEAR_RACE_FAR="DELAY_US JITTER_US": the backends reach Redis through
#   test/netproxy at that distance (the writer does not), and the faults
#   add the link's own: held (a partition), reset; the writer pauses 20 ms
#   between writes, or every copy would be overwritten before a read that
#   takes round trips could find it again.  BMF_NEAR_RACE_READS (default
#   50,000) the reads of each backend.
. "$(dirname "$0")/../tap.sh"
tap_need node=nodejs npm=npm
tap_db bmf_race
R=$BMF_REDISCTL
q "ALTER DATABASE bmf_race SET bmfredis.key_prefix = 'nr:'" >/dev/null
tap_ioredis
port=$($R port)
keys=20
reads=${BMF_NEAR_RACE_READS:-50000}
far=${BMF_NEAR_RACE_FAR:-}
reach=""
pause=0
gap=0.15	# between faults
if [ -n "$far" ]; then
	pause=20
	gap=0.5
	read -r delay jitter <<<"$far"
	reach="SET bmfredis.port = $(tap_netproxy race "$port" "$delay" "$jitter");"
fi

reader() {
	psql -X -q -A -t -d bmf_race <<SQL
$reach
SET bmfredis.near_cache = on;
SET bmfredis.near_cache_prefixes = 'race:';
SET bmfredis.near_cache_max_lag = 0;
SET bmfredis.on_error = 'ignore';
DO \$\$
DECLARE
    w bigint; v bigint; bad int := 0; reads int := 0; k int;
BEGIN
    FOR i IN 1..$reads LOOP
        k := i % $keys;
        w := redis_cache_get('acked:' || k)::bigint;
        IF i % 4 = 0 THEN
            -- through MGET: the key among others, hits and misses in one call
            v := (redis_cache_mget(ARRAY['race:' || k, 'race:' || ((k + 1) % $keys), 'race:none']))[1]::bigint;
        ELSE
            v := redis_cache_get('race:' || k)::bigint;
        END IF;
        reads := reads + 1;
        IF v IS NOT NULL AND w IS NOT NULL AND v < w THEN
            bad := bad + 1;
            RAISE NOTICE 'violation: key % read % after % was acknowledged', k, v, w;
        END IF;
    END LOOP;
    RAISE NOTICE 'reads=% violations=%', reads, bad;
END
\$\$;
SELECT name || '=' || value FROM redis_stats WHERE name IN ('near_cache_hits', 'near_cache_misses', 'near_cache_rejections', 'near_cache_full_flushes');
SQL
}

bmf_busy_start
trap bmf_busy_stop EXIT
node "$BMF_ROOT/test/near_writer.js" "$port" 30 "$keys" "$pause" >"$BMF_WORK/writer.out" 2>&1 &
writer=$!
sleep 0.5
reader >"$BMF_WORK/reader1.out" 2>&1 &
r1=$!
reader >"$BMF_WORK/reader2.out" 2>&1 &
r2=$!
# faults while they read
i=0
while kill -0 $r1 2>/dev/null || kill -0 $r2 2>/dev/null; do
	sleep "$gap"
	if [ -n "$far" ] && [ $((i % 5)) = 4 ]; then
		# the link's own faults: a partition of 0.3 s, then a reset
		if [ $((i % 10)) = 4 ]; then
			np_ctl race hold >/dev/null; sleep 0.3; np_ctl race release >/dev/null
		else
			np_ctl race reset >/dev/null
		fi
		i=$((i + 1))
		continue
	fi
	case $((i % 7)) in
	0) $R cli FLUSHALL >/dev/null 2>&1 ;;
	1) $R cli CLIENT KILL TYPE pubsub >/dev/null 2>&1 ;;
	2) $R cli CONFIG SET tracking-table-max-keys 2 >/dev/null 2>&1 ;;
	3) $R cli DEBUG SLEEP 0.05 >/dev/null 2>&1 ;;
	4) $R cli CONFIG SET tracking-table-max-keys 0 >/dev/null 2>&1 ;;
	5) $R cli CLIENT KILL TYPE normal SKIPME yes >/dev/null 2>&1 ;;
	6) [ $i -lt 20 ] && $R restart >/dev/null 2>&1 ;;
	esac
	i=$((i + 1))
done
wait $r1 $r2
bmf_busy_stop
kill -TERM $writer 2>/dev/null
wait $writer 2>/dev/null
writes=$(tail -1 "$BMF_WORK/writer.out")
$R cli CONFIG SET tracking-table-max-keys 0 >/dev/null 2>&1

total=0; bad=0; hits=0; misses=0
for f in "$BMF_WORK/reader1.out" "$BMF_WORK/reader2.out"; do
	line=$(grep -o 'reads=[0-9]* violations=[0-9]*' "$f")
	r=${line#reads=}; r=${r%% *}; v=${line##*violations=}
	total=$((total + ${r:-0})); bad=$((bad + ${v:-1}))
	h=$(sed -n 's/^near_cache_hits=//p' "$f"); m=$(sed -n 's/^near_cache_misses=//p' "$f")
	hits=$((hits + ${h:-0})); misses=$((misses + ${m:-0}))
done
is "$((2 * reads)) reads under faults (rounds of faults: $i${far:+; through netproxy at $delay us each way, jitter $jitter})" "$total" "$((2 * reads))"
is "  no value older than the last write acknowledged before the read" "$bad" "0"
check "  while the writer wrote ($writes writes acknowledged)" [ "${writes:-0}" -gt $([ "$pause" = 0 ] && echo 1000 || echo 100) ]
grep -h 'violation: ' "$BMF_WORK/reader1.out" "$BMF_WORK/reader2.out" | head -5 | sed 's/^/#   /'
check "  and the near-cache served reads from memory ($hits hits, $misses misses: a key is rewritten every 20 writes)" [ "$hits" -gt $((reads / 10)) ]
