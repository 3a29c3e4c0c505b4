"""The web dashboard, its JSON API and the Prometheus endpoint (the ``dashboard`` extra).

    from duly.web import create_app, serve_in_thread
    server = serve_in_thread(app, port=8080)     # a thread; server.should_exit = True ends it

``duly dashboard`` serves it from the command line. See docs/dashboard.md.
"""

from duly.web.app import create_app
from duly.web.server import BindRefused, check_bind, serve, serve_in_thread

__all__ = ["BindRefused", "check_bind", "create_app", "serve", "serve_in_thread"]
