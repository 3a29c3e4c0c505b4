"""The dashboard in a real browser: Playwright driving the system's Chromium
(``/usr/bin/chromium``, Debian's package; ``.ci/run`` installs it) against a server the
test starts (uvicorn in a thread, free port), on both backends.

Under CI=true a missing browser fails the run instead of skipping it. Every request the
page makes must stay on the loopback server (anything else is aborted and fails the test),
and the page must log no error (a CSP violation would).

``DULY_SCREENSHOTS=docs/images pytest tests/dashboard -k screenshots`` refreshes the
screenshots that docs/dashboard.md shows.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

import duly
from duly.core.admin import WorkerRegistration
from duly.web.server import ThreadedServer, serve_in_thread
from tests.conftest import IN_CI, Backend
from tests.helpers import claim_one, fail, succeed

CHROMIUM = os.environ.get("DULY_CHROMIUM", "/usr/bin/chromium")
ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]  # fmt: skip


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    path = CHROMIUM if os.path.exists(CHROMIUM) else shutil.which("chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        if IN_CI:
            pytest.fail(f"CI=true and Playwright is not installed: {exc}")
        pytest.skip(f"Playwright is not installed: {exc}")
    if not path:
        if IN_CI:
            pytest.fail(f"CI=true and no Chromium at {CHROMIUM}: apt-get install chromium")
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    with sync_playwright() as p:  # expect() polls outside the page: our CSP forbids eval
        b = p.chromium.launch(executable_path=path, args=ARGS)
        yield b
        b.close()


def expect(locator: Any) -> Any:
    from playwright.sync_api import expect as _expect

    return _expect(locator)


class Session:
    """A page on the test's server that refuses to leave loopback and records errors."""

    def __init__(self, browser: Any, server: ThreadedServer) -> None:
        self.server = server
        self.context = browser.new_context(viewport={"width": 1360, "height": 900})
        self.page = self.context.new_page()
        self.page.set_default_timeout(10_000)
        self.errors: list[str] = []
        self.outside: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("dialog", lambda d: d.accept())
        self.context.route("**/*", self._only_loopback)

    def _only_loopback(self, route: Any) -> None:
        host = urlsplit(route.request.url).hostname or ""
        if host in ("127.0.0.1", "localhost", "::1"):
            route.continue_()
        else:
            self.outside.append(route.request.url)
            route.abort()

    def goto(self, path: str) -> Any:
        self.page.goto(self.server.url + path)
        return self.page

    def close(self) -> None:
        self.context.close()
        assert self.outside == [], f"the page tried to leave loopback: {self.outside}"
        assert self.errors == [], f"errors in the page: {self.errors}"


@pytest.fixture
def site(backend: Backend, browser: Any) -> Iterator[tuple[duly.App, Session]]:
    app = backend.app()
    server = serve_in_thread(app, port=0)
    session = Session(browser, server)
    yield app, session
    try:
        session.close()
    finally:
        server.stop()


def test_overview_shows_counts_chart_and_refreshes_live(site: tuple[duly.App, Session]) -> None:
    app, s = site
    for q in ("mail", "mail", "images"):
        app.enqueue("t", queue=q)
    succeed(app, claim_one(app))
    page = s.goto("/")
    row = page.locator('#queues tr[data-queue="mail"]')
    assert row.locator('td[data-state="succeeded"]').inner_text() == "1"
    assert row.locator('td[data-state="queued"]').inner_text() == "1"
    assert page.locator("#chart rect").count() >= 1  # the succeeded job's minute
    for _ in range(3):
        app.enqueue("t", queue="mail")
    expect(row.locator('td[data-state="queued"]')).to_have_text("4")  # the next refresh
    assert page.locator('[data-total="queued"]').inner_text() == "5"
    assert page.locator("#live").inner_text() == "live"


