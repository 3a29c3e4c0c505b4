"""Configuration: URLs, migrations, table prefixes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import duly
from tests.conftest import Backend


def test_no_url_uses_env_then_duly_db_in_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DULY_DATABASE_URL", raising=False)
    app = duly.App()
    app.enqueue("t")
    app.close()
    assert (tmp_path / "duly.db").exists()
    monkeypatch.setenv("DULY_DATABASE_URL", f"sqlite:///{tmp_path / 'env.db'}")
    with duly.App() as app2:
        app2.enqueue("t")
    assert (tmp_path / "env.db").exists()


def test_unsupported_url_names_it_without_password() -> None:
    with pytest.raises(duly.ConfigurationError) as info:
        duly.App("mysql://root:hunter2@localhost/db")
    assert "mysql://root:***@localhost/db" in str(info.value)
    assert "hunter2" not in str(info.value)


def test_unreachable_postgres_is_a_clear_error_without_password() -> None:
    pytest.importorskip("psycopg")
    app = duly.App("postgresql://bob:s3cret@127.0.0.1:1/nowhere")
    with pytest.raises(duly.DatabaseUnavailable) as info:
        app.store  # noqa: B018
    text = str(info.value)
    assert "postgresql://bob:***@127.0.0.1:1/nowhere" in text and "s3cret" not in text


def test_unreachable_postgres_with_password_in_the_query_string_hides_it() -> None:
    pytest.importorskip("psycopg")
    app = duly.App("postgresql://bob@127.0.0.1:1/nowhere?sslmode=disable&password=s3cret")
    assert "s3cret" not in repr(app)
    with pytest.raises(duly.DatabaseUnavailable) as info:
        app.store  # noqa: B018
    text = str(info.value)
    assert "postgresql://bob@127.0.0.1:1/nowhere?sslmode=disable&password=***" in text
    assert "s3cret" not in text


@pytest.mark.parametrize(
    "dsn",
    ["host=127.0.0.1 port=1 password=s3cret dbname=x", "host=127.0.0.1 password = 's3 cret\\'s' dbname=x"],
)
def test_libpq_keyword_string_is_refused_without_printing_its_password(dsn: str) -> None:
    with pytest.raises(duly.ConfigurationError) as info:
        duly.App(dsn)
    text = str(info.value)
    assert "host=127.0.0.1" in text and "password" in text and "***" in text
    assert "s3" not in text and "cret" not in text


def test_redact_url_masks_every_password_form() -> None:
    from duly.store.url import redact_url

    assert redact_url("postgresql://u:p%40ss@h/db?Password=a%20b&sslpassword=k&x=1") == (
        "postgresql://u:***@h/db?Password=***&sslpassword=***&x=1"
    )
    assert redact_url("postgresql://u@h/db?passwordless=1") == "postgresql://u@h/db?passwordless=1"
    assert redact_url("dbname=x sslpassword=k password='a b'") == "dbname=x sslpassword=*** password=***"


def test_postgresql_plus_driver_url_is_accepted(backend: Backend) -> None:
    if backend.name != "postgres":
        pytest.skip("PostgreSQL only")
    url = "postgresql+psycopg://" + backend.url.split("://", 1)[1]
    with duly.App(url, prefix=backend.prefix, auto_migrate=True) as app:
        job = app.enqueue("t", args=[1])
        assert app.get_job(job.id).args == [1]
        assert repr(app).startswith("<duly.App postgresql+psycopg://")


def test_sqlite_url_in_a_missing_folder_is_a_clear_error(tmp_path: Path) -> None:
    app = duly.App(f"sqlite:///{tmp_path / 'no' / 'such' / 'x.db'}")
    with pytest.raises(duly.DatabaseUnavailable, match="does not exist"):
        app.store  # noqa: B018


def test_sqlite_file_that_is_not_a_database(tmp_path: Path) -> None:
    bad = tmp_path / "junk.db"
    bad.write_bytes(os.urandom(4096))
    with pytest.raises(duly.DatabaseUnavailable, match="junk.db"):
        duly.App(f"sqlite:///{bad}").store  # noqa: B018


def test_invalid_prefix_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="invalid table prefix"):
        duly.App(f"sqlite:///{tmp_path / 'x.db'}", prefix='x"; drop table y; --').store  # noqa: B018


def test_prefixes_isolate_apps_on_one_database(backend: Backend) -> None:
    a = backend.app()
    b_prefix = backend.prefix + "b_"
    b = duly.App(backend.url, prefix=b_prefix, auto_migrate=True)
    try:
        a.enqueue("t")
        assert b.jobs() == [] and len(a.jobs()) == 1
    finally:
        b.close()
        if backend.name == "postgres":
            from tests.conftest import drop_prefix

            drop_prefix(backend.url, b_prefix)


def test_sqlite_migrates_itself_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'm.db'}"
    with duly.App(url) as app:
        assert app.store.schema_version() >= 1
        assert app.migrate() == []


def test_postgres_refuses_an_outdated_schema(backend: Backend) -> None:
    if backend.name != "postgres":
        pytest.skip("PostgreSQL only: SQLite migrates itself")
    import psycopg
    from psycopg import sql

    app = backend.app()
    latest = app.store.schema_version()
    app.close()
    with psycopg.connect(backend.url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DELETE FROM {} WHERE version = %s").format(sql.Identifier(backend.prefix + "migrations")),
            (latest,),
        )
    with pytest.raises(duly.SchemaOutdated, match="duly migrate"):
        duly.App(backend.url, prefix=backend.prefix).store  # noqa: B018


def test_errors_survive_pickling_between_processes() -> None:
    import pickle

    for exc in (duly.DuplicateKey("k", 7), duly.JobNotFound(3), duly.StaleAttempt(4, 2)):
        again = pickle.loads(pickle.dumps(exc))
        assert type(again) is type(exc) and str(again) == str(exc) and again.__dict__ == exc.__dict__


def test_sqlite_ids_are_never_reused_so_a_deleted_job_cannot_fence_in(tmp_path: Path) -> None:
    from duly.core.model import ClaimParams, Finish
    from duly.core.states import Outcome

    with duly.App(f"sqlite:///{tmp_path / 'ids.db'}") as app:
        old = app.enqueue("t")
        (claimed,) = app.store.claim(ClaimParams("w", 1))
        app.delete(old.id)
        new = app.enqueue("t")
        assert new.id != old.id
        assert app.store.finish([Finish(claimed.id, claimed.attempt, Outcome.SUCCEEDED)]) != []
        assert app.get_job(new.id).state is duly.JobState.QUEUED
