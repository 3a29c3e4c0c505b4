"""The dashboard's JSON API and pages over real HTTP (uvicorn in a thread), on both
backends: every endpoint, authentication, CSRF, escaping, binding rules, headers."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from typing import Any
from urllib.parse import quote

import httpx
import pytest

import duly
from duly.testing import drain
from duly.web import api as api_module
from duly.web.server import BindRefused, check_bind, serve_in_thread
from tests.conftest import T0, Backend
from tests.helpers import claim_one, fail, succeed

TOKEN = "s3cret-token-for-tests"


class Client:
    """An httpx client on a server started for the test, with the CSRF dance built in."""

    def __init__(self, app: duly.App, token: str | None = None) -> None:
        self.server = serve_in_thread(app, port=0, token=token)
        self.http = httpx.Client(base_url=self.server.url, follow_redirects=False, timeout=30)

    def csrf(self) -> str:
        if "duly_csrf" not in self.http.cookies:
            self.http.get("/healthz")
        return self.http.cookies["duly_csrf"]

    def get(self, url: str, **kw: Any) -> httpx.Response:
        return self.http.get(url, **kw)

    def post(self, url: str, csrf: bool = True, **kw: Any) -> httpx.Response:
        headers = dict(kw.pop("headers", {}))
        if csrf:
            headers["X-CSRF-Token"] = self.csrf()
        return self.http.post(url, headers=headers, **kw)

    def delete(self, url: str, csrf: bool = True, **kw: Any) -> httpx.Response:
        headers = dict(kw.pop("headers", {}))
        if csrf:
            headers["X-CSRF-Token"] = self.csrf()
        return self.http.delete(url, headers=headers, **kw)

    def close(self) -> None:
        self.http.close()
        self.server.stop()


@pytest.fixture
def web(backend: Backend) -> Iterator[tuple[duly.App, Client]]:
    app = backend.app()
    client = Client(app)
    yield app, client
    client.close()


@pytest.fixture
def timed(backend: Backend) -> Iterator[tuple[duly.App, Client]]:
    """An App under a virtual clock at T0 with a server on it: its triggers fire when a test
    moves the clock and ticks (or drains), not when real time passes."""
    app = backend.app(duly.VirtualClock(T0))
    client = Client(app)
    yield app, client
    client.close()


@pytest.fixture
def secured(backend: Backend) -> Iterator[tuple[duly.App, Client]]:
    app = backend.app()
    client = Client(app, token=TOKEN)
    yield app, client
    client.close()


def test_overview_queues_throughput_workers(web: tuple[duly.App, Client]) -> None:
    app, c = web
    for q in ("mail", "mail", "images"):
        app.enqueue("t", queue=q)
    succeed(app, claim_one(app))
    app.store.register_worker(duly.core.admin.WorkerRegistration("w-1", "host", 1, ["mail"], 4))
    overview = c.get("/api/overview?minutes=10").json()
    queues = {q["queue"]: q for q in overview["queues"]}
    assert queues["mail"]["counts"]["succeeded"] == 1 and queues["mail"]["counts"]["queued"] == 1
    assert overview["totals"]["queued"] == 2 and overview["workers"] == {"alive": 1, "dead": 0}
    assert overview["throughput"]["minutes"] == 10 and sum(overview["throughput"]["series"]["succeeded"]) == 1
    assert [q["queue"] for q in c.get("/api/queues").json()] == ["images", "mail"]
    points = c.get("/api/throughput?minutes=5").json()["points"]
    assert [(p["queue"], p["state"], p["count"]) for p in points] == [("mail", "succeeded", 1)]
    workers = c.get("/api/workers").json()
    assert workers[0]["id"] == "w-1" and workers[0]["alive"] is True
    assert c.get("/api/throughput?minutes=0").status_code == 422
    for page in ("/", "/jobs", "/workers", "/triggers"):
        r = c.get(page)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html"), page


def test_job_list_filters_and_keyset_pages(web: tuple[duly.App, Client]) -> None:
    app, c = web
    ids = [app.enqueue("reports.build", args=[i], queue="reports").id for i in range(7)]
    app.enqueue("mail.send", queue="mail", kwargs={"to": "ann@example.test"})
    seen: list[int] = []
    url = "/api/jobs?queue=reports&limit=3"
    while url:
        page = c.get(url).json()
        seen += [j["id"] for j in page["jobs"]]
        url = f"/api/jobs?queue=reports&limit=3&before={page['next_before']}" if page["next_before"] else ""
    assert seen == sorted(ids, reverse=True)
    found = c.get("/api/jobs?q=ann@example").json()["jobs"]
    assert [j["task"] for j in found] == ["mail.send"]
    assert c.get("/api/jobs?state=queued&task=mail.send").json()["jobs"][0]["queue"] == "mail"
    assert c.get("/api/jobs?state=nonsense").status_code == 422
    html = c.get("/jobs?queue=reports&limit=3").text
    assert 'id="older"' in html and f"before={ids[4]}" in html


def test_job_page_and_actions(web: tuple[duly.App, Client]) -> None:
    app, c = web
    job = app.enqueue("t", args=[1])
    fail(app, claim_one(app), retry_in=None, message="boom", log="step 1\nstep 2")
    data = c.get(f"/api/jobs/{job.id}").json()
    assert data["job"]["state"] == "failed" and data["attempts"][0]["error_message"] == "boom"
    assert data["attempts"][0]["log"] == "step 1\nstep 2" and "retry" in data["actions"]
    html = c.get(f"/jobs/{job.id}").text
    assert "Traceback ..." in html and "step 2" in html
    r = c.post(f"/api/jobs/{job.id}/retry")
    assert r.status_code == 200 and r.json()["job"]["state"] == "queued"
    assert c.post(f"/api/jobs/{job.id}/retry").status_code == 409
    assert c.post(f"/api/jobs/{job.id}/cancel").json()["job"]["state"] == "cancelled"
    rerun = c.post(f"/api/jobs/{job.id}/run").json()["job"]
    assert rerun["id"] == job.id and rerun["state"] == "queued"
    succeed(app, claim_one(app))
    again = c.post(f"/api/jobs/{job.id}/run").json()["job"]
    assert again["id"] != job.id and again["args"] == [1]  # a succeeded job is enqueued again
    later = app.enqueue("t", run_in=3600)
    assert c.post(f"/api/jobs/{later.id}/run").json()["job"]["state"] == "queued"
    assert c.delete(f"/api/jobs/{job.id}").json() == {"deleted": job.id}
    assert c.get(f"/api/jobs/{job.id}").status_code == 404
    assert c.get(f"/jobs/{job.id}").status_code == 404


def test_page_forms_retry_cancel_and_pause(web: tuple[duly.App, Client]) -> None:
    app, c = web
    job = app.enqueue("t", queue="mail")
    form = {"csrf_token": c.csrf()}
    r = c.post(f"/jobs/{job.id}/cancel", csrf=False, data=form)
    assert r.status_code == 303 and r.headers["location"].startswith(f"/jobs/{job.id}?msg=")
    assert app.get_job(job.id).state is duly.JobState.CANCELLED
    assert c.post(f"/jobs/{job.id}/retry", csrf=False, data=form).status_code == 303
    assert app.get_job(job.id).state is duly.JobState.QUEUED
    assert c.post("/queues/mail/pause", csrf=False, data=form).status_code == 303
    assert app.paused_queues() == ["mail"]
    assert "Resume" in c.get("/").text
    assert c.post("/api/queues/mail/resume").json() == {"queue": "mail", "paused": False, "changed": True}
    assert c.post("/api/queues/mail/pause").json()["changed"] is True
    assert c.post(f"/jobs/{job.id}/delete", csrf=False, data=form).headers["location"].startswith("/jobs?msg=")


def test_enqueue_by_task_name(web: tuple[duly.App, Client]) -> None:
    app, c = web
    r = c.post("/api/jobs", json={"task": "billing.charge", "args": [42], "kwargs": {"eur": 5},
                                  "queue": "billing", "run_in": "1h", "key": "charge-42"})  # fmt: skip
    assert r.status_code == 201
    job = r.json()["job"]
    assert (job["task"], job["queue"], job["state"], job["key"]) == ("billing.charge", "billing", "scheduled", "charge-42")
    same = c.post("/api/jobs", json={"task": "billing.charge", "key": "charge-42", "mode": "ignore"})
    assert same.status_code == 200 and same.json() == {"job": same.json()["job"], "created": False}
    assert c.post("/api/jobs", json={"task": "x", "key": "charge-42"}).status_code == 409
    assert c.post("/api/jobs", json={"args": []}).status_code == 422
    assert c.post("/api/jobs", json={"task": "x", "bogus": 1}).status_code == 422
    assert c.post("/api/jobs", json={"task": "x", "priority": "high"}).status_code == 422
    assert c.post("/api/jobs", content=b"{not json", headers={"content-type": "application/json"}).status_code == 400
    assert len(app.jobs()) == 1


def test_csrf_failures(web: tuple[duly.App, Client]) -> None:
    app, c = web
    job = app.enqueue("t")
    assert c.post(f"/api/jobs/{job.id}/cancel", csrf=False).status_code == 403
    bad = c.post(f"/api/jobs/{job.id}/cancel", csrf=False, headers={"X-CSRF-Token": "x" * 43})
    assert bad.status_code == 403 and "CSRF" in bad.json()["error"]
    cross = c.post(f"/api/jobs/{job.id}/cancel", headers={"Origin": "https://evil.example"})
    assert cross.status_code == 403 and "cross-origin" in cross.json()["error"]
    form = c.post(f"/jobs/{job.id}/cancel", csrf=False, data={"csrf_token": "forged"})
    assert form.status_code == 403 and "CSRF" in form.text
    assert c.post("/api/jobs", csrf=False, json={"task": "t"}).status_code == 403
    assert app.get_job(job.id).state is duly.JobState.QUEUED and len(app.jobs()) == 1


def test_csrf_failures_on_queue_and_trigger_actions(web: tuple[duly.App, Client]) -> None:
    """Every state-changing API route refuses a request without the token, with a wrong
    one, and from another origin, and changes nothing."""
    app, c = web
    app.enqueue("t", queue="mail")
    app.schedule("reports.build", name="nightly", cron="30 2 * * *")
    wrong = {"X-CSRF-Token": "x" * 43}
    for url in ("/api/queues/mail/pause", "/api/queues/mail/resume", "/api/triggers/nightly/pause",
                "/api/triggers/nightly/resume", "/api/triggers/nightly/run"):  # fmt: skip
        c.csrf()  # the client holds the cookie: only the token is missing or wrong
        for headers in ({}, wrong):
            r = c.post(url, csrf=False, headers=headers)
            assert r.status_code == 403 and "CSRF" in r.json()["error"], (url, headers, r.text)
        cross = c.post(url, headers={"Origin": "https://evil.example"})
        assert cross.status_code == 403 and "cross-origin" in cross.json()["error"], url
    assert app.paused_queues() == [] and app.trigger("nightly").paused is False
    assert app.jobs(task="reports.build") == []
    # the page forms of the same actions
    for url in ("/queues/mail/pause", "/triggers/nightly/pause", "/triggers/nightly/run"):
        r = c.post(url, csrf=False, data={"csrf_token": "forged"})
        assert r.status_code == 403 and "CSRF" in r.text, url
    assert app.paused_queues() == [] and app.trigger("nightly").paused is False
    assert app.jobs(task="reports.build") == []


def test_login_refuses_a_forged_csrf_token(secured: tuple[duly.App, Client]) -> None:
    """A login form posted without the CSRF token, or from another site, is refused even
    with the right token (login CSRF), and no session is set."""
    _, c = secured
    c.csrf()
    for data, headers in (({"token": TOKEN, "next": "/"}, {}),
                          ({"csrf_token": "forged", "token": TOKEN, "next": "/"}, {}),
                          ({"csrf_token": c.csrf(), "token": TOKEN, "next": "/"}, {"Origin": "https://evil.example"})):  # fmt: skip
        r = c.post("/login", csrf=False, data=data, headers=headers)
        assert r.status_code == 403, (data, headers, r.status_code)
        assert "duly_session" not in r.headers.get("set-cookie", "")
        assert "duly_session" not in c.http.cookies
    assert c.get("/jobs").status_code == 303  # still logged out
    ok = c.post("/login", csrf=False, data={"csrf_token": c.csrf(), "token": TOKEN, "next": "/jobs"})
    assert ok.status_code == 303 and ok.headers["location"] == "/jobs" and "duly_session" in c.http.cookies


def test_script_in_arguments_errors_logs_and_names_is_escaped(web: tuple[duly.App, Client]) -> None:
    app, c = web
    evil = '<script>alert("xss")</script>'
    queue = '<img src=x onerror=alert(1)>'
    job = app.enqueue(evil, args=[evil], kwargs={"k": evil}, queue=queue, key=evil)
    fail(app, claim_one(app), retry_in=None, message=evil, log=evil)
    for page in (f"/jobs/{job.id}", "/jobs", "/", f"/jobs?q={evil}"):
        html = c.get(page).text
        assert "<script>alert" not in html and "<img src=x" not in html, page
    html = c.get(f"/jobs/{job.id}").text
    assert "&lt;script&gt;alert(&#34;xss&#34;)&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in c.get("/").text
    assert c.get(f"/api/jobs/{job.id}").json()["job"]["args"] == [evil]  # JSON keeps the data as it is
    scripts = re.findall(r"<script[^>]*>", c.get("/").text)
    assert all('src="/static/duly.js"' in s or 'type="application/json"' in s for s in scripts)


def test_security_headers_and_dns_rebinding(web: tuple[duly.App, Client]) -> None:
    _, c = web
    for url in ("/", "/api/overview", "/static/duly.css"):
        h = c.get(url).headers
        assert h["content-security-policy"].startswith("default-src 'self'")
        assert "script-src 'self'" in h["content-security-policy"]
        assert h["x-content-type-options"] == "nosniff" and h["x-frame-options"] == "DENY"
        assert h["referrer-policy"] == "same-origin"
        csp = [d.strip() for d in h["content-security-policy"].split(";")]
        assert not any("unsafe-inline" in d or "unsafe-eval" in d for d in csp), csp
        assert "object-src 'none'" in csp and "frame-ancestors 'none'" in csp
    # a client without cookies is given the CSRF cookie, with its flags
    with httpx.Client(base_url=c.server.url) as fresh:
        first = fresh.get("/")
        cookies = first.headers.get_list("set-cookie")
        (csrf,) = [v for v in cookies if v.startswith("duly_csrf=")]
        flags = {f.strip().split("=")[0].lower(): f.strip() for f in csrf.split(";")[1:]}
        assert set(flags) == {"path", "httponly", "samesite"}, csrf  # no Secure over plain HTTP
        assert flags["path"] == "Path=/" and flags["samesite"] == "SameSite=Strict"
        assert len(csrf.split(";")[0].removeprefix("duly_csrf=")) >= 40
        assert "set-cookie" not in fresh.get("/").headers  # kept: not issued again
    rebound = c.get("/api/overview", headers={"Host": "attacker.example"})
    assert rebound.status_code == 400


def test_authentication_when_a_token_is_set(secured: tuple[duly.App, Client]) -> None:
    app, c = secured
    job = app.enqueue("t")
    for url in ("/api/overview", "/api/jobs", f"/api/jobs/{job.id}", "/metrics", "/api/openapi.json"):
        r = c.get(url)
        assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer"), url
    assert c.get("/api/overview", headers={"Authorization": "Bearer wrong"}).status_code == 401
    page = c.get("/jobs?state=failed")
    assert page.status_code == 303 and page.headers["location"] == "/login?next=/jobs%3Fstate%3Dfailed"
    assert c.get("/static/duly.css").status_code == 200 and c.get("/login").status_code == 200
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    assert c.get("/api/overview", headers=bearer).status_code == 200
    # Bearer requests carry no ambient credentials: no CSRF token needed
    assert c.post(f"/api/jobs/{job.id}/cancel", csrf=False, headers=bearer).status_code == 200
    assert c.post("/api/jobs", csrf=False, json={"task": "t"}).status_code == 401
    wrong = c.post("/login", csrf=False, data={"csrf_token": c.csrf(), "token": "nope", "next": "/"})
    assert wrong.status_code == 401 and "wrong token" in wrong.text
    assert "duly_session" not in c.http.cookies
    evil_next = c.post("/login", csrf=False, data={"csrf_token": c.csrf(), "token": TOKEN, "next": "//evil.example/"})
    assert evil_next.status_code == 303 and evil_next.headers["location"] == "/"
    assert c.get("/jobs").status_code == 200  # the session cookie
    assert c.post(f"/api/jobs/{job.id}/retry", csrf=False).status_code == 403  # cookie auth needs CSRF
    assert c.post(f"/api/jobs/{job.id}/retry").status_code == 200
    assert c.post("/logout", csrf=False, data={"csrf_token": c.csrf()}).status_code == 303
    c.http.cookies.delete("duly_session")
    assert c.get("/api/overview").status_code == 401


def test_refusal_to_bind_a_public_address_without_auth(backend: Backend) -> None:
    app = backend.app()
    with pytest.raises(BindRefused, match="--token"):
        serve_in_thread(app, host="0.0.0.0", port=0)
    with pytest.raises(BindRefused):
        check_bind("192.168.1.10", None)
    with pytest.raises(BindRefused):
        check_bind("example.org", "")
    check_bind("127.0.0.1", None)
    check_bind("::1", None)
    check_bind("localhost", None)
    check_bind("0.0.0.0", TOKEN)


def test_metrics_endpoint(web: tuple[duly.App, Client]) -> None:
    app, c = web
    app.enqueue("t", queue="mail")
    app.enqueue("t", queue="mail")
    succeed(app, claim_one(app))
    app.store.pause_queue("mail")
    app.store.register_worker(duly.core.admin.WorkerRegistration("w-1", "host", 1, None, 4))
    r = c.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    text = r.text
    assert 'duly_jobs{queue="mail",state="queued"} 1.0' in text
    assert 'duly_jobs{queue="mail",state="succeeded"} 1.0' in text
    assert 'duly_queue_paused{queue="mail"} 1.0' in text
    assert 'duly_queue_latency_seconds{queue="mail"}' in text
    assert 'duly_jobs_finished_per_minute{queue="mail",state="succeeded"} 0.2' in text
    # cumulative since the server started, counted SETTLE_SECONDS after a job ends (tests/web/test_metrics.py)
    assert "# TYPE duly_attempt_duration_seconds histogram" in text
    assert "# TYPE duly_jobs_finished_total counter" in text
    assert "duly_workers_alive 1.0" in text


def test_openapi_documents_every_api_route(web: tuple[duly.App, Client]) -> None:
    _, c = web
    doc = c.get("/api/openapi.json").json()
    assert doc["openapi"].startswith("3.1")
    documented = {(path, method.upper()) for path, ops in doc["paths"].items() for method in ops}
    served = set()
    for route in api_module.routes():
        path = route.path.replace("{name:path}", "{name}").replace("{job_id:int}", "{job_id}")
        for method in route.methods or ():
            if method != "HEAD":
                served.add((path, method))
    assert documented == served
    refs = set(re.findall(r'"#/components/schemas/(\w+)"', c.get("/api/openapi.json").text))
    assert refs <= set(doc["components"]["schemas"])


def test_triggers_api_lists_and_steers_triggers(web: tuple[duly.App, Client]) -> None:
    app, c = web
    data = c.get("/api/triggers").json()
    if not data["available"]:
        assert data["triggers"] == [] and "no stored schedules" in c.get("/triggers").text
        return
    if not hasattr(app, "schedule"):
        pytest.skip("no way to add a trigger in this version")
    app.schedule("reports.build", name="nightly", cron="30 2 * * *")
    listed = c.get("/api/triggers").json()["triggers"]
    assert [t["name"] for t in listed] == ["nightly"]
    assert c.post("/api/triggers/nightly/pause").json()["trigger"]["paused"] is True
    assert c.post("/api/triggers/nightly/resume").json()["trigger"]["paused"] is False
    ran = c.post("/api/triggers/nightly/run").json()["job"]
    assert ran["task"] == "reports.build"
    assert c.post("/api/triggers/nope/run").status_code == 404
    assert "nightly" in c.get("/triggers").text


def test_search_looks_through_a_bounded_window_per_request(
    web: tuple[duly.App, Client], monkeypatch: pytest.MonkeyPatch
) -> None:
    from duly.web import views

    app, c = web
    ids = [app.enqueue("t", args=["needle" if i == 1 else "hay"]).id for i in range(12)]
    monkeypatch.setattr(views, "SEARCH_WINDOW", 5)
    found: list[int] = []
    windows = []
    url = "/api/jobs?q=needle"
    while url:
        page = c.get(url).json()
        found += [j["id"] for j in page["jobs"]]
        windows.append((page["searched"]["from_id"], page["searched"]["to_id"]))
        url = f"/api/jobs?q=needle&before={page['next_before']}" if page["next_before"] else ""
    assert found == [ids[1]]
    assert windows == [(ids[7], ids[11]), (ids[2], ids[6]), (ids[0], ids[1])]
    assert "Searched jobs" in c.get("/jobs?q=needle").text


def test_run_now_form_on_the_triggers_page(web: tuple[duly.App, Client]) -> None:
    """The page's "Run now" button: a form POST to /triggers/{name}/run carrying the CSRF
    token; it makes one job recorded as the trigger's manual run and comes back to the page."""
    app, c = web
    if not hasattr(app, "schedule"):
        pytest.skip("no way to add a trigger in this version")
    name = "reports/eu nightly"  # a slash and a space: the URL is encoded, the route takes a path
    app.schedule("reports.build", name=name, cron="30 2 * * *", kwargs={"region": "eu"}, queue="reports")
    page = c.get("/triggers").text
    forms = re.findall(r'<form method="post" action="([^"]+)"[^>]*>\s*<input type="hidden" name="csrf_token" value="([^"]*)">', page)
    action, token = next((a, t) for a, t in forms if a.endswith("/run"))
    assert action == "/triggers/reports/eu%20nightly/run"
    forged = c.post(action, csrf=False, data={"csrf_token": "forged"})
    assert forged.status_code == 403 and app.jobs(task="reports.build") == []
    r = c.post(action, csrf=False, data={"csrf_token": token})
    assert r.status_code == 303
    (job,) = app.jobs(task="reports.build")
    assert (job.kwargs, job.queue, job.trigger_id) == ({"region": "eu"}, "reports", app.trigger(name).id)
    assert app.trigger_state(name).last_manual_job_id == job.id
    location = r.headers["location"]
    assert location.startswith("/triggers?msg=") and f"job+{job.id}" in location
    back = c.get(location)
    assert back.status_code == 200 and f"trigger {name} ran: job {job.id}" in back.text
    missing = c.post("/triggers/nope/run", csrf=False, data={"csrf_token": token})
    assert missing.status_code == 404 and len(app.jobs(task="reports.build")) == 1


