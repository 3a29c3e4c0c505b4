"""Connecting to SQLite: URLs, the shared per-file connection, ``BEGIN IMMEDIATE`` with its
bounded busy retry, statements with numbered placeholders, and callers' connections."""

from __future__ import annotations

import os
import re
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from itertools import chain
from typing import Any
from urllib.parse import parse_qs, urlsplit

from duly.core.errors import ConfigurationError, DatabaseUnavailable

try:
    import fcntl
except ImportError:  # not on Windows: SQLite's own lock alone
    fcntl = None  # type: ignore[assignment]

MIN_SQLITE = (3, 35, 0)  # RETURNING
NETWORK_FS = {"nfs", "nfs4", "cifs", "smbfs", "smb3", "afs", "fuse.sshfs", "9p", "glusterfs", "ceph"}
BUSY_RETRIES = 20
#: Rows per multi-row statement (see ``SQLiteConnection._execute_rows``).
ROWS_PER_STATEMENT = 500


_NUMBERED = re.compile(r"\?(\d+)")


class Query(str):
    """A statement with plain ``?`` placeholders; ``order`` maps them to the positions of the
    parameters it was written with (``?1``, ``?2``...: sqlite3 deprecates passing a sequence
    to numbered placeholders since Python 3.12)."""

    order: tuple[int, ...] | None = None


def qmark(text: str) -> Query:
    text = re.sub(r"--[^\n]*", "", text)  # comments may mention ?1 (no string literal holds --)
    numbers = [int(n) - 1 for n in _NUMBERED.findall(text)]
    q = Query(_NUMBERED.sub("?", text))
    q.order = tuple(numbers) if numbers else None
    return q


def _bind(query: Any, params: Any) -> Any:
    order = getattr(query, "order", None)
    return params if order is None else tuple(params[i] for i in order)


class Cursor:
    """A sqlite3 cursor that binds ``Query`` parameters in their placeholders' order."""

    __slots__ = ("_cur",)

    def __init__(self, cur: sqlite3.Cursor) -> None:
        self._cur = cur

    def execute(self, query: str, params: Any = ()) -> sqlite3.Cursor:
        return self._cur.execute(query, _bind(query, params))

    def executemany(self, query: str, rows: Any) -> sqlite3.Cursor:
        order = getattr(query, "order", None)
        if order is not None:
            rows = [tuple(r[i] for i in order) for r in rows]
        return self._cur.executemany(query, rows)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cur, name)


def quote_ident(name: str) -> str:
    """A double-quoted SQLite identifier (names are also checked by ``check_prefix``)."""
    return '"' + name.replace('"', '""') + '"'


def parse_sqlite_url(url: str) -> tuple[str, dict[str, str]]:
    parts = urlsplit(url)
    if parts.scheme.lower() != "sqlite":
        raise ConfigurationError(f"not a SQLite URL: {url!r}")
    path = (parts.netloc + parts.path) if parts.netloc else parts.path
    if path.startswith("/") and not parts.netloc:
        path = path[1:]  # sqlite:///rel.db -> rel.db ; sqlite:////abs.db -> /abs.db
    if not path:
        raise ConfigurationError(f"SQLite URL {url!r} names no file; write sqlite:///path/to/file.db")
    opts = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    unknown = set(opts) - {"synchronous", "busy_timeout"}
    if unknown:
        raise ConfigurationError(f"unknown SQLite URL option(s) {sorted(unknown)} in {url!r}")
    return path, opts


def _filesystem_type(path: str) -> str | None:
    try:
        with open("/proc/mounts", encoding="utf-8") as f:
            mounts = [line.split()[:3] for line in f]
    except OSError:
        return None
    real = os.path.realpath(path)
    best, fstype = "", None
    for _dev, mnt, typ in mounts:
        if (real == mnt or real.startswith(mnt.rstrip("/") + "/")) and len(mnt) >= len(best):
            best, fstype = mnt, typ
    return fstype


