"""The public client: ``App``, ``@app.task`` and enqueueing."""

from __future__ import annotations

import functools
import inspect
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Concatenate, Generic, ParamSpec, Protocol, TypeVar, overload

from duly.core import defaults
from duly.core.clock import Clock, SystemClock
from duly.core.durations import Duration
from duly.core.errors import DuplicateTask, EnqueueSkipped, InvalidArguments, InvalidOption, JobNotFound
from duly.core.model import (
    Attempt,
    EnqueueParams,
    EnqueueResult,
    Held,
    Job,
    JobFilter,
    KeyMode,
    QueueStats,
)
from duly.core.options import (
    TaskOptions,
    check_key,
    check_max_attempts,
    check_mode,
    check_name,
    check_priority,
    check_seconds,
    resolve_times,
)
from duly.core.payload import dump_arguments
from duly.core.retry import as_policy
from duly.core.states import JobState
from duly._admin import AdminVerbs
from duly._schedules import ScheduleVerbs
from duly.runtime.context import JobContext
from duly.runtime.hooks import Hooks
from duly.runtime.scheduler import Scheduler
from duly.runtime.worker import Worker
from duly.store.base import Store
from duly.store.url import backend_of, open_store, redact_url, resolve_url

P = ParamSpec("P")
R = TypeVar("R")


@dataclass(frozen=True, init=False)
class Enqueue:
    """One job to enqueue in bulk (``app.enqueue_many``); build it with ``task.spec(...)``.
    ``kwargs`` None is taken for none (``{}``)."""

    task: str
    args: Sequence[Any] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    queue: str | None = None
    priority: int | None = None
    run_at: datetime | str | None = None
    run_in: Duration | None = None
    expires_at: datetime | str | None = None
    expires_in: Duration | None = None
    max_attempts: int | None = None
    key: str | None = None
    mode: KeyMode | str = KeyMode.NEW

    def __init__(
        self,
        task: str,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        queue: str | None = None,
        priority: int | None = None,
        run_at: datetime | str | None = None,
        run_in: Duration | None = None,
        expires_at: datetime | str | None = None,
        expires_in: Duration | None = None,
        max_attempts: int | None = None,
        key: str | None = None,
        mode: KeyMode | str = KeyMode.NEW,
    ) -> None:
        # Written straight into the instance's dict: a frozen dataclass's own __init__ sets
        # each field through object.__setattr__, 2.7 µs an item against 0.7 (a bulk enqueue
        # of 100,000 built items spent more building them than SQLite spent storing them).
        d = self.__dict__
        d["task"] = task
        d["args"] = args
        d["kwargs"] = {} if kwargs is None else kwargs
        d["queue"] = queue
        d["priority"] = priority
        d["run_at"] = run_at
        d["run_in"] = run_in
        d["expires_at"] = expires_at
        d["expires_in"] = expires_in
        d["max_attempts"] = max_attempts
        d["key"] = key
        d["mode"] = mode