# -- adding, showing and deleting triggers -------------------------------------------------


def _names(app: duly.App) -> list[str]:
    return sorted(t.name for t in app.triggers())


def test_add_a_trigger_of_each_kind(timed: tuple[duly.App, Client]) -> None:
    """POST /api/triggers takes the fields of ``duly triggers add``; the answer is the stored
    trigger as GET /api/triggers lists it."""
    app, c = timed
    r = c.post("/api/triggers", json={
        "name": "nightly", "task": "reports.build", "cron": "30 2 * * *", "tz": "Europe/Paris",
        "kwargs": {"full": True}, "queue": "reports", "priority": 5, "max_attempts": 2, "expires_in": "10m",
        "catch_up": "all", "catch_up_limit": 3,
    })  # fmt: skip
    assert r.status_code == 201, r.text
    nightly = r.json()["trigger"]
    spec = nightly["spec"]
    assert (nightly["name"], spec["kind"], spec["spec"], spec["timezone"]) == ("nightly", "cron", "30 2 * * *", "Europe/Paris")
    assert (spec["queue"], spec["priority"], spec["max_attempts"], spec["expires_in"]) == ("reports", 5, 2, 600.0)
    assert (spec["catch_up"], spec["catch_up_limit"], spec["kwargs"]) == ("all", 3, {"full": True})
    assert nightly["next_fire_at"] == "2030-01-08T01:30:00+00:00"  # 02:30 in Paris (UTC+1 in January)
    assert nightly["paused"] is False and nightly["declared"] is False
    (listed,) = c.get("/api/triggers").json()["triggers"]
    assert listed == nightly

    pulse = c.post("/api/triggers", json={"name": "pulse", "task": "metrics.pull", "every": "30m",
                                          "start": "2030-01-07T10:30:00+01:00", "end": "2030-01-07T12:00:00Z"})  # fmt: skip
    assert pulse.status_code == 201, pulse.text
    p = pulse.json()["trigger"]
    assert (p["spec"]["kind"], p["spec"]["spec"], p["next_fire_at"]) == ("every", "1800.0", "2030-01-07T09:30:00+00:00")
    assert (p["spec"]["start_at"], p["spec"]["end_at"]) == ("2030-01-07T09:30:00+00:00", "2030-01-07T12:00:00+00:00")

    once = c.post("/api/triggers", json={"name": "once", "task": "mail.digest", "at": "2030-01-07T12:00:00+02:00",
                                         "args": [7]}).json()["trigger"]  # fmt: skip
    assert (once["spec"]["kind"], once["next_fire_at"], once["spec"]["args"]) == ("at", "2030-01-07T10:00:00+00:00", [7])
    soon = c.post("/api/triggers", json={"name": "soon", "task": "mail.digest", "in": "1h30m"}).json()["trigger"]
    assert (soon["spec"]["kind"], soon["next_fire_at"]) == ("at", "2030-01-07T10:30:00+00:00")  # an in is an at

    paid = c.post("/api/triggers", json={"name": "paid", "task": "orders.ship", "event": "order.*",
                                         "filter": {"status": "paid"}, "debounce": "5s"})  # fmt: skip
    assert paid.status_code == 201, paid.text
    ps = paid.json()["trigger"]["spec"]
    assert (ps["kind"], ps["spec"], ps["filter"], ps["debounce"]) == ("event", "order.*", {"status": "paid"}, 5.0)

    hook = c.post("/api/triggers", json={"name": "github", "task": "deploy", "webhook": True}).json()
    secret = app.trigger("github").spec.secret
    assert hook["trigger"]["spec"]["secret"] == "***" and secret and hook["webhook_path"] == f"/hooks/{secret}"
    manual = c.post("/api/triggers", json={"name": "by-hand", "task": "deploy", "manual": True}).json()
    assert (manual["trigger"]["spec"]["kind"], manual["trigger"]["next_fire_at"]) == ("manual", None)
    assert "webhook_path" not in manual

    listed_by_name = {t["name"]: t for t in c.get("/api/triggers").json()["triggers"]}
    assert sorted(listed_by_name) == ["by-hand", "github", "nightly", "once", "paid", "pulse", "soon"]
    assert listed_by_name["github"] == hook["trigger"] and listed_by_name["paid"] == paid.json()["trigger"]


