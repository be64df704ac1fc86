# far_coherence: the coherence checker with PostgreSQL 5 ms (round trip)
# from Redis, up to 1 ms of jitter each way, through test/netproxy, whose
# link is also held and reset among the faults.  Expected, as at loopback:
# 0 violations.
BMF_COHERENCE_FAR="2500 1000" . "$(dirname "$0")/coherence.sh"
