"""The PostgreSQL store (needs the ``postgres`` extra: psycopg 3 and psycopg-pool)."""

from duly.store.postgres.store import PostgresStore

__all__ = ["PostgresStore"]
