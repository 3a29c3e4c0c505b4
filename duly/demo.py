"""``duly demo``: example jobs run on the embedded SQLite default, start to finish.

Some succeed (one reporting progress), one retries and then succeeds, one fails for good,
one is scheduled a few seconds ahead, one is cancelled while it runs.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import time

from duly.app import App
from duly.core.results import Reschedule
from duly.runtime import events
from duly.runtime.context import JobContext

app = App(os.environ.get("DULY_DEMO_URL", "sqlite:///duly-demo.db"), name="demo")


@app.task(name="demo.resize_image", queue="images")
def resize_image(ctx: JobContext, name: str, steps: int = 5) -> dict[str, str]:
    for i in range(steps):
        ctx.progress(i + 1, steps)
        ctx.log(f"resized tile {i + 1}/{steps} of {name}")
        time.sleep(0.2)
    return {"image": name, "size": "800x600"}


@app.task(name="demo.call_flaky_api", retry=["1s", "2s"], max_attempts=4)
async def call_flaky_api(ctx: JobContext, endpoint: str) -> str:
    await asyncio.sleep(0.05)
    if ctx.attempt < 3:
        raise ConnectionError(f"{endpoint} answered 503 (attempt {ctx.attempt})")
    return f"{endpoint}: 200 OK"


@app.task(name="demo.charge_card", max_attempts=2, retry="1s")
def charge_card(order: int) -> None:
    raise ValueError(f"card for order {order} was declined")


@app.task(name="demo.send_report")
def send_report(to: str) -> str:
    return f"report sent to {to}"


@app.task(name="demo.poll_feed")
def poll_feed(ctx: JobContext, feed: str) -> Reschedule | str:
    if ctx.attempt < 3:
        ctx.log(f"{feed}: nothing new, checking again in 1s")
        return Reschedule(in_="1s")
    return f"{feed}: 3 new items"


@app.task(name="demo.long_export", timeout=60)
def long_export(ctx: JobContext) -> str:
    while not ctx.wait_cancelled(0.1):
        pass
    return "stopped"


@app.periodic(every="3s", name="demo.heartbeat", catch_up="skip")
def heartbeat(ctx: JobContext) -> str:
    return f"tick at {ctx.now():%H:%M:%S}"


def enqueue_examples() -> None:
    for name in ("cat.png", "dog.png", "owl.png"):
        resize_image.enqueue(name, steps=random.randint(3, 6))
    call_flaky_api.enqueue("https://api.example.test/orders")
    charge_card.enqueue(1042)
    send_report.options(run_in="4s").enqueue("team@example.test")
    poll_feed.enqueue("news")
    export = long_export.enqueue()
    threading_timer_cancel(export.id)


def threading_timer_cancel(job_id: int) -> None:
    import threading

    threading.Timer(2.0, lambda: app.cancel(job_id)).start()


def run_demo(url: str, seconds: float, dashboard: bool, port: int) -> int:
    global app
    if url != app.url:
        os.environ["DULY_DEMO_URL"] = url
        app.url = url
        app.close()
    events.configure("human", "INFO")
    print(f"duly demo on {url}: enqueueing example jobs")
    enqueue_examples()
    server = None
    if dashboard:
        try:
            from duly.web.server import serve_in_thread

            server = serve_in_thread(app, port=port)
            print(f"dashboard: {server.url}/")
        except ImportError:
            print("(dashboard not installed: pip install 'duly[dashboard]')")
    worker = app.worker(concurrency=8, poll_interval=0.5, grace=5, app_path="duly.demo:app")

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, worker.stop)
        if seconds > 0:
            loop.call_later(seconds, worker.stop)
        await worker.run_async()

    asyncio.run(main())
    if server is not None:
        server.should_exit = True
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from duly.cli._common import STATE_STYLE

    table = Table(title="demo jobs", width=110)
    for name, width in (("id", 4), ("state", 10), ("task", 22), ("attempts", 8), ("progress", 8), ("result or last error", 50)):
        table.add_column(name, no_wrap=True, overflow="ellipsis", max_width=width)
    for job in reversed(app.jobs(limit=50)):
        progress = f"{job.progress_done}/{job.progress_total}" if job.progress_done is not None else ""
        outcome = job.last_error if job.state.value in ("failed", "retrying") else json.dumps(job.result)
        table.add_row(
            str(job.id), Text(job.state.value, style=STATE_STYLE.get(job.state.value, "")),
            job.task.removeprefix("demo."), f"{job.attempt}/{job.max_attempts}", progress, outcome or "",
        )  # fmt: skip
    Console(width=112).print(table)
    for t in app.triggers():
        print(f"trigger {t.name}: {t.spec.kind.value} {t.spec.spec}s, next fire {t.next_fire_at:%H:%M:%S}" if t.next_fire_at else t.name)
    print("see one job in full: duly jobs show <id> --url", url)
    return 0