def test_triggers_added_through_the_api_fire(timed: tuple[duly.App, Client]) -> None:
    """A cron trigger added over HTTP fires on its slots, and an event trigger with a filter
    and debounce collects the matching events into one job when its window closes."""
    app, c = timed
    runs: list[tuple[str, Any]] = []

    @app.task(name="reports.build")
    def build(region: str) -> None:
        runs.append(("build", region))

    @app.task(name="orders.ship")
    def ship(events: list[dict[str, Any]]) -> None:
        runs.append(("ship", [e["data"]["id"] for e in events]))

    r = c.post("/api/triggers", json={"name": "quarterly", "task": "reports.build", "cron": "*/15 * * * *",
                                      "tz": "Asia/Kolkata", "kwargs": {"region": "in"}})  # fmt: skip
    assert r.status_code == 201, r.text
    assert c.post("/api/triggers", json={"name": "paid", "task": "orders.ship", "event": "order.*",
                                         "filter": {"status": "paid"}, "debounce": "5s"}).status_code == 201  # fmt: skip
    drain(app, until=T0 + timedelta(minutes=31))  # the slots at 09:15 and 09:30
    assert runs == [("build", "in"), ("build", "in")]
    jobs = app.jobs(task="reports.build")
    assert sorted(j.run_at for j in jobs) == [T0 + timedelta(minutes=15), T0 + timedelta(minutes=30)]
    assert {j.trigger_id for j in jobs} == {app.trigger("quarterly").id}
    runs.clear()
    app.emit("order.created", {"id": 1, "status": "paid"})
    app.emit("order.created", {"id": 2, "status": "pending"})  # filtered out
    app.emit("order.updated", {"id": 3, "status": "paid"})
    assert app.scheduler_tick() == 0  # the window is still open
    app.clock.advance("5s")  # type: ignore[attr-defined]
    assert app.scheduler_tick() == 1
    drain(app, advance=False)
    assert runs == [("ship", [1, 3])]


