"""One adapter per system: how to make a fresh store, enqueue, and start its own worker.

Every adapter gives the workloads the same verbs; what a system cannot do raises Skip.
"""

from __future__ import annotations

import asyncio
import os
import random
import sqlite3
import subprocess
import time
from collections.abc import Sequence
from typing import Any

from suite.common import BIN, Skip, drop_pg, env_for, fresh_dir, fresh_pg, fresh_redis, pg_dsn, pg_scalar

#: One spec of the mixed workload: (queue 0-3, priority, sleep ms, fails once, delay s)
MixedSpec = tuple[int, int, int, bool, float]


def mixed_specs(n: int, seed: int = 5) -> list[MixedSpec]:
    rnd = random.Random(seed)
    out = []
    for _ in range(n):
        q = rnd.randrange(4)
        out.append((q, 3 - q, rnd.randint(1, 50), rnd.random() < 0.02, rnd.uniform(0.5, 2.0) if rnd.random() < 0.10 else 0.0))
    return out


class Peer:
    name = "?"
    package = "?"  # distribution name (for its version)
    backend = "postgres"  # postgres | sqlite | redis
    burst = True  # its worker exits by itself when no job is left

    def exits_by_itself(self, procs: int) -> bool:
        return self.burst
    keeps = ""  # what it keeps after a job
    settings = ""  # how it is configured here
    mixed_concurrency = 50  # jobs at once per process in the mixed workload

    def __init__(self) -> None:
        self.db: str | None = None

    # lifecycle
    def setup(self) -> None:
        raise NotImplementedError

    def teardown(self) -> None:
        if self.db is not None:
            drop_pg(self.db)
            self.db = None

    # producing
    def enqueue_bulk(self, n: int) -> None:
        raise Skip("no bulk enqueue")

    def enqueue_single(self, n: int) -> None:
        raise Skip("no single enqueue")

    def latency_producer(self) -> Any:
        """An object with .enqueue(seq) -> None and .close()."""
        raise Skip("latency not measured")

    def enqueue_mixed(self, specs: Sequence[MixedSpec]) -> None:
        raise Skip("mixed workload not measured")

    # consuming
    def worker_argvs(self, procs: int, mode: str) -> list[list[str]]:
        """Command lines of the workers; mode: drain | latency | mixed."""
        raise NotImplementedError

    def worker_env(self) -> dict[str, str]:
        return {}

    def verify(self, n: int) -> str | None:
        """After a drain: None if every job is recorded as done, else what is wrong."""
        return None

    @property
    def dsn(self) -> str:
        assert self.db is not None
        return pg_dsn(self.db)


# -- duly ------------------------------------------------------------------------------------