class WriterTurns:
    """Turns at writing among the processes that use one SQLite file through duly: an
    exclusive ``flock`` on a file beside the database's doorbell folder, taken before
    ``BEGIN IMMEDIATE`` and given back after the commit.

    SQLite's own lock stays the one that counts (other programs, or a process whose temporary
    folder differs, meet only it). But a writer that finds SQLite's lock taken sleeps in its
    busy handler, 1, 2, 5, 10 ms and longer, and the file stays unlocked for most of that
    sleep after its holder commits; a waiter on the ``flock`` is woken by the kernel as the
    holder lets go. With two worker processes draining one file, the second otherwise took
    its turns late: both together drained no faster than one."""

    def __init__(self, path: str) -> None:
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)

    @classmethod
    def for_database(cls, db_path: str) -> AbstractContextManager[None]:
        """The turns of ``db_path``; a context that does nothing where there are none."""
        if db_path == ":memory:" or fcntl is None:
            return nullcontext()
        from duly.store.sqlite.wake import writer_lock_path

        path = writer_lock_path(db_path)
        try:
            os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
            return cls(path)
        except OSError:  # no usable temporary folder: SQLite's lock alone, as before
            return nullcontext()

    def __enter__(self) -> None:  # (writes never nest: SQLite starts no transaction within another)
        fcntl.flock(self._fd, fcntl.LOCK_EX)

    def __exit__(self, *exc: object) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        os.close(self._fd)


class _Shared:
    """The process-wide connection to one database file (one per file per process)."""

    _registry: dict[tuple[int, str], _Shared] = {}
    _registry_lock = threading.Lock()

    def __init__(self, path: str, opts: dict[str, str]) -> None:
        self.path = path
        self.lock = threading.RLock()
        self.users = 0
        try:
            self.conn = sqlite3.connect(
                path, isolation_level=None, check_same_thread=False, timeout=10.0
            )
        except sqlite3.Error as exc:
            raise DatabaseUnavailable(f"cannot open SQLite database {path!r}: {exc}") from exc
        sync = opts.get("synchronous", "normal").upper()
        if sync not in ("NORMAL", "FULL", "EXTRA"):
            self.conn.close()
            raise ConfigurationError(f"synchronous must be normal, full or extra, got {sync.lower()!r}")
        busy = int(opts.get("busy_timeout", "10000"))
        c = self.conn
        try:
            mode = c.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            c.close()
            raise DatabaseUnavailable(f"{path!r} is not a usable SQLite database: {exc}") from exc
        if mode.lower() != "wal" and path != ":memory:":
            c.close()
            raise ConfigurationError(f"could not switch {path!r} to WAL mode (got {mode})")
        c.execute(f"PRAGMA synchronous={sync}")
        c.execute(f"PRAGMA busy_timeout={busy}")
        #: This process's turn to write among duly's processes on this file, taken under ``lock``.
        self.turns = WriterTurns.for_database(path)

    @classmethod
    def get(cls, path: str, opts: dict[str, str]) -> _Shared:
        key = (os.getpid(), path if path == ":memory:" else os.path.abspath(path))
        with cls._registry_lock:
            shared = cls._registry.get(key)
            if shared is None:
                shared = cls(path, opts)
                cls._registry[key] = shared
            shared.users += 1
            return shared

    def release(self) -> None:
        with self._registry_lock:
            self.users -= 1
            if self.users == 0:
                key = next((k for k, v in self._registry.items() if v is self), None)
                if key:
                    del self._registry[key]
                self.conn.close()
                if isinstance(self.turns, WriterTurns):
                    self.turns.close()


