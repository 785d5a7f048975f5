"""`fednode serve --workers N`: N server processes on one port, supervised by the parent.

Each worker is forked from the parent before the parent opens anything (no store, thread
or event loop exists yet) and builds its own application: its own store handles, audit
queue and budget connection. They share the port through `SO_REUSEPORT`, so the kernel
spreads connections over the workers' own accept queues (a shared listening socket let
one asyncio worker accept a whole burst of connections, up to its backlog, at one wake-up).
The parent keeps the port bound, not listening, so that it stays reserved while a worker
is being replaced.

What the workers share, they share through files that are already safe across processes:
the audit chain (`AuditLog` appends under `flock` and re-reads the head another process
wrote), the SQLite budget (`BEGIN IMMEDIATE` in WAL mode; or Redis), the reads catalog and
htsget secret (read-only while serving). The peer gRPC server runs in worker 0 only; a
replacement worker 0 starts it again.

Supervision (docs/decisions.md): a worker that dies is replaced in its slot; a slot whose
workers keep dying at start (`_MAX_FAST_DEATHS` in a row, each within `_FAST_DEATH_S` of
its start: a bad configuration, a port taken) stops everything and the parent exits 1.
SIGTERM or SIGINT to the parent is passed to every worker, which finishes its requests
(aiohttp's graceful shutdown) and closes its resources; the parent then exits 0. Each
worker asks the kernel for SIGTERM when the parent dies (`PR_SET_PDEATHSIG`), so a killed
parent leaves no orphans serving.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import socket
import sys
import time
from dataclasses import dataclass, field

from aiohttp import web

from node.config import Settings
from node.errors import NodeError
from node.logs import setup_logging

__all__ = ["WORKER_HEADER", "serve_workers"]

log = logging.getLogger("fednode.workers")

# Names the process that answered: operators see which worker a slow answer came from.
WORKER_HEADER = "X-Fednode-Worker"
_SIGNALS = {signal.SIGCHLD, signal.SIGTERM, signal.SIGINT}
_FAST_DEATH_S = 10.0
_MAX_FAST_DEATHS = 3
_STOP_GRACE_S = 15.0  # aiohttp's shutdown_timeout (5 s) plus closing the stores
_PR_SET_PDEATHSIG = 1


@dataclass
class _Slot:
    index: int
    pid: int = 0
    started: float = 0.0
    fast_deaths: int = 0


@dataclass
class _Supervisor:
    settings: Settings
    count: int
    reserved: socket.socket
    slots: list[_Slot] = field(default_factory=list)

    def run(self) -> int:
        signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
        self.slots = [_Slot(i) for i in range(self.count)]
        for slot in self.slots:
            self._spawn(slot)
        pids = ", ".join(str(s.pid) for s in self.slots)
        print(f"fednode: serving on {self._address()} with {self.count} worker(s) "
              f"(pids {pids}); SIGTERM stops them", file=sys.stderr, flush=True)
        while True:
            info = signal.sigwaitinfo(_SIGNALS)
            if info.si_signo != signal.SIGCHLD:
                return self._stop(0)
            for slot in self._reap():
                if not self._replace(slot):
                    return self._stop(1)

    def _address(self) -> str:
        host, port = self.reserved.getsockname()[:2]
        return f"http://{f'[{host}]' if ':' in host else host}:{port}"

    def _spawn(self, slot: _Slot) -> None:
        pid = os.fork()
        if pid == 0:  # the worker: never returns into the parent's code
            code = 1
            try:
                code = _worker(self.settings, self.reserved, slot.index)
            except BaseException:  # reported, then the process ends
                log.exception("worker failed", extra={"slot": slot.index})
            finally:
                os._exit(code)
        slot.pid, slot.started = pid, time.monotonic()

    def _reap(self) -> list[_Slot]:
        dead: list[_Slot] = []
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return dead
            if pid == 0:
                return dead
            for slot in self.slots:
                if slot.pid == pid:
                    log.warning("worker died", extra={"slot": slot.index, "pid": pid,
                                                      "status": _describe(status)})
                    slot.pid = 0
                    dead.append(slot)

    def _replace(self, slot: _Slot) -> bool:
        """Start a new worker in `slot`; False when the slot keeps dying at start."""
        fast = time.monotonic() - slot.started < _FAST_DEATH_S
        slot.fast_deaths = slot.fast_deaths + 1 if fast else 0
        if slot.fast_deaths >= _MAX_FAST_DEATHS:
            print(f"fednode: error: worker {slot.index} died {slot.fast_deaths} times at "
                  "start; stopping (see the log)", file=sys.stderr, flush=True)
            return False
        self._spawn(slot)
        log.info("worker replaced", extra={"slot": slot.index, "pid": slot.pid})
        return True

    def _stop(self, code: int) -> int:
        """SIGTERM to every worker, wait for them (SIGKILL past the grace period)."""
        live = {s.pid for s in self.slots if s.pid}
        for pid in live:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + _STOP_GRACE_S
        failed = False
        while live:
            if time.monotonic() > deadline:
                for pid in live:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                failed = True
                deadline = float("inf")
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                signal.sigtimedwait({signal.SIGCHLD}, 0.1)
                continue
            live.discard(pid)
            failed |= not _clean(status)
        self.reserved.close()
        return code or int(failed)


def _clean(status: int) -> bool:
    """Exited 0, or ended by the SIGTERM sent while it was still starting up."""
    if os.WIFSIGNALED(status):
        return os.WTERMSIG(status) == signal.SIGTERM
    return os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0


def _describe(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"killed by {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exit {os.waitstatus_to_exitcode(status)}"


def _reserve(host: str, port: int) -> socket.socket:
    """The port, bound with SO_REUSEPORT (never listening): workers bind it too."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise NodeError(f"cannot bind {host}:{port}: {exc.strerror}") from exc
    return sock


def _worker(settings: Settings, reserved: socket.socket, slot: int) -> int:
    """One worker's life: its own application on the shared port, until SIGTERM."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _SIGNALS)
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() == 1:  # the parent died before prctl took effect
        return 1
    from node.web.app import create_app
    from node.web.serve import NodeRunner, tune_gc

    host, port = reserved.getsockname()[:2]
    reserved.close()
    if slot != 0:  # one peer gRPC server, in worker 0
        settings = settings.model_copy(
            update={"peer": settings.peer.model_copy(update={"port": None})})
    app = create_app(settings)
    app.on_startup.append(tune_gc)
    app.on_response_prepare.append(_name_worker)

    async def run() -> None:
        runner = NodeRunner(app, handle_signals=True, access_log=None, shutdown_timeout=5.0)
        await runner.setup()
        try:
            await web.TCPSite(runner, host, port, reuse_port=True).start()
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()

    with contextlib.suppress(web.GracefulExit, KeyboardInterrupt):
        asyncio.run(run())
    return 0


async def _name_worker(request: web.Request, response: web.StreamResponse) -> None:
    del request
    response.headers[WORKER_HEADER] = str(os.getpid())


def serve_workers(settings: Settings, workers: int) -> int:
    """Serve with `workers` processes until SIGTERM; the exit status (see the docstring)."""
    if workers < 1:
        raise NodeError("--workers must be at least 1")
    setup_logging(settings.server.log_level)
    reserved = _reserve(settings.server.host, settings.server.port)
    return _Supervisor(settings, workers, reserved).run()