class Duly(Peer):
    name = "duly"
    package = "duly"
    keeps = "every job row and one row per attempt (outcome, times, error, log) in duly_attempts"
    concurrency = int(os.environ.get("BENCH_DULY_CONCURRENCY", "1000"))

    @property
    def settings(self) -> str:  # type: ignore[override]
        return (f"`duly worker --app duly_app:app --burst --concurrency {self.concurrency}` "
                "(`--processes 2` for two), async no-op task, psycopg 3 pool, schema by `auto_migrate`")  # fmt: skip

    def url(self) -> str:
        return self.dsn

    def exits_by_itself(self, procs: int) -> bool:
        # `duly worker --burst --processes 2`: the supervisor restarts children that finished
        # their burst (exit 0) instead of exiting, so the harness stops it once all jobs ran.
        return procs == 1

    def setup(self) -> None:
        from duly import App

        self.db = fresh_pg("duly")
        self.app = App(self.url(), auto_migrate=True)
        self.app.migrate()

    def teardown(self) -> None:
        app = getattr(self, "app", None)
        if app is not None:
            app.close()
            self.app = None
        super().teardown()

    def enqueue_bulk(self, n: int) -> None:
        from duly import Enqueue

        item = Enqueue("noop")
        step = 100_000
        for i in range(0, n, step):
            self.app.enqueue_many([item] * min(step, n - i))

    def enqueue_single(self, n: int) -> None:
        enqueue = self.app.enqueue
        for _ in range(n):
            enqueue("noop")

    def latency_producer(self) -> Any:
        app = self.app

        class P:
            def enqueue(self, seq: int) -> None:
                app.enqueue("latency", args=(seq,))

            def close(self) -> None:
                pass

        return P()

    def enqueue_mixed(self, specs: Sequence[MixedSpec]) -> None:
        from duly import Enqueue

        self.app.enqueue_many([
            Enqueue("mixed", (ms, fail), queue=f"q{q}", priority=pri, run_in=delay or None, max_attempts=5)
            for q, pri, ms, fail, delay in specs
        ])  # fmt: skip

    def worker_argvs(self, procs: int, mode: str) -> list[list[str]]:
        c = self.mixed_concurrency if mode == "mixed" else self.concurrency
        argv = [os.path.join(BIN, "duly"), "worker", "--app", "duly_app:app", "--concurrency", str(c),
                "--log-level", "WARNING", "--poll-interval", "1"]  # fmt: skip
        if mode == "drain":
            argv.append("--burst")
        if procs > 1:
            argv += ["--processes", str(procs)]
        return [argv]

    def worker_env(self) -> dict[str, str]:
        return {"DULY_DATABASE_URL": self.url()}

    def verify(self, n: int) -> str | None:
        done = sum(s["succeeded"] for s in self.app.stats(exact=True)) - getattr(self, "history", 0)
        return None if done == n else f"{done} of {n} jobs recorded as succeeded"


class DulySQLite(Duly):
    name = "duly-sqlite"
    backend = "sqlite"

    @property
    def settings(self) -> str:  # type: ignore[override]
        return (f"`duly worker --app duly_app:app --burst --concurrency {self.concurrency}` (`--processes 2` for two), "
                "async no-op task, a fresh SQLite file (WAL, synchronous=NORMAL: duly's defaults)")  # fmt: skip

    def url(self) -> str:
        return f"sqlite:///{self.path}"

    def setup(self) -> None:
        from duly import App

        self.path = os.path.join(fresh_dir("duly-sqlite"), "duly.db")
        self.app = App(self.url())
        self.app.migrate()

    def teardown(self) -> None:
        app = getattr(self, "app", None)
        if app is not None:
            app.close()
            self.app = None


# -- PgQueuer -------------------------------------------------------------------------------


