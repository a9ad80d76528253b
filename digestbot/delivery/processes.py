"""Delivery stage, render processes: a pool forked from a fork server that imported the
render code once, whose processes die with the batch that started them."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import sys
import threading
from concurrent.futures import ProcessPoolExecutor
from multiprocessing.connection import Connection
from multiprocessing.context import BaseContext

from digestbot.settings import Settings


def render_pool(settings: Settings) -> ProcessPoolExecutor:
    """The render processes for one batch.

    Forked from a fork server where there is one (a clean process, started once, that has
    imported the render code): forking this process is unsafe beside its threads, and a
    spawned process spends most of a second importing the same modules, every batch.
    """
    chosen = context()
    if chosen is not SPAWN:
        start_fork_server()
    return RenderPool(settings.render_processes, chosen)


class RenderPool(ProcessPoolExecutor):
    """Render processes that die with this process, however it dies: each watches a pipe
    only this process writes to, which the kernel closes when it is gone (killed with -9, it
    cannot shut the pool down, and the render processes would wait for work forever and keep
    the fork server alive, since each holds its liveness pipe)."""

    def __init__(self, workers: int, context: BaseContext) -> None:
        self._alive_r, self._alive_w = context.Pipe(duplex=False)
        super().__init__(
            workers, mp_context=context, initializer=die_with, initargs=(self._alive_r,)
        )

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        super().shutdown(wait=wait, cancel_futures=cancel_futures)
        self._alive_w.close()
        self._alive_r.close()


def die_with(alive: Connection) -> None:
    """In each render process: exit once `alive` reads end of file (its writer is gone)."""
    threading.Thread(target=_watch, args=(alive,), name="digestbot-watch", daemon=True).start()


def _watch(alive: Connection) -> None:
    with contextlib.suppress(EOFError, OSError):
        alive.recv()  # nothing is ever sent: this returns only by raising at end of file
    os._exit(1)


def start_fork_server() -> None:
    """Start the fork server, unless it runs, importing its preloads from this process's
    sys.path. Python before 3.12.8 and 3.13.1 imports them from the working directory first
    (CPython gh-117378): `digestbot send-now` run in a checkout after `pip install .` would
    render with the checkout's `digestbot/` beside the installed code it sends with."""
    from multiprocessing import forkserver  # POSIX only

    wanted = {
        "PYTHONSAFEPATH": "1",  # no working directory at the head of sys.path
        "PYTHONPATH": os.pathsep.join(entry or os.getcwd() for entry in sys.path),
    }
    saved = {name: os.environ.get(name) for name in wanted}
    os.environ.update(wanted)
    try:
        forkserver.ensure_running()
    finally:
        for name, value in saved.items():
            if value is None:
                del os.environ[name]
            else:
                os.environ[name] = value


SPAWN = multiprocessing.get_context("spawn")


def context() -> BaseContext:
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return SPAWN
    server = multiprocessing.get_context("forkserver")
    # The command's own module too: each new process imports the main module again.
    server.set_forkserver_preload(["digestbot.delivery.pipeline", "digestbot.cli"])
    return server