def test_add_trigger_refusals_store_nothing(timed: tuple[duly.App, Client]) -> None:
    """A name taken is 409; bad input is 422 naming the field (through app.schedule's own
    validation); nothing is stored or changed either way."""
    app, c = timed
    assert c.post("/api/triggers", json={"name": "nightly", "task": "a", "cron": "30 2 * * *"}).status_code == 201
    before = c.get("/api/triggers").json()
    dup = c.post("/api/triggers", json={"name": "nightly", "task": "b", "every": "1m"})
    assert dup.status_code == 409 and dup.json()["field"] == "name" and "already exists" in dup.json()["error"]
    bad: list[tuple[dict[str, Any], str, str]] = [
        ({"cron": "61 * * * *"}, "cron", "invalid cron expression"),
        ({"cron": "not a cron"}, "cron", "invalid cron expression"),
        ({"cron": "0 9 * * *", "tz": "Nowhere/Land"}, "tz", "unknown time zone"),
        ({"every": "ten minutes"}, "every", "invalid duration"),
        ({"every": True}, "every", "invalid duration"),
        ({"in": "-5m"}, "in", "invalid duration"),
        ({"at": "2030-01-07T12:00:00"}, "at", "no UTC offset"),
        ({"every": "1m", "start": "soon"}, "start", "ISO 8601"),
        ({"event": "order.*", "debounce": "a while"}, "debounce", "invalid duration"),
        ({"event": "order.*", "filter": ["paid"]}, "filter", "filter must be"),
        ({"every": "1m", "expires_in": "later"}, "expires_in", "invalid duration"),
        ({"every": "1m", "priority": "high"}, "priority", "priority must be an integer"),
        ({"every": "1m", "catch_up": "sometimes"}, "catch_up", "catch_up must be one of"),
        ({"every": "1m", "catch_up_limit": 0}, "catch_up_limit", "catch_up_limit must be"),
        ({"every": "1m", "queue": ""}, "queue", "queue must be"),
        ({"webhook": "yes"}, "webhook", "true or false"),
        ({"every": "1m", "args": "x"}, "args", "JSON array"),
        ({"every": "1m", "bogus": 1}, "bogus", "unknown field"),
        ({"every": "1m", "task": ""}, "task", "task must be"),
        ({}, "", "give exactly one of"),
        ({"every": "1m", "cron": "@daily"}, "", "give exactly one of"),
    ]  # fmt: skip
    for fields, field, message in bad:
        body = {"name": "other", "task": "t", **fields}
        r = c.post("/api/triggers", json=body)
        assert r.status_code == 422, (body, r.status_code, r.text)
        assert message in r.json()["error"] and r.json().get("field", "") == field, (body, r.json())
    missing = c.post("/api/triggers", json={"task": "t", "every": "1m"})
    assert missing.status_code == 422 and missing.json()["field"] == "name"
    assert c.post("/api/triggers", json=["nightly"]).status_code == 422
    assert c.post("/api/triggers", content=b"{bad", headers={"content-type": "application/json"}).status_code == 400
    assert c.get("/api/triggers").json() == before
    assert _names(app) == ["nightly"] and app.trigger("nightly").spec.task == "a"