class PgQueuer(Peer):
    name = "pgqueuer"
    package = "pgqueuer"
    keeps = "deletes each finished job from the queue table; appends a row per status change to pgqueuer_log (no per-attempt error detail unless held)"
    batch = int(os.environ.get("BENCH_PGQ_BATCH", "1000"))

    @property
    def settings(self) -> str:  # type: ignore[override]
        return (f"PgQueuer's worker loop (`pgqueuer.run`, what `pgq run` starts; uvloop) with mode=drain, batch_size={self.batch}, one per process, asyncpg driver, "
                "async entrypoints, schema by `pgq install` (durability=durable, the default)")  # fmt: skip

    def setup(self) -> None:
        self.db = fresh_pg("pgq")
        r = subprocess.run([os.path.join(BIN, "pgq"), "install"], env=env_for(PGDSN=self.dsn),
                           capture_output=True, text=True)  # fmt: skip
        if r.returncode != 0:
            raise RuntimeError("pgq install failed: " + (r.stderr or r.stdout).strip()[-300:])

    async def _queries(self) -> Any:
        import asyncpg
        from pgqueuer.db import AsyncpgDriver
        from pgqueuer.queries import Queries

        conn = await asyncpg.connect(self.dsn)
        return conn, Queries(AsyncpgDriver(conn))

    def enqueue_bulk(self, n: int) -> None:
        async def go() -> None:
            conn, q = await self._queries()
            step = 100_000
            for i in range(0, n, step):
                m = min(step, n - i)
                await q.enqueue(["noop"] * m, [None] * m, [0] * m)
            await conn.close()

        asyncio.run(go())

    def enqueue_single(self, n: int) -> None:
        async def go() -> None:
            conn, q = await self._queries()
            for _ in range(n):
                await q.enqueue("noop", None)
            await conn.close()

        asyncio.run(go())

    def latency_producer(self) -> Any:
        loop = asyncio.new_event_loop()
        conn, q = loop.run_until_complete(self._queries())

        class P:
            def enqueue(self, seq: int) -> None:
                loop.run_until_complete(q.enqueue("latency", str(seq).encode()))

            def close(self) -> None:
                loop.run_until_complete(conn.close())
                loop.close()

        return P()

    def enqueue_mixed(self, specs: Sequence[MixedSpec]) -> None:
        from datetime import timedelta

        async def go() -> None:
            conn, q = await self._queries()
            await q.enqueue(
                [f"q{s[0]}" for s in specs],
                [f"{s[2]},{int(s[3])}".encode() for s in specs],
                [s[1] for s in specs],
                [timedelta(seconds=s[4]) for s in specs],
            )
            await conn.close()

        asyncio.run(go())

    def worker_argvs(self, procs: int, mode: str) -> list[list[str]]:
        py = os.path.join(BIN, "python")
        if mode == "drain":
            argv = [py, "pgq_worker.py", "drain", str(self.batch)]
        elif mode == "mixed":
            argv = [py, "pgq_worker.py", "continuous", "10", str(self.mixed_concurrency)]
        else:
            argv = [py, "pgq_worker.py", "continuous", "10"]
        return [argv] * procs

    def worker_env(self) -> dict[str, str]:
        return {"PGDSN": self.dsn, "BENCH_PG_DSN": self.dsn}

    def verify(self, n: int) -> str | None:
        left = pg_scalar(self.db, "SELECT count(*) FROM pgqueuer")  # type: ignore[arg-type]
        return None if left == 0 else f"{left} jobs left in the queue table"


# -- raw SQL baselines ------------------------------------------------------------------------


RAW_DDL = """
CREATE TABLE raw_jobs (
    id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    task text NOT NULL, args jsonb NOT NULL DEFAULT '[]', priority int NOT NULL DEFAULT 0,
    state text NOT NULL DEFAULT 'queued', run_at timestamptz NOT NULL DEFAULT now(),
    attempt int NOT NULL DEFAULT 0, started_at timestamptz, finished_at timestamptz
);
CREATE INDEX raw_jobs_fetch ON raw_jobs (priority DESC, run_at, id) WHERE state = 'queued';
"""


class RawPG(Peer):
    name = "raw-sql"
    package = "psycopg"
    keeps = "every row (state set to succeeded)"
    settings = ("one CTE `SELECT … FOR UPDATE SKIP LOCKED LIMIT 1000` + `UPDATE … RETURNING` to claim, "
                "one `UPDATE … WHERE id = ANY(…)` to complete; bulk insert by COPY; single insert by INSERT")  # fmt: skip
    batch = 1000

    def setup(self) -> None:
        import psycopg

        self.db = fresh_pg("raw")
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute(RAW_DDL)

    def enqueue_bulk(self, n: int) -> None:
        import psycopg

        with psycopg.connect(self.dsn) as conn, conn.cursor() as cur:
            with cur.copy("COPY raw_jobs (task, args) FROM STDIN") as copy:
                row = ("noop", "[]")
                for _ in range(n):
                    copy.write_row(row)

    def enqueue_single(self, n: int) -> None:
        import psycopg

        with psycopg.connect(self.dsn, autocommit=True) as conn:
            for _ in range(n):
                conn.execute("INSERT INTO raw_jobs (task, args) VALUES (%s, %s)", ("noop", "[]"), prepare=True)

    def worker_argvs(self, procs: int, mode: str) -> list[list[str]]:
        if mode != "drain":
            raise Skip("baseline only drains")
        return [[os.path.join(BIN, "python"), "raw_pg_worker.py", self.dsn, str(self.batch)]] * procs

    def verify(self, n: int) -> str | None:
        done = pg_scalar(self.db, "SELECT count(*) FROM raw_jobs WHERE state = 'succeeded'")  # type: ignore[arg-type]
        return None if done == n else f"{done} of {n} rows succeeded"


