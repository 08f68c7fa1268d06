"""Gunicorn server hooks that close a :func:`~responsestore.wsgi.make_app` app when its worker stops.

Use this module as (or import its hooks into) gunicorn's configuration::

    gunicorn -c python:responsestore.gunicorn --worker-class gthread --threads 8 wsgi:application

or, in a ``gunicorn.conf.py`` of your own::

    from responsestore.gunicorn import post_worker_init, worker_exit

A worker that stops (SIGTERM, gunicorn's reload on SIGHUP, ``--max-requests``, the master stopping) then ends
every response it runs: they may finish within the app's ``stop_grace``, the rest end ``failed`` ("the server is
shutting down"), and streams and waiting clients get that ending. Without the hooks, a stopping worker would leave
its running responses ``in_progress`` until their lease runs out. Apps other than a ``ResponsesApp`` (anything
without a ``close`` method) are left alone.
"""

from __future__ import annotations

import signal
import threading
from typing import Any

try:
    import gunicorn  # noqa: F401 - these hooks are gunicorn's configuration: say how to install it when it is missing
except ImportError as exc:  # pragma: no cover - tested in a subprocess without gunicorn
    raise ImportError(
        "responsestore.gunicorn holds gunicorn's server hooks, and gunicorn is not installed: "
        "pip install 'responsestore[gunicorn]'"
    ) from exc

__all__ = ["post_worker_init", "worker_exit"]


def post_worker_init(worker: Any) -> None:
    """Gunicorn's hook, in the worker once its app is loaded: SIGTERM starts closing the app at once.

    Gunicorn's own SIGTERM handling still runs: the worker stops accepting and waits (up to ``graceful_timeout``)
    for the requests it serves, streams included; closing the app at once ends those within ``stop_grace``.
    """
    close = getattr(getattr(worker, "wsgi", None), "close", None)
    if close is None:
        return
    previous = signal.getsignal(signal.SIGTERM)

    def on_sigterm(signum: int, frame: Any) -> None:
        threading.Thread(target=close, name="responsestore-stop", daemon=True).start()
        if callable(previous):
            previous(signum, frame)

    signal.signal(signal.SIGTERM, on_sigterm)
    signal.siginterrupt(signal.SIGTERM, False)  # noqa: FBT003 - as gunicorn sets it: requests in progress go on


def worker_exit(server: Any, worker: Any) -> None:
    """Gunicorn's hook, in the worker as it exits: close the app (waits for its responses to end)."""
    close = getattr(getattr(worker, "wsgi", None), "close", None)  # gunicorn's master calls it too: no app there
    if close is not None:
        close()
