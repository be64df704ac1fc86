# bench/lib.sh: measuring helpers for bench/run (sourced).
#
# Every figure is the median of BMF_BENCH_RUNS runs; every ratio is the
# median of per-round ratios against a baseline measured in the same
# round, variants alternating, because these 2-vCPU machines are noisy.

BMF_BENCH_RUNS=${BMF_BENCH_RUNS:-5}
BMF_BENCH_OUT=${BMF_BENCH_OUT:-$BMF_ROOT/bench/out}

# median of the numbers on stdin
median() {
	sort -g | awk '{ a[NR] = $1 } END { if (NR == 0) { print "nan"; exit } if (NR % 2) print a[(NR + 1) / 2]; else printf "%.3f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}

# ratio A B, three decimals
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0) print "nan"; else printf "%.3f\n", a / b }'; }

# record NAME VALUE UNIT BASELINE_NAME RATIO TARGET: one result row
BMF_RESULTS=()
record() {
	BMF_RESULTS+=("$1|$2|$3|${4:-}|${5:-}|${6:-}")
	printf "  %-52s %12s %-8s %s\n" "$1" "$2" "$3" "${5:+ratio ${5:-} vs ${4:-}${6:+ (target ${6:-})}}" >&2
}

print_table() {
	local row
	printf '\n%-52s | %12s | %-8s | %-34s | %-8s | %s\n' "measure" "median" "unit" "baseline" "ratio" "target"
	printf '%s\n' "-----------------------------------------------------+--------------+----------+------------------------------------+----------+--------"
	for row in "${BMF_RESULTS[@]}"; do
		IFS='|' read -r n v u b r t <<<"$row"
		printf '%-52s | %12s | %-8s | %-34s | %-8s | %s\n' "$n" "$v" "$u" "$b" "$r" "$t"
	done
}

write_csv() {
	local row
	mkdir -p "$BMF_BENCH_OUT"
	{
		echo "measure,median,unit,baseline,ratio,target"
		for row in "${BMF_RESULTS[@]}"; do
			IFS='|' read -r n v u b r t <<<"$row"
			printf '"%s",%s,%s,"%s",%s,"%s"\n' "$n" "$v" "$u" "$b" "$r" "$t"
		done
	} >"$BMF_BENCH_OUT/results.csv"
}