class Task(Generic[P, R]):
    """A registered function. Call it to run it here; ``enqueue`` it to run it on a worker."""

    def __init__(self, app: App, fn: Callable[P, R], name: str, options: TaskOptions) -> None:
        self.app = app
        self.fn = fn
        self.name = name
        self.defaults = options
        self.is_async = inspect.iscoroutinefunction(fn)
        functools.update_wrapper(self, fn)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return self.fn(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<duly task {self.name}>"

    def enqueue(self, *args: P.args, **kwargs: P.kwargs) -> Job:
        """Enqueue with the task's defaults. For options use ``task.options(...).enqueue``."""
        return self.app.enqueue(self.name, args=args, kwargs=kwargs)

    def options(self, *, conn: Any = None, **opts: Any) -> BoundTask[P, R]:
        """Per-call options: queue, priority, run_at, run_in, expires_at, expires_in,
        max_attempts, key, mode; ``conn`` to enqueue inside the caller's transaction."""
        unknown = set(opts) - set(Enqueue.__dataclass_fields__) - {"task", "args", "kwargs"}
        if unknown or {"task", "args", "kwargs"} & set(opts):
            raise InvalidOption(f"unknown enqueue option(s): {', '.join(sorted(set(opts) - _OPTION_NAMES))}")
        return BoundTask(self, opts, conn)

    def spec(self, *args: P.args, **kwargs: P.kwargs) -> Enqueue:
        return Enqueue(self.name, args, dict(kwargs))

    def enqueue_many(self, calls: Iterable[Sequence[Any] | Enqueue], conn: Any = None) -> list[int]:
        """Bulk enqueue: each item is a tuple of positional arguments or an ``Enqueue``."""
        items = [c if isinstance(c, Enqueue) else Enqueue(self.name, c) for c in calls]
        return self.app.enqueue_many(items, conn=conn)


_OPTION_NAMES = set(Enqueue.__dataclass_fields__) - {"task", "args", "kwargs"}


class TaskDecorator(Protocol):
    """What ``@app.task(...)`` returns: a handler's first ``ctx: JobContext`` parameter is
    supplied by the worker, so it is not part of ``enqueue``'s signature."""

    @overload
    def __call__(self, fn: Callable[Concatenate[JobContext, P], R], /) -> Task[P, R]: ...

    @overload
    def __call__(self, fn: Callable[P, R], /) -> Task[P, R]: ...


class BoundTask(Generic[P, R]):
    def __init__(self, task: Task[P, R], opts: dict[str, Any], conn: Any) -> None:
        self.task = task
        self.opts = opts
        self.conn = conn

    def enqueue(self, *args: P.args, **kwargs: P.kwargs) -> Job:
        return self.task.app.enqueue(self.task.name, args=args, kwargs=kwargs, conn=self.conn, **self.opts)

    def spec(self, *args: P.args, **kwargs: P.kwargs) -> Enqueue:
        return Enqueue(self.task.name, args, dict(kwargs), **self.opts)


class App(ScheduleVerbs, AdminVerbs):
    """A duly application: a database, its tasks, and the verbs to enqueue and steer jobs.

    ``url``: ``sqlite:///path.db`` or ``postgresql://user@host/db`` (``postgres://`` and
    ``postgresql+psycopg://`` too); without it, ``$DULY_DATABASE_URL``, else
    ``sqlite:///duly.db`` in the working directory. The database is opened on first use
    (``app.store``); SQLite migrates itself, PostgreSQL needs ``duly migrate`` (or
    ``auto_migrate=True``).
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        clock: Clock | None = None,
        prefix: str = defaults.TABLE_PREFIX,
        max_payload_bytes: int = defaults.MAX_PAYLOAD_BYTES,
        name: str = "duly",
        auto_migrate: bool = False,
    ) -> None:
        self.url = resolve_url(url)
        backend_of(self.url)  # refuse an unsupported URL now, not on first use
        self.clock: Clock = clock or SystemClock()
        self.prefix = prefix
        self.max_payload_bytes = max_payload_bytes
        self.name = name
        self.auto_migrate = auto_migrate
        self.tasks: dict[str, Task[Any, Any]] = {}
        self.hooks = Hooks()
        self.scheduler = Scheduler(_LazyStore(self), self.clock, self._trigger_params)
        self._store: Store | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<duly.App {redact_url(self.url)}>"

    # -- store -------------------------------------------------------------------------

    @property
    def store(self) -> Store:
        if self._store is None:
            with self._lock:
                if self._store is None:
                    self._store = open_store(self.url, self.clock, self.prefix, self.auto_migrate)
        return self._store

    def close(self) -> None:
        with self._lock:
            if self._store is not None:
                self._store.close()
                self._store = None

    def __enter__(self) -> App:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def migrate(self) -> list[int]:
        return self.store.migrate()

    # -- tasks -------------------------------------------------------------------------

    @overload
    def task(self, fn: Callable[Concatenate[JobContext, P], R], /) -> Task[P, R]: ...

    @overload
    def task(self, fn: Callable[P, R], /) -> Task[P, R]: ...

    @overload
    def task(
        self,
        fn: None = None,
        /,
        *,
        name: str | None = None,
        queue: str = defaults.QUEUE,
        priority: int = defaults.PRIORITY,
        max_attempts: int = defaults.MAX_ATTEMPTS,
        retry: Any = None,
        timeout: Duration | None = None,
        lease: Duration = defaults.LEASE_SECONDS,
        concurrency: int | None = None,
        stall_after: Duration | None = None,
        no_retry: Sequence[type[BaseException]] = (),
    ) -> TaskDecorator: ...

    def task(
        self,
        fn: Callable[P, R] | None = None,
        *,
        name: str | None = None,
        queue: str = defaults.QUEUE,
        priority: int = defaults.PRIORITY,
        max_attempts: int = defaults.MAX_ATTEMPTS,
        retry: Any = None,
        timeout: Duration | None = None,
        lease: Duration = defaults.LEASE_SECONDS,
        concurrency: int | None = None,
        stall_after: Duration | None = None,
        no_retry: Sequence[type[BaseException]] = (),
    ) -> Any:
        """Register a sync or async function as a task (usable with or without arguments)."""
        try:
            opts = TaskOptions(
                queue=check_name(queue, "queue"),
                priority=check_priority(priority),
                max_attempts=check_max_attempts(max_attempts),
                retry=as_policy(retry),
                timeout=check_seconds(timeout, "timeout", positive=True),
                lease=check_seconds(lease, "lease", positive=True) or defaults.LEASE_SECONDS,
                concurrency=_check_concurrency(concurrency),
                stall_after=check_seconds(stall_after, "stall_after", positive=True),
                no_retry=tuple(no_retry),
            )
        except ValueError as exc:
            raise InvalidOption(str(exc)) from None

        def register(f: Callable[P, R]) -> Task[P, R]:
            task_name = check_name(name or f"{f.__module__}.{f.__qualname__}", "task name")
            if task_name in self.tasks:
                raise DuplicateTask(f"a task named {task_name!r} is already registered")
            t = Task(self, f, task_name, opts)
            self.tasks[task_name] = t
            return t

        return register(fn) if fn is not None else register

    # -- enqueue -----------------------------------------------------------------------

    def _params(self, item: Enqueue) -> EnqueueParams:
        task_name = check_name(item.task, "task name")
        task = self.tasks.get(task_name)
        d = task.defaults if task else _UNREGISTERED
        queue, priority, max_attempts = item.queue, item.priority, item.max_attempts
        queue = d.queue if queue is None else check_name(queue, "queue")
        priority = d.priority if priority is None else check_priority(priority)
        max_attempts = d.max_attempts if max_attempts is None else check_max_attempts(max_attempts)
        times = resolve_times(self.clock.now, item.run_at, item.run_in, item.expires_at, item.expires_in)
        kwargs = item.kwargs
        if type(kwargs) is not dict:  # a plain dict is the norm; anything else is checked
            kwargs = _as_kwargs(task_name, kwargs)
        # args and kwargs are passed as given: dump_arguments refuses what is not a list /
        # tuple and a dict (converting first would store "abc" as ["a", "b", "c"])
        args_json, kwargs_json = dump_arguments(task_name, item.args, kwargs, self.max_payload_bytes)
        key = item.key
        return EnqueueParams(  # positional: this runs once per job of a bulk enqueue
            task_name, args_json, kwargs_json, queue, priority,
            times.run_at, times.delay, times.expires_at, times.expires_in,
            max_attempts, d.lease, None if key is None else check_key(key), check_mode(item.mode),
        )  # fmt: skip

    def enqueue(
        self,
        task: str | Task[Any, Any],
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        *,
        conn: Any = None,
        **options: Any,
    ) -> Job:
        """Enqueue one job of ``task`` (a name, registered here or not, or a Task).

        Options: queue, priority, run_at, run_in, expires_at, expires_in, max_attempts,
        key and mode ("new", "ignore", "replace"). With ``conn`` (sqlite3, psycopg, or a
        SQLAlchemy Connection/Session) the job exists if and only if that transaction commits.
        """
        return self.enqueue_result(task, args, kwargs, conn=conn, **options).job

    def enqueue_result(
        self,
        task: str | Task[Any, Any],
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        *,
        conn: Any = None,
        **options: Any,
    ) -> EnqueueResult:
        """Like ``enqueue``, also saying whether a job was created (False: mode "ignore"
        returned the live job that holds the key)."""
        unknown = set(options) - _OPTION_NAMES
        if unknown:
            raise InvalidOption(f"unknown enqueue option(s): {', '.join(sorted(unknown))}")
        name = task.name if isinstance(task, Task) else task
        params = self._params(Enqueue(name, args, {} if kwargs is None else kwargs, **options))
        if self.hooks.has("before_enqueue") and not self.hooks.allow_enqueue(params):
            raise EnqueueSkipped(f"a before_enqueue hook declined a job of task {name!r}; nothing was written")
        return self.store.enqueue(params, conn=conn)

    def enqueue_many(self, items: Iterable[Enqueue], conn: Any = None) -> list[int]:
        """Enqueue many jobs in one transaction (all or none); returns their ids in order.
        Every item is validated before anything is written."""
        params = [self._params(i) for i in items]
        if self.hooks.has("before_enqueue"):
            params = [p for p in params if self.hooks.allow_enqueue(p)]
        if not params:
            return []
        return self.store.enqueue_many(params, conn=conn)

    # -- steering and reading ----------------------------------------------------------

    def get_job(self, job_id: int) -> Job:
        job = self.store.get_job(job_id)
        if job is None:
            raise JobNotFound(job_id)
        return job

    def attempts(self, job_id: int) -> list[Attempt]:
        self.get_job(job_id)
        return self.store.attempts(job_id)

    def cancel(self, job_id: int) -> Job:
        """Cancel a waiting job now, or ask a running one to stop (delivered by its worker)."""
        return self.store.cancel(job_id)

    def retry(self, job_id: int) -> Job:
        """Run a failed, cancelled or expired job again now, with a fresh attempt budget."""
        return self.store.retry(job_id)

    def delete(self, job_id: int) -> None:
        if not self.store.delete(job_id):
            raise JobNotFound(job_id)

    def jobs(
        self,
        *,
        queue: str | None = None,
        state: JobState | str | None = None,
        task: str | None = None,
        text: str | None = None,
        before_id: int | None = None,
        limit: int = 50,
    ) -> list[Job]:
        st = JobState(state) if state is not None else None
        return self.store.list_jobs(JobFilter(queue, st, task, text, before_id, limit))

    def stats(self, exact: bool = False) -> list[QueueStats]:
        """Jobs per queue and state. Waiting and running jobs are counted exactly (from the
        indexes of live jobs); finished ones exactly up to a limit per queue and state
        (``duly.core.defaults.STATS_EXACT_FINAL``, a million), estimated above it and named in
        ``QueueStats.estimated``, so a call stays fast with millions of finished jobs.
        ``exact=True`` counts every row (a scan of an index of the whole table)."""
        if exact:
            return self.store.stats()
        lapsed = self.store.lease_expired()
        return [
            QueueStats(c.queue, c.counts, lapsed.get(c.queue, 0), c.estimated)
            for c in self.store.queue_counts(defaults.STATS_EXACT_FINAL)
            if c.total or c.queue in lapsed
        ]

    # -- hooks and workers --------------------------------------------------------------

    def on(self, event: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Register a hook: ``@app.on("success")``. Events: before_enqueue, start, success,
        failure, permanent_failure, timeout, after. A hook that raises is logged and ignored."""

        def register(fn: Callable[..., Any]) -> Callable[..., Any]:
            return self.hooks.add(event, fn)

        return register

    def worker(self, **config: Any) -> Worker:
        """A worker for this app (see ``WorkerConfig`` for the options); ``.run()`` blocks."""
        return Worker(self, **config)

    def set_progress(self, job_id: int, attempt: int, done: int, total: int | None = None) -> None:
        self.store.set_progress(Held(job_id, attempt), done, total)


#: Defaults for a task this process did not register (made once: building TaskOptions per
#: job seeded a fresh random generator each time).
_UNREGISTERED = TaskOptions()


class _LazyStore:
    """Lets the scheduler reach the store without opening it at App construction."""

    def __init__(self, app: App) -> None:
        self._app = app

    def __getattr__(self, name: str) -> Any:
        return getattr(self._app.store, name)


def _as_kwargs(task: str, kwargs: Any) -> dict[str, Any]:
    """``kwargs`` that is not a plain dict: None means none, any other mapping is copied,
    anything else is refused (a list of pairs is not taken for keywords)."""
    if kwargs is None:
        return {}
    if isinstance(kwargs, Mapping):
        return dict(kwargs)
    raise InvalidArguments(f"kwargs of task {task!r} must be a mapping (a dict), got {type(kwargs).__name__}")


def _check_concurrency(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidOption(f"concurrency must be an integer >= 1, got {value!r}")
    return value


__all__ = ["App", "BoundTask", "Enqueue", "Task", "TaskOptions"]