def test_show_a_trigger_with_its_next_fire_times(timed: tuple[duly.App, Client]) -> None:
    app, c = timed
    name = "reports/eu nightly"  # a slash and a space: the route takes a path
    c.post("/api/triggers", json={"name": name, "task": "reports.build", "cron": "30 2 * * 1-5", "tz": "Europe/Paris"})
    url = f"/api/triggers/{quote(name)}"
    r = c.get(url)
    assert r.status_code == 200, r.text
    shown = r.json()
    assert shown["trigger"] == c.get("/api/triggers").json()["triggers"][0]
    assert c.get(f"/api/triggers/{quote(name, safe='')}").json() == shown  # %2F for the slash too
    assert shown["upcoming"] == [dt.isoformat() for dt in app.upcoming(name, 10)]
    assert shown["upcoming"][:3] == ["2030-01-08T01:30:00+00:00", "2030-01-09T01:30:00+00:00",
                                     "2030-01-10T01:30:00+00:00"]  # fmt: skip
    assert shown["upcoming"][4] == "2030-01-14T01:30:00+00:00"  # weekdays only: the weekend is skipped
    assert shown["state"]["status"] is None and shown["state"]["last_manual_job_id"] is None
    job = c.post(f"{url}/run").json()["job"]
    state = c.get(url).json()["state"]
    assert (state["status"], state["last_manual_job_id"]) == ("queued", job["id"])
    assert c.post(f"{url}/pause").status_code == 200
    paused = c.get(url).json()
    assert paused["trigger"]["paused"] is True and paused["upcoming"] == []
    # a trigger whose name ends like a verb: GET and DELETE still reach it
    c.post("/api/triggers", json={"name": "weekly/run", "task": "t", "every": "7d"})
    assert c.get("/api/triggers/weekly/run").json()["trigger"]["name"] == "weekly/run"
    assert c.get("/api/triggers/nope").status_code == 404