class RawSQLite(Peer):
    name = "raw-sqlite"
    package = "sqlite3"
    backend = "sqlite"
    keeps = "every row (state set to succeeded)"
    settings = ("WAL, synchronous=NORMAL; claim 1,000 with one `UPDATE … WHERE id IN (SELECT … LIMIT 1000) RETURNING`, "
                "complete them in one `BEGIN IMMEDIATE` transaction; bulk insert by executemany in one transaction")  # fmt: skip
    batch = 1000

    def setup(self) -> None:
        self.path = os.path.join(fresh_dir("raw-sqlite"), "raw.db")
        conn = sqlite3.connect(self.path, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.executescript("""
            CREATE TABLE raw_jobs (id INTEGER PRIMARY KEY, task TEXT NOT NULL, args TEXT NOT NULL DEFAULT '[]',
                priority INTEGER NOT NULL DEFAULT 0, state TEXT NOT NULL DEFAULT 'queued',
                run_at INTEGER NOT NULL, attempt INTEGER NOT NULL DEFAULT 0, started_at INTEGER, finished_at INTEGER);
            CREATE INDEX raw_jobs_fetch ON raw_jobs (priority DESC, run_at, id) WHERE state = 'queued';
        """)  # fmt: skip
        conn.close()

    def teardown(self) -> None:
        pass

    def enqueue_bulk(self, n: int) -> None:
        conn = sqlite3.connect(self.path, isolation_level=None)
        conn.execute("PRAGMA synchronous=NORMAL")
        now = int(time.time() * 1e6)
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany("INSERT INTO raw_jobs (task, args, run_at) VALUES ('noop', '[]', ?)", ((now,) for _ in range(n)))
        conn.execute("COMMIT")
        conn.close()

    def enqueue_single(self, n: int) -> None:
        conn = sqlite3.connect(self.path, isolation_level=None)
        conn.execute("PRAGMA synchronous=NORMAL")
        for _ in range(n):
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("INSERT INTO raw_jobs (task, args, run_at) VALUES ('noop', '[]', ?)", (int(time.time() * 1e6),))
            conn.execute("COMMIT")
        conn.close()

    def worker_argvs(self, procs: int, mode: str) -> list[list[str]]:
        if mode != "drain":
            raise Skip("baseline only drains")
        return [[os.path.join(BIN, "python"), "raw_sqlite_worker.py", self.path, str(self.batch)]] * procs

    def verify(self, n: int) -> str | None:
        conn = sqlite3.connect(self.path)
        done = conn.execute("SELECT count(*) FROM raw_jobs WHERE state = 'succeeded'").fetchone()[0]
        conn.close()
        return None if done == n else f"{done} of {n} rows succeeded"


# -- Huey (SQLite storage) --------------------------------------------------------------------


class Huey(Peer):
    name = "huey"
    package = "huey"
    backend = "sqlite"
    burst = False
    keeps = "nothing: a task row is deleted when dequeued; results only when not None (none here)"
    settings = ("`huey_consumer huey_app.huey -k process -w P -d 0.01` (P worker processes), SqliteHuey; "
                "no bulk API, so bulk enqueue is a loop of task calls")  # fmt: skip

    def setup(self) -> None:
        self.path = os.path.join(fresh_dir("huey"), "huey.db")
        os.environ["BENCH_HUEY_DB"] = self.path
        import importlib
        import sys

        sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "apps"))
        import huey_app

        self.mod = importlib.reload(huey_app)

    def teardown(self) -> None:
        pass

    def enqueue_bulk(self, n: int) -> None:
        noop = self.mod.noop
        for _ in range(n):
            noop()

    def enqueue_single(self, n: int) -> None:
        self.enqueue_bulk(n)

    def latency_producer(self) -> Any:
        task = self.mod.latency

        class P:
            def enqueue(self, seq: int) -> None:
                task(seq)

            def close(self) -> None:
                pass

        return P()

    def worker_argvs(self, procs: int, mode: str) -> list[list[str]]:
        return [[os.path.join(BIN, "huey_consumer"), "huey_app.huey", "-k", "process", "-w", str(procs),
                 "-d", "0.01", "-m", "0.1", "-q"]]  # fmt: skip

    def worker_env(self) -> dict[str, str]:
        return {"BENCH_HUEY_DB": self.path}

    def verify(self, n: int) -> str | None:
        left = len(self.mod.huey)
        return None if left == 0 else f"{left} tasks left in the queue"


