"""duly: durable background jobs and schedules, kept in SQLite or PostgreSQL."""

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
