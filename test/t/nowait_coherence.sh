# nowait_coherence: the coherence checker with bmfredis.commit_wait = off
# (the database's worker sends every COMMIT's invalidations) under the
# same faults.  Other sessions may read an old value until the worker has
# sent them, so reads are not held to the COMMIT (their count is printed);
# expected: at rest every cached row equals its table's, and nothing
# crashed.
BMF_COHERENCE_COMMIT_WAIT=off . "$(dirname "$0")/coherence.sh"