class SQLiteConnection:
    """Mixed into ``SQLiteStore``: its transactions on the shared connection (``_shared``,
    set by the store's constructor), and statements run for many rows at once."""

    _shared: _Shared
    _q: dict[str, str]
    _rows_sql: dict[tuple[str, int, tuple[bool, ...]], str]  # see _values_sql

    @property
    def _conn(self) -> sqlite3.Connection:
        return self._shared.conn

    @contextmanager
    def _write(self) -> Iterator[Cursor]:
        """A short ``BEGIN IMMEDIATE`` transaction, retried a bounded number of times on BUSY."""
        with self._shared.lock, self._shared.turns:
            cur: Cursor = Cursor(self._conn.cursor())
            for attempt in range(BUSY_RETRIES):
                try:
                    cur.execute("BEGIN IMMEDIATE")
                    break
                except sqlite3.OperationalError as exc:
                    if "locked" not in str(exc) and "busy" not in str(exc):
                        raise
                    if attempt == BUSY_RETRIES - 1:
                        raise
                    time.sleep(min(0.01 * 2**attempt, 0.5))
            try:
                yield cur
            except BaseException:
                self._conn.rollback()
                raise
            else:
                self._commit()

    def _commit(self) -> None:
        for attempt in range(BUSY_RETRIES):
            try:
                self._conn.commit()
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or attempt == BUSY_RETRIES - 1:
                    self._conn.rollback()
                    raise
                time.sleep(min(0.01 * 2**attempt, 0.5))

    def _execute_rows(self, cur: Cursor, name: str, rows: Sequence[Sequence[Any]], before: Sequence[Any] = ()) -> list[Any]:
        """Run the named statement for many rows at once: its one ``VALUES (...)`` row is
        repeated for up to ``ROWS_PER_STATEMENT`` rows a statement (the parameters ``before``
        come first in each). One statement steps the VM once for all its rows, where an
        executemany of one-row statements steps it once a row: about twice the rate, and a
        third less for the finish of a batch. A value every row of a statement shares is
        bound once (``_values_sql``). Returns what the statements return."""
        return [row for done in self._each_chunk(cur, name, rows, before) for row in done.fetchall()]

    def _count_rows(self, cur: Cursor, name: str, rows: Sequence[Sequence[Any]], before: Sequence[Any] = ()) -> int:
        """``_execute_rows`` for a statement that returns nothing: the rows it changed."""
        return sum(done.rowcount for done in self._each_chunk(cur, name, rows, before))

    def _each_chunk(self, cur: Cursor, name: str, rows: Sequence[Sequence[Any]], before: Sequence[Any]) -> Iterator[sqlite3.Cursor]:
        if not rows:
            return
        width = len(rows[0])
        limit = cur.connection.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
        per = max(1, min(ROWS_PER_STATEMENT, (limit - len(before) - width) // width))
        for start in range(0, len(rows), per):
            chunk = rows[start : start + per]
            columns = list(zip(*chunk, strict=True))
            # tuple.count compares in C (identity first): a column whose values all equal its
            # first. Equal values bind alike in these statements (ints, floats in numeric
            # columns, texts, None), so binding the first for all changes nothing stored.
            shared = tuple(c.count(c[0]) == len(c) for c in columns)
            if not any(shared):
                params = [*before, *chain.from_iterable(chunk)]
            else:
                varying = [c for c, s in zip(columns, shared, strict=True) if not s]
                params = [*before, *(c[0] for c, s in zip(columns, shared, strict=True) if s)]
                params += chain.from_iterable(zip(*varying, strict=True))
            yield cur.execute(self._values_sql(name, len(chunk), shared), params)

    def _values_sql(self, name: str, n: int, shared: tuple[bool, ...] = ()) -> str:
        """The named statement for ``n`` rows (cached). Its ``VALUES`` row is written ``n``
        times; or, when some of its parameters take one value in every row (``shared``, by
        parameter), ``SELECT`` of those parameters and the other columns of ``n`` rows of
        ``VALUES`` holding the rest: each shared value is bound once instead of once a row
        (binding is most of a bulk insert's cost in sqlite3: 3.2 -> 2.1 µs a job measured
        for an enqueue's 13 values, 11 of them shared). The ``SELECT`` names its columns
        ``column1``… as the ``VALUES`` row did, for statements that read them by name."""
        key = (name, n, shared)
        sql = self._rows_sql.get(key)
        if sql is None:
            text = self._q[name]
            if getattr(text, "order", None) is not None:
                raise ValueError(f"query {name!r}: numbered placeholders cannot be repeated by row")
            head = text.index("VALUES")
            start = text.index("(", head)
            end = text.index(")", start) + 1
            if "(" in text[start + 1 : end]:
                raise ValueError(f"query {name!r}: its VALUES row must hold no parentheses")
            row = text[start:end]
            if not any(shared):
                sql = text[:start] + ",".join([row] * n) + text[end:]
            else:
                items = [item.strip() for item in row[1:-1].split(",")]
                select, inner, param = [], [], 0
                for position, item in enumerate(items, 1):
                    if item == "?":
                        if not shared[param]:
                            inner.append("?")
                            item = f"v.column{len(inner)}"
                        param += 1
                    select.append(f"{item} AS column{position}")
                values = "(" + (", ".join(inner) or "NULL") + ")"
                # duly's own statement (queries.sql) around placeholders and column names; every
                # value is a bound parameter
                sql = (
                    f"{text[:head]}SELECT {', '.join(select)} FROM (VALUES {','.join([values] * n)}) AS v"  # nosec B608
                    + text[end:]
                )
            self._rows_sql[key] = sql
        return sql

    def _read(self, query: str, params: Sequence[Any] = ()) -> list[Any]:
        with self._shared.lock:
            return self._conn.execute(query, _bind(query, params)).fetchall()


def _caller_connection(conn: Any) -> sqlite3.Connection:
    """The sqlite3 connection behind a caller's sqlite3 / SQLAlchemy connection or session."""
    if isinstance(conn, sqlite3.Connection):
        return conn
    from duly.store._caller import dbapi_connection

    raw = dbapi_connection(conn)
    if not isinstance(raw, sqlite3.Connection):
        raise ConfigurationError(
            f"conn= must be a sqlite3 connection (or a SQLAlchemy one on SQLite), got {type(conn).__name__}"
        )
    return raw
