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