# -- Celery (Redis broker) ------------------------------------------------------------------


class CeleryPeer(Peer):
    name = "celery"
    package = "celery"
    backend = "redis"
    burst = False
    keeps = "nothing (no result backend; a message is gone once acknowledged, which is on receipt: acks_late off, the default)"
    settings = ("Redis broker; P × `celery -A celery_app worker -P solo --prefetch-multiplier 100 --without-gossip "
                "--without-mingle --without-heartbeat`; mixed: P × `-P threads -c 50`; bulk enqueue reuses one producer")  # fmt: skip

    def setup(self) -> None:
        self.url = fresh_redis()
        os.environ["BENCH_CELERY_BROKER"] = self.url
        import importlib
        import sys

        sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "apps"))
        import celery_app

        self.mod = importlib.reload(celery_app)

    def teardown(self) -> None:
        self.mod.app.close()

    def enqueue_bulk(self, n: int) -> None:
        noop = self.mod.noop
        with self.mod.app.producer_or_acquire() as producer:
            for _ in range(n):
                noop.apply_async(producer=producer)

    def enqueue_single(self, n: int) -> None:
        noop = self.mod.noop
        for _ in range(n):
            noop.delay()

    def latency_producer(self) -> Any:
        task = self.mod.latency

        class P:
            def enqueue(self, seq: int) -> None:
                task.delay(seq)

            def close(self) -> None:
                pass

        return P()

    def enqueue_mixed(self, specs: Sequence[MixedSpec]) -> None:
        task = self.mod.mixed
        with self.mod.app.producer_or_acquire() as producer:
            for q, pri, ms, fail, delay in specs:
                task.apply_async((ms, fail), queue=f"q{q}", priority=3 - pri, countdown=delay or None, producer=producer)

    def worker_argvs(self, procs: int, mode: str) -> list[list[str]]:
        base = [os.path.join(BIN, "celery"), "-A", "celery_app", "worker", "--without-gossip", "--without-mingle",
                "--without-heartbeat", "-l", "WARNING"]  # fmt: skip
        if mode == "mixed":
            return [base + ["-P", "threads", "-c", str(self.mixed_concurrency), "-Q", "q0,q1,q2,q3", "-n", f"w{i}@%h"]
                    for i in range(procs)]  # fmt: skip
        return [base + ["-P", "solo", "-n", f"w{i}@%h"] for i in range(procs)]

    def worker_env(self) -> dict[str, str]:
        return {"BENCH_CELERY_BROKER": self.url}


# -- RQ (Redis) -------------------------------------------------------------------------------


class RQ(Peer):
    name = "rq"
    package = "rq"
    backend = "redis"
    keeps = "each job hash for result_ttl (500 s by default) and the finished-job registry"
    settings = "P × `rq worker --burst --worker-class rq.worker.SimpleWorker` (no fork per job); bulk enqueue by `Queue.enqueue_many` in one pipeline"

    def setup(self) -> None:
        from rq import Queue

        self.url = fresh_redis()
        self.q = Queue("default", connection=self._redis())

    def _redis(self) -> Any:
        from redis import Redis

        return Redis.from_url(self.url)

    def teardown(self) -> None:
        pass

    def enqueue_bulk(self, n: int) -> None:
        from rq import Queue

        step = 20_000
        for i in range(0, n, step):
            datas = [Queue.prepare_data("rq_app.noop") for _ in range(min(step, n - i))]
            with self.q.connection.pipeline() as pipe:
                self.q.enqueue_many(datas, pipeline=pipe)
                pipe.execute()

    def enqueue_single(self, n: int) -> None:
        for _ in range(n):
            self.q.enqueue("rq_app.noop")

    def latency_producer(self) -> Any:
        q = self.q

        class P:
            def enqueue(self, seq: int) -> None:
                q.enqueue("rq_app.latency", seq)

            def close(self) -> None:
                pass

        return P()

    def worker_argvs(self, procs: int, mode: str) -> list[list[str]]:
        argv = [os.path.join(BIN, "rq"), "worker", "--url", self.url, "--worker-class", "rq.worker.SimpleWorker",
                "--logging_level", "WARNING", "default"]  # fmt: skip
        if mode == "drain":
            argv.insert(2, "--burst")
        return [argv] * procs

    def verify(self, n: int) -> str | None:
        left = len(self.q)
        return None if left == 0 else f"{left} jobs left in the queue"


