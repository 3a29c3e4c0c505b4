"""The runtime: worker, executor, scheduler services. Imports core and store only."""
