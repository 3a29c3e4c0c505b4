"""Every tunable default of duly, in one place."""

from duly.core.payload import DEFAULT_MAX_PAYLOAD_BYTES

#: Table name prefix.
TABLE_PREFIX = "duly_"
#: Queue of a task that names none.
QUEUE = "default"
#: Priority of a job that names none (higher runs first).
PRIORITY = 0
#: Attempts a job gets before it fails for good (failed, lost and timed-out attempts count).
MAX_ATTEMPTS = 5
#: Lease length: a worker must renew its claim within this time or lose it.
LEASE_SECONDS = 60.0
#: Largest JSON size of a job's arguments, in bytes.
MAX_PAYLOAD_BYTES = DEFAULT_MAX_PAYLOAD_BYTES

# -- operating surfaces (workers' housekeeping, counts) ----------------------------------
#: Finished jobs (succeeded, failed, cancelled, expired) older than this are deleted by the
#: workers, with their attempts (seconds; ``WorkerConfig(prune_after=None)`` keeps them).
PRUNE_AFTER_SECONDS = 7 * 86400.0
#: Seconds between one worker's pruning rounds.
PRUNE_INTERVAL_SECONDS = 600.0
#: Jobs deleted per pruning transaction: short transactions, no long locks.
PRUNE_BATCH = 1000
#: A registered worker not seen for this many seconds is shown as dead.
WORKER_DEAD_AFTER_SECONDS = 60.0
#: Registry rows of workers not seen for this many seconds are deleted when pruning.
WORKER_FORGET_AFTER_SECONDS = 86400.0
#: Counts per queue and state are exact up to these numbers (live states: queued, running,
#: retrying; final states); above them the dashboard shows an estimate instead of visiting
#: every row (PostgreSQL: the planner's; SQLite, final states only: extrapolated from the
#: first entries of the index). See docs/dashboard.md.
COUNT_EXACT_LIVE = 100_000
COUNT_EXACT_FINAL = 10_000
#: ``App.stats()`` counts finished jobs exactly up to this many per queue and state (a capped
#: index range: about 0.1 s at the cap), and estimates above it; the dashboard keeps to
#: ``COUNT_EXACT_FINAL`` since it asks every few seconds.
STATS_EXACT_FINAL = 1_000_000