# -- Procrastinate ----------------------------------------------------------------------------


def _apps_import(name: str) -> Any:
    import importlib
    import sys

    apps = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "apps")
    if apps not in sys.path:
        sys.path.insert(0, apps)
    return importlib.reload(importlib.import_module(name))


class Procrastinate(Peer):
    name = "procrastinate"
    package = "procrastinate"
    concurrency = 50
    keeps = "every job row (status succeeded) and its status events in procrastinate_events (no --delete-jobs)"

    @property
    def settings(self) -> str:  # type: ignore[override]
        return (f"`procrastinate --app proc_app.app --log-level warning worker --one-shot --concurrency {self.concurrency}` per process, "
                "async tasks, PsycopgConnector; bulk enqueue by `batch_defer`; schema by `procrastinate schema --apply`")  # fmt: skip

    def setup(self) -> None:
        self.db = fresh_pg("proc")
        os.environ["BENCH_PG_DSN"] = self.dsn
        r = subprocess.run([os.path.join(BIN, "procrastinate"), "--app", "proc_app.app", "schema", "--apply"],
                           env=env_for(BENCH_PG_DSN=self.dsn), capture_output=True, text=True,
                           cwd=os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "apps"))  # fmt: skip
        if r.returncode != 0:
            raise RuntimeError("procrastinate schema --apply failed: " + (r.stderr or r.stdout).strip()[-300:])
        self.mod = _apps_import("proc_app")
        self.mod.app.open()

    def teardown(self) -> None:
        mod = getattr(self, "mod", None)
        if mod is not None:
            mod.app.close()
        super().teardown()

    def enqueue_bulk(self, n: int) -> None:
        step = 10_000
        for i in range(0, n, step):
            self.mod.noop.batch_defer(*([{}] * min(step, n - i)))

    def enqueue_single(self, n: int) -> None:
        defer = self.mod.noop.defer
        for _ in range(n):
            defer()

    def latency_producer(self) -> Any:
        task = self.mod.latency

        class P:
            def enqueue(self, seq: int) -> None:
                task.defer(seq=seq)

            def close(self) -> None:
                pass

        return P()

    def worker_argvs(self, procs: int, mode: str) -> list[list[str]]:
        argv = [os.path.join(BIN, "procrastinate"), "--app", "proc_app.app", "--log-level", "warning", "worker",
                "--concurrency", str(self.concurrency)]  # fmt: skip
        if mode == "drain":
            argv.append("--one-shot")
        return [argv] * procs

    def worker_env(self) -> dict[str, str]:
        return {"BENCH_PG_DSN": self.dsn}

    def verify(self, n: int) -> str | None:
        done = pg_scalar(self.db, "SELECT count(*) FROM procrastinate_jobs WHERE status = 'succeeded'")  # type: ignore[arg-type]
        return None if done == n else f"{done} of {n} jobs succeeded"


# -- Chancy -----------------------------------------------------------------------------------