def test_delete_a_trigger(timed: tuple[duly.App, Client]) -> None:
    app, c = timed
    c.post("/api/triggers", json={"name": "nightly", "task": "reports.build", "cron": "30 2 * * *"})
    c.post("/api/triggers", json={"name": "hourly", "task": "reports.build", "cron": "@hourly"})
    job = c.post("/api/triggers/nightly/run").json()["job"]
    r = c.delete("/api/triggers/nightly")
    assert r.status_code == 204 and r.content == b""
    assert c.get("/api/triggers/nightly").status_code == 404
    missing = c.delete("/api/triggers/nightly")
    assert missing.status_code == 404 and "no trigger named 'nightly'" in missing.json()["error"]
    assert _names(app) == ["hourly"]
    assert app.get_job(job["id"]).state is duly.JobState.QUEUED  # its jobs stay


def test_csrf_failures_on_adding_and_deleting_triggers(timed: tuple[duly.App, Client]) -> None:
    """POST /api/triggers and DELETE /api/triggers/{name} refuse a request without the CSRF
    token, with a wrong one, and from another origin, and change nothing."""
    app, c = timed
    app.schedule("reports.build", name="nightly", cron="30 2 * * *")
    before = c.get("/api/triggers").json()
    c.csrf()  # the client holds the cookie: only the token is missing or wrong
    body = {"name": "other", "task": "t", "every": "1m"}
    for send in (lambda **kw: c.post("/api/triggers", json=body, **kw),
                 lambda **kw: c.delete("/api/triggers/nightly", **kw)):  # fmt: skip
        for headers in ({}, {"X-CSRF-Token": "x" * 43}):
            r = send(csrf=False, headers=headers)
            assert r.status_code == 403 and "CSRF" in r.json()["error"], (headers, r.text)
        cross = send(headers={"Origin": "https://evil.example"})
        assert cross.status_code == 403 and "cross-origin" in cross.json()["error"]
    assert c.get("/api/triggers").json() == before and _names(app) == ["nightly"]


