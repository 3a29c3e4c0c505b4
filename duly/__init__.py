"""duly: durable background jobs and schedules, kept in SQLite or PostgreSQL."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from duly.app import App, BoundTask, Enqueue, Task, TaskOptions
    from duly.core.clock import Clock, SystemClock, VirtualClock
    from duly.core.errors import (
        Abort,
        ConfigurationError,
        DatabaseUnavailable,
        DuplicateKey,
        DuplicateTask,
        DuplicateTrigger,
        DulyError,
        EnqueueSkipped,
        InvalidArguments,
        InvalidOption,
        InvalidTransition,
        JobNotFound,
        NoRetry,
        SchemaOutdated,
        StaleAttempt,
        TriggerNotFound,
        UnknownTask,
    )
    from duly.core.model import Attempt, Job, KeyMode, QueueStats
    from duly.core.results import Reschedule, Snooze
    from duly.core.retry import Custom, Delays, Exponential, Fixed, RetryPolicy
    from duly.core.states import JobState, Outcome
    from duly.core.triggers import Trigger, TriggerState
    from duly.runtime.context import JobContext
    from duly.runtime.context import current as context
    from duly.runtime.worker import Worker, WorkerConfig

__version__ = "0.1.0"

#: Where each public name lives. They are imported on first use, so a process that only
#: needs a part of duly (``duly worker --processes N``'s supervisor, a CLI command) does
#: not pay for the rest: importing everything took about a quarter of a second, which every
#: worker process paid before its first job.
_EXPORTS: dict[str, tuple[str, str]] = {
    "App": ("duly.app", "App"),
    "BoundTask": ("duly.app", "BoundTask"),
    "Enqueue": ("duly.app", "Enqueue"),
    "Task": ("duly.app", "Task"),
    "TaskOptions": ("duly.app", "TaskOptions"),
    "Clock": ("duly.core.clock", "Clock"),
    "SystemClock": ("duly.core.clock", "SystemClock"),
    "VirtualClock": ("duly.core.clock", "VirtualClock"),
    "Abort": ("duly.core.errors", "Abort"),
    "ConfigurationError": ("duly.core.errors", "ConfigurationError"),
    "DatabaseUnavailable": ("duly.core.errors", "DatabaseUnavailable"),
    "DuplicateKey": ("duly.core.errors", "DuplicateKey"),
    "DuplicateTask": ("duly.core.errors", "DuplicateTask"),
    "DuplicateTrigger": ("duly.core.errors", "DuplicateTrigger"),
    "DulyError": ("duly.core.errors", "DulyError"),
    "EnqueueSkipped": ("duly.core.errors", "EnqueueSkipped"),
    "InvalidArguments": ("duly.core.errors", "InvalidArguments"),
    "InvalidOption": ("duly.core.errors", "InvalidOption"),
    "InvalidTransition": ("duly.core.errors", "InvalidTransition"),
    "JobNotFound": ("duly.core.errors", "JobNotFound"),
    "NoRetry": ("duly.core.errors", "NoRetry"),
    "SchemaOutdated": ("duly.core.errors", "SchemaOutdated"),
    "StaleAttempt": ("duly.core.errors", "StaleAttempt"),
    "TriggerNotFound": ("duly.core.errors", "TriggerNotFound"),
    "UnknownTask": ("duly.core.errors", "UnknownTask"),
    "Attempt": ("duly.core.model", "Attempt"),
    "Job": ("duly.core.model", "Job"),
    "KeyMode": ("duly.core.model", "KeyMode"),
    "QueueStats": ("duly.core.model", "QueueStats"),
    "Reschedule": ("duly.core.results", "Reschedule"),
    "Snooze": ("duly.core.results", "Snooze"),
    "Custom": ("duly.core.retry", "Custom"),
    "Delays": ("duly.core.retry", "Delays"),
    "Exponential": ("duly.core.retry", "Exponential"),
    "Fixed": ("duly.core.retry", "Fixed"),
    "RetryPolicy": ("duly.core.retry", "RetryPolicy"),
    "JobState": ("duly.core.states", "JobState"),
    "Outcome": ("duly.core.states", "Outcome"),
    "Trigger": ("duly.core.triggers", "Trigger"),
    "TriggerState": ("duly.core.triggers", "TriggerState"),
    "JobContext": ("duly.runtime.context", "JobContext"),
    "context": ("duly.runtime.context", "current"),
    "Worker": ("duly.runtime.worker", "Worker"),
    "WorkerConfig": ("duly.runtime.worker", "WorkerConfig"),
}


def __getattr__(name: str) -> Any:
    try:
        module, attr = _EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module 'duly' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))

__all__ = [
    "Abort",
    "App",
    "Attempt",
    "BoundTask",
    "Clock",
    "ConfigurationError",
    "Custom",
    "DatabaseUnavailable",
    "Delays",
    "DulyError",
    "DuplicateKey",
    "DuplicateTask",
    "DuplicateTrigger",
    "Enqueue",
    "EnqueueSkipped",
    "Exponential",
    "Fixed",
    "InvalidArguments",
    "InvalidOption",
    "InvalidTransition",
    "Job",
    "JobContext",
    "JobNotFound",
    "JobState",
    "KeyMode",
    "NoRetry",
    "Outcome",
    "QueueStats",
    "Reschedule",
    "RetryPolicy",
    "SchemaOutdated",
    "Snooze",
    "StaleAttempt",
    "SystemClock",
    "Task",
    "Trigger",
    "TriggerNotFound",
    "TriggerState",
    "TaskOptions",
    "UnknownTask",
    "VirtualClock",
    "Worker",
    "WorkerConfig",
    "__version__",
    "context",
]