class ChancyPeer(Peer):
    name = "chancy"
    package = "chancy"
    burst = False
    concurrency = 100
    keeps = "every job row (state succeeded) until its pruner plugin removes it"

    @property
    def settings(self) -> str:  # type: ignore[override]
        return (f"P × `chancy --app chancy_app.chancy worker start`; queue `default` with the AsyncExecutor, logger at WARNING, "
                f"concurrency {self.concurrency}, polling_interval 1, eager_polling; bulk enqueue by `push_many` (batches of 1,000)")  # fmt: skip

    def setup(self) -> None:
        self.db = fresh_pg("chancy")
        os.environ["BENCH_PG_DSN"] = self.dsn
        self.mod = _apps_import("chancy_app")
        from chancy import Chancy, Queue

        async def go() -> None:
            async with Chancy(self.dsn) as c:
                await c.migrate()
                await c.declare(Queue("default", concurrency=self.concurrency, executor=Chancy.Executor.Async,
                                      polling_interval=1, eager_polling=True), upsert=True)  # fmt: skip

        asyncio.run(go())

    def _push(self, jobs: list[Any]) -> None:
        from chancy import Chancy

        async def go() -> None:
            async with Chancy(self.dsn) as c:
                async for _ in c.push_many(jobs):
                    pass

        asyncio.run(go())

    def enqueue_bulk(self, n: int) -> None:
        j = self.mod.noop.job.with_queue("default")
        self._push([j] * n)

    def enqueue_single(self, n: int) -> None:
        from chancy import Chancy

        j = self.mod.noop.job.with_queue("default")

        async def go() -> None:
            async with Chancy(self.dsn) as c:
                for _ in range(n):
                    await c.push(j)

        asyncio.run(go())

    def worker_argvs(self, procs: int, mode: str) -> list[list[str]]:
        return [[os.path.join(BIN, "chancy"), "--app", "chancy_app.chancy", "worker", "start"]] * procs

    def worker_env(self) -> dict[str, str]:
        return {"BENCH_PG_DSN": self.dsn}


# -- oban-py ----------------------------------------------------------------------------------


class ObanPeer(Peer):
    name = "oban"
    package = "oban"
    burst = False
    concurrency = 100
    keeps = "every job row (state completed) until its pruner deletes it (max_age 86,400 s by default)"

    @property
    def settings(self) -> str:  # type: ignore[override]
        return (f"P × `oban start --queues default:{self.concurrency} --log-level WARNING`, async @job functions; "
                "bulk enqueue by `enqueue_many`; schema by `oban install`")  # fmt: skip

    def setup(self) -> None:
        self.db = fresh_pg("oban")
        r = subprocess.run([os.path.join(BIN, "oban"), "install", "--dsn", self.dsn], env=env_for(),
                           capture_output=True, text=True)  # fmt: skip
        if r.returncode != 0:
            raise RuntimeError("oban install failed: " + (r.stderr or r.stdout).strip()[-300:])
        self.mod = _apps_import("oban_app")

    async def _with_oban(self, fn: Any) -> None:
        from oban import Oban
        from psycopg_pool import AsyncConnectionPool

        async with AsyncConnectionPool(self.dsn, open=False) as pool:
            await pool.open()
            oban = Oban(pool=pool)
            await fn(oban)

    def enqueue_bulk(self, n: int) -> None:
        noop = self.mod.noop

        async def go(oban: Any) -> None:
            step = 10_000
            for i in range(0, n, step):
                await oban.enqueue_many([noop.new() for _ in range(min(step, n - i))])

        asyncio.run(self._with_oban(go))

    def enqueue_single(self, n: int) -> None:
        noop = self.mod.noop

        async def go(oban: Any) -> None:
            for _ in range(n):
                await oban.enqueue(noop.new())

        asyncio.run(self._with_oban(go))

    def worker_argvs(self, procs: int, mode: str) -> list[list[str]]:
        return [[os.path.join(BIN, "oban"), "start", "--dsn", self.dsn, "--queues", f"default:{self.concurrency}",
                 "--log-level", "WARNING", "--node", f"bench{i}"] for i in range(procs)]  # fmt: skip


PEERS: dict[str, type[Peer]] = {
    "duly": Duly,
    "duly-sqlite": DulySQLite,
    "pgqueuer": PgQueuer,
    "raw-sql": RawPG,
    "raw-sqlite": RawSQLite,
    "huey": Huey,
    "celery": CeleryPeer,
    "rq": RQ,
    "procrastinate": Procrastinate,
    "chancy": ChancyPeer,
    "oban": ObanPeer,
}
