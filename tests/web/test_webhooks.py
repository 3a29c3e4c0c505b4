"""Webhook triggers over real HTTP: the secret URL fires the trigger, even with a token set."""

from __future__ import annotations

import httpx

from duly.testing import drain
from duly.web.server import serve_in_thread
from tests.conftest import Backend


def test_post_to_the_secret_url_fires_the_trigger(backend: Backend) -> None:
    app = backend.app()
    seen: list[object] = []

    @app.task(name="deploy")
    def deploy(event: dict[str, object]) -> None:
        seen.append(event["data"])

    trigger = app.schedule("deploy", webhook=True, name="github")
    server = serve_in_thread(app, port=0, token="a-token-the-sender-does-not-have")
    try:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            ok = http.post(f"/hooks/{trigger.spec.secret}", json={"ref": "main"})
            assert ok.status_code == 202, ok.text
            (job_id,) = ok.json()["jobs"]
            assert http.post("/hooks/not-the-secret", json={}).status_code == 404
            assert http.post(f"/hooks/{trigger.spec.secret}", content=b"{bad", headers={"content-type": "application/json"}).status_code == 400
            app.pause_trigger("github")
            assert http.post(f"/hooks/{trigger.spec.secret}", json={}).status_code == 404
    finally:
        server.stop()
    assert app.get_job(job_id).trigger_id == trigger.id
    drain(app, advance=False)
    assert seen == [{"ref": "main"}]