def test_adding_and_deleting_triggers_needs_authentication(secured: tuple[duly.App, Client]) -> None:
    app, c = secured
    app.schedule("reports.build", name="nightly", cron="30 2 * * *")
    body = {"name": "other", "task": "t", "every": "1m"}
    for r in (c.post("/api/triggers", json=body), c.get("/api/triggers/nightly"), c.delete("/api/triggers/nightly"),
              c.post("/api/triggers", json=body, headers={"Authorization": "Bearer wrong"}),
              c.delete("/api/triggers/nightly", headers={"Authorization": "Bearer wrong"})):  # fmt: skip
        assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer"), r.request.method
    assert _names(app) == ["nightly"]
    bearer = {"Authorization": f"Bearer {TOKEN}"}  # no ambient credentials: no CSRF token needed
    assert c.post("/api/triggers", csrf=False, json=body, headers=bearer).status_code == 201
    assert c.get("/api/triggers/other", headers=bearer).json()["trigger"]["spec"]["kind"] == "every"
    assert c.delete("/api/triggers/nightly", csrf=False, headers=bearer).status_code == 204
    assert _names(app) == ["other"]
    # a logged-in browser (session cookie) needs the CSRF token as well
    c.post("/login", csrf=False, data={"csrf_token": c.csrf(), "token": TOKEN, "next": "/"})
    assert "duly_session" in c.http.cookies
    assert c.post("/api/triggers", csrf=False, json={**body, "name": "third"}).status_code == 403
    assert c.delete("/api/triggers/other", csrf=False).status_code == 403
    assert _names(app) == ["other"]
    assert c.post("/api/triggers", json={**body, "name": "third"}).status_code == 201
    assert c.delete("/api/triggers/other").status_code == 204
    assert _names(app) == ["third"]
