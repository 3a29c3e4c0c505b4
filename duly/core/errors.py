"""The error tree of duly.

DulyError
├── ConfigurationError        a bad URL, option or setting (names it)
│   └── DatabaseUnavailable   the database named by the URL cannot be reached
├── SchemaOutdated            PostgreSQL schema behind this version: run ``duly migrate``
├── InvalidArguments          job arguments that are not JSON, too large, bad text
├── InvalidOption             a bad enqueue/task option (priority, delay, expiry...)
│   └── DuplicateTrigger      a trigger added under a name that is taken
├── DuplicateTask             a task name registered twice
├── UnknownTask               a task name that no code registered (when running it)
├── DuplicateKey              mode "new" and a live job holds the key
├── JobNotFound               no job with that id
├── TriggerNotFound           no trigger with that name (or webhook secret)
├── EnqueueSkipped            a before_enqueue hook declined the job (nothing written)
├── InvalidTransition         the job is in a state that does not allow the action
└── StaleAttempt              a write by a holder whose lease was lost (fenced out)

Handler-side signals (raised by task code, never by duly):

NoRetry   fail the job now, whatever attempts are left
Abort     end the job as succeeded, quietly, without retrying
"""

from __future__ import annotations


class DulyError(Exception):
    """Base class of every error duly raises."""


class ConfigurationError(DulyError, ValueError):
    pass


class DatabaseUnavailable(ConfigurationError):
    pass


class SchemaOutdated(DulyError):
    pass


class InvalidArguments(DulyError, ValueError):
    pass


class InvalidOption(DulyError, ValueError):
    """``field``: the option at fault when known, named as ``app.schedule``, ``duly triggers
    add`` and the JSON API name it (``"cron"``, ``"tz"``, ``"every"``...); else None."""

    field: str | None = None

    def __init__(self, *args: object, field: str | None = None) -> None:
        super().__init__(*args)
        if field is not None:
            self.field = field  # in __dict__: kept when pickled


class DuplicateTrigger(InvalidOption):
    """A trigger added at run time under a name another trigger holds."""

    field = "name"


class DuplicateTask(DulyError, ValueError):
    pass


class UnknownTask(DulyError, LookupError):
    pass


class DuplicateKey(DulyError):
    def __init__(self, key: str, job_id: int) -> None:
        super().__init__(f"a live job (id {job_id}) already holds key {key!r}")
        self.key = key
        self.job_id = job_id

    def __reduce__(self) -> tuple[type, tuple[str, int]]:
        return (type(self), (self.key, self.job_id))


class JobNotFound(DulyError, LookupError):
    def __init__(self, job_id: int) -> None:
        super().__init__(f"no job with id {job_id}")
        self.job_id = job_id

    def __reduce__(self) -> tuple[type, tuple[int]]:
        return (type(self), (self.job_id,))


class TriggerNotFound(DulyError, LookupError):
    pass


class EnqueueSkipped(DulyError):
    pass


class InvalidTransition(DulyError):
    pass


class StaleAttempt(DulyError):
    """The caller's attempt no longer holds the job: its lease expired and the job moved on."""

    def __init__(self, job_id: int, attempt: int) -> None:
        super().__init__(
            f"attempt {attempt} of job {job_id} no longer holds the job "
            "(lease lost, job rescued, cancelled or finished); nothing was changed"
        )
        self.job_id = job_id
        self.attempt = attempt

    def __reduce__(self) -> tuple[type, tuple[int, int]]:
        return (type(self), (self.job_id, self.attempt))


class NoRetry(Exception):
    """Raise from a handler to fail the job now, without further attempts."""


class Abort(Exception):
    """Raise from a handler to end the job as succeeded, without retrying."""