def test_job_page_retry_and_cancel(site: tuple[duly.App, Session]) -> None:
    app, s = site
    job = app.enqueue("reports.build", args=[2024], queue="reports")
    fail(app, claim_one(app), retry_in=None, message="disk full", log="opened report\nwrote 3 pages")
    page = s.goto("/")
    page.click('#queues tr[data-queue="reports"] td[data-state="failed"] a')
    page.wait_for_url("**/jobs?queue=reports&state=failed")
    page.click(f'#jobs a[href="/jobs/{job.id}"] >> nth=0')
    page.wait_for_url(f"**/jobs/{job.id}")
    assert page.locator("#job-state").inner_text() == "failed"
    assert "disk full" in page.locator(".attempt .error").inner_text()
    assert "wrote 3 pages" in page.locator("pre.log").inner_text()
    assert page.locator("pre.traceback").is_visible()
    page.click("button:has-text('Retry')")
    page.wait_for_url(f"**/jobs/{job.id}?msg=*")
    assert "now queued" in page.locator(".flash").inner_text()
    assert page.locator("#job-state").inner_text() == "queued"
    assert app.get_job(job.id).state is duly.JobState.QUEUED
    page.click("button:has-text('Cancel')")  # confirm() accepted by the session
    expect(page.locator("#job-state")).to_have_text("cancelled")
    assert app.get_job(job.id).state is duly.JobState.CANCELLED


def test_progress_updates_live_and_state_change_reloads(site: tuple[duly.App, Session]) -> None:
    app, s = site
    app.enqueue("t")
    job = claim_one(app)
    app.set_progress(job.id, job.attempt, 1, 4)
    page = s.goto(f"/jobs/{job.id}")
    assert page.locator("#job-progress-text").inner_text() == "1 / 4"
    app.set_progress(job.id, job.attempt, 3, 4)
    expect(page.locator("#job-progress-text")).to_have_text("3 / 4")
    succeed(app, job)
    expect(page.locator("#job-state")).to_have_text("succeeded")  # the page reloads itself


def test_payloads_cannot_run_script(site: tuple[duly.App, Session]) -> None:
    app, s = site
    evil = "<img src=x onerror=\"window.__pwned=1\"><script>window.__pwned=2</script>"
    job = app.enqueue("t", args=[evil], queue=evil)
    fail(app, claim_one(app), retry_in=None, message=evil, log=evil)
    for path in (f"/jobs/{job.id}", "/jobs", "/"):
        page = s.goto(path)
        assert page.evaluate("window.__pwned === undefined"), path
    shown = s.goto(f"/jobs/{job.id}").locator("#job-args").inner_text()
    assert json.dumps(evil) in shown  # shown as text, exactly


def test_workers_page_lists_registered_workers(site: tuple[duly.App, Session]) -> None:
    app, s = site
    app.store.register_worker(WorkerRegistration("host-a:4242:beef", "host-a", 4242, ["mail"], 8))
    page = s.goto("/workers")
    assert "host-a:4242:beef" in page.locator("#workers").inner_text()
    app.store.register_worker(WorkerRegistration("host-b:7:cafe", "host-b", 7, None, 2))
    expect(page.locator("#workers")).to_contain_text("host-b:7:cafe")


def _when(dt: datetime | None) -> str:
    """A time as the pages write it (UTC, to the second)."""
    return "-" if dt is None else dt.astimezone(UTC).isoformat()[:19].replace("T", " ")


def _mark(page: Any) -> None:
    """Tag the loaded document: ``_same_document`` tells a live update from a reload."""
    page.evaluate("window.__duly_test_mark = 1")


def _same_document(page: Any) -> bool:
    return bool(page.evaluate("window.__duly_test_mark === 1"))


def test_overview_chart_redraws_on_refresh(site: tuple[duly.App, Session]) -> None:
    app, s = site
    app.enqueue("t", queue="mail")
    page = s.goto("/")
    chart = page.locator("#chart")
    assert chart.get_attribute("data-total") == "0" and chart.locator("rect").count() == 0
    _mark(page)
    succeed(app, claim_one(app))
    expect(chart).to_have_attribute("data-total", "1")  # redrawn from /api/overview
    assert chart.locator("rect.bar-succeeded").count() == 1
    assert "1 succeeded" in (chart.locator("rect.bar-succeeded title").text_content() or "")
    app.enqueue("t", queue="mail")
    fail(app, claim_one(app), retry_in=None)
    expect(chart).to_have_attribute("data-total", "2")
    assert chart.locator("rect.bar-failed").count() == 1
    assert _same_document(page)  # drawn again in place, not by reloading the page


