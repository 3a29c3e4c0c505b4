"""Pure logic with no I/O: job states, retry policies, clocks, payload rules, durations."""
