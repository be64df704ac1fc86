# far_near_race: near_race with the backends 5 ms (round trip) from Redis,
# with up to 1 ms of jitter each way, through test/netproxy, whose link is
# also held (a partition) and reset among the faults.  The promise does not
# depend on distance: 0 violations.
BMF_NEAR_RACE_FAR="2500 1000" BMF_NEAR_RACE_READS=${BMF_NEAR_RACE_READS:-1500} \
	. "$(dirname "$0")/near_race.sh"