def test_job_list_refreshes_live(site: tuple[duly.App, Session]) -> None:
    app, s = site
    first = app.enqueue("mail.send", queue="mail")
    app.enqueue("reports.build", queue="reports")
    page = s.goto("/jobs?queue=mail")
    rows = page.locator("#jobs tbody tr")
    assert rows.count() == 1
    _mark(page)
    second = app.enqueue("mail.send", queue="mail", args=["<b>x</b>"])
    expect(rows).to_have_count(2)
    expect(rows.first.locator("td").first).to_have_text(str(second.id))  # newest first
    job = claim_one(app)  # the oldest due: the first mail job
    assert job.id == first.id
    app.set_progress(job.id, job.attempt, 2, 5)
    row = page.locator(f'#jobs tr[data-job-id="{first.id}"]')
    expect(row.locator(".state")).to_have_text("running")
    expect(row.locator("progress")).to_have_attribute("value", "2")
    fail(app, job, retry_in=None, message="smtp said no")
    expect(row.locator(".state")).to_have_text("failed")
    expect(row.locator("td.error")).to_have_text("RuntimeError: smtp said no")
    assert "reports.build" not in page.locator("#jobs").inner_text()  # the filter holds
    assert _same_document(page)


def test_job_page_run_now_and_result(site: tuple[duly.App, Session]) -> None:
    app, s = site
    later = app.enqueue("reports.build", args=[7], queue="reports", run_in="2h")
    page = s.goto(f"/jobs/{later.id}")
    assert page.locator("#job-state").inner_text() == "scheduled"
    page.click("button:has-text('Run now')")
    page.wait_for_url(f"**/jobs/{later.id}?msg=*")
    assert "run done: now queued" in page.locator(".flash").inner_text()
    assert page.locator("#job-state").inner_text() == "queued"
    moved = app.get_job(later.id)
    assert moved.state is duly.JobState.QUEUED and moved.run_at <= app.store.now()

    job = claim_one(app)
    result = {"pages": 3, "title": "<b>Q3</b>", "files": ["a.pdf", "b.pdf"]}
    succeed(app, job, result=result)
    page = s.goto(f"/jobs/{job.id}")
    assert page.locator("#job-result").inner_text() == json.dumps(result, indent=2, sort_keys=True)
    assert page.locator("#job-state").inner_text() == "succeeded"


def test_triggers_page_next_fire_times_live_and_pause(backend: Backend, site: tuple[duly.App, Session]) -> None:
    app, s = site
    app.schedule("reports.build", name="hourly", every="1h")
    app.schedule("mail.digest", name="nightly", cron="30 2 * * *", tz="Europe/Paris")
    page = s.goto("/triggers")
    for name in ("hourly", "nightly"):
        row = page.locator(f'#triggers tr[data-trigger="{name}"]')
        nxt = app.trigger(name).next_fire_at
        assert nxt is not None and nxt > app.store.now()
        assert row.locator('[data-field="next_fire_at"]').inner_text() == _when(nxt)
        assert row.locator('[data-field="last_job_id"]').inner_text() == "-"
    _mark(page)
    # a scheduler whose clock is two hours on fires the hourly trigger
    ahead = backend.app(duly.VirtualClock(datetime.now(UTC) + timedelta(hours=2)))
    assert ahead.scheduler_tick() >= 1
    fired = app.trigger("hourly")
    assert fired.last_job_id is not None
    row = page.locator('#triggers tr[data-trigger="hourly"]')
    expect(row.locator('[data-field="last_job_id"]')).to_have_text(f"#{fired.last_job_id}")
    expect(row.locator('[data-field="next_fire_at"]')).to_have_text(_when(fired.next_fire_at))
    assert row.locator('[data-field="last_fire_at"]').inner_text() == _when(fired.last_fire_at)
    assert _same_document(page)  # updated in place
    row.locator("button:has-text('Pause')").click()
    page.wait_for_url("**/triggers?msg=*")
    assert "trigger hourly paused" in page.locator(".flash").inner_text()
    assert app.trigger("hourly").paused is True and app.trigger("nightly").paused is False
    row = page.locator('#triggers tr[data-trigger="hourly"]')
    assert row.locator(".tag.paused").inner_text() == "paused"
    assert row.locator("button:has-text('Resume')").count() == 1
    _mark(page)
    app.schedule("reports.build", name="weekly", cron="0 6 * * 1")  # added elsewhere
    expect(page.locator('#triggers tr[data-trigger="weekly"]')).to_have_count(1)  # the page reloads


