"""Storage: the only layer that speaks SQL. One protocol, a SQLite and a PostgreSQL store."""

from duly.store.base import Store
from duly.store.url import open_store, redact_url

__all__ = ["Store", "open_store", "redact_url"]