def test_workers_page_shows_the_jobs_each_worker_runs(site: tuple[duly.App, Session]) -> None:
    app, s = site
    app.store.register_worker(WorkerRegistration("host-a:1:aa", "host-a", 1, None, 4))
    app.enqueue("t")
    app.enqueue("t")
    held = claim_one(app, worker="host-a:1:aa")
    page = s.goto("/workers")
    cell = page.locator("#workers td.jobs")
    assert cell.inner_text() == f"#{held.id}"
    more = claim_one(app, worker="host-a:1:aa")
    expect(cell).to_have_text(f"#{held.id} #{more.id}")
    page.locator(f'#workers a[href="/jobs/{more.id}"]').click()
    page.wait_for_url(f"**/jobs/{more.id}")
    assert page.locator("#job-state").inner_text() == "running"


def _demo_data(backend: Backend) -> duly.App:
    """Jobs over the last half hour in three queues, as the screenshots show them."""
    rng = random.Random(7)
    start = datetime.now(UTC) - timedelta(minutes=30)
    clock = duly.VirtualClock(start)
    past = backend.app(clock)
    tasks = {"mail": "mail.send_receipt", "images": "images.resize", "reports": "reports.build"}
    for minute in range(30):
        clock.set(start + timedelta(minutes=minute, seconds=5))
        for queue, task in tasks.items():
            for _ in range(rng.randint(0, 4 if queue == "reports" else 12)):
                past.enqueue(task, args=[rng.randint(1000, 9999)], queue=queue)
        for job in past.store.claim(duly.core.model.ClaimParams("host-a:4242:beef", 500)):
            clock.set(clock.now() + timedelta(milliseconds=rng.randint(20, 900)))
            if rng.random() < 0.08:
                fail(past, job, retry_in=None, message=f"SMTP server said 451 for order {job.args[0]}")
            else:
                succeed(past, job, result={"ok": True}, log=f"{job.task} {job.args[0]} done")
    app = backend.app()
    for queue, task in tasks.items():
        for _ in range(rng.randint(3, 9)):
            app.enqueue(task, args=[rng.randint(1000, 9999)], queue=queue)
    app.enqueue("reports.build", args=[2030], queue="reports", run_in="2h")
    running = claim_one(app, worker="host-a:4242:beef")
    app.set_progress(running.id, running.attempt, 37, 120)
    app.store.register_worker(WorkerRegistration("host-a:4242:beef", "host-a", 4242, None, 16))
    app.store.register_worker(WorkerRegistration("host-b:977:cafe", "host-b", 977, ["images"], 4))
    app.store.pause_queue("reports")
    app.schedule("reports.build", name="nightly-report", cron="30 2 * * *", tz="Europe/Paris", queue="reports")
    app.schedule("mail.send_digest", name="mail-digest", every="15m", queue="mail")
    app.schedule("images.cleanup", name="images-cleanup", cron="0 4 * * 0")
    app.schedule("mail.send_receipt", name="order-paid", event="order.paid", queue="mail")
    app.pause_trigger("images-cleanup")
    return app


def test_screenshots(backend: Backend, browser: Any, tmp_path: Path) -> None:
    if backend.name != "sqlite":
        pytest.skip("one set of screenshots is enough")
    target = Path(os.environ.get("DULY_SCREENSHOTS") or tmp_path)
    target.mkdir(parents=True, exist_ok=True)
    app = _demo_data(backend)
    server = serve_in_thread(app, port=0)
    s = Session(browser, server)
    try:
        failed = app.jobs(state="failed", limit=1)[0]
        running = app.jobs(state="running", limit=1)[0]
        shots = {"overview": "/", "jobs": "/jobs?queue=mail", "job": f"/jobs/{failed.id}",
                 "job-running": f"/jobs/{running.id}", "workers": "/workers", "triggers": "/triggers"}  # fmt: skip
        for name, path in shots.items():
            page = s.goto(path)
            page.wait_for_load_state("networkidle")
            page.screenshot(path=str(target / f"dashboard-{name}.png"), full_page=name != "jobs")
            assert (target / f"dashboard-{name}.png").stat().st_size > 10_000
    finally:
        s.close()
        server.stop()
