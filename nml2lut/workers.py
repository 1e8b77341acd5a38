"""workers: run batch tasks in isolated worker processes, on this machine or on a dask.distributed cluster.

A task is a picklable object with ``run()``, returning its outcome, and
``failure(error)``, giving the outcome of a task that could not finish.
Each task runs in a worker process with a memory cap (``RLIMIT_AS``) and a
time limit: a ``SIGALRM`` inside the worker first, then, if the worker does
not answer `GRACE` seconds later, the worker is killed.  A worker that dies
(killed, out of memory, crashed) costs only the task it was running: the
pool is rebuilt, the tasks that were running beside it are run again one at
a time, and a task that kills its worker alone is recorded as a
``WorkerCrashError``.  The batch always goes on.

Locally the workers are a `concurrent.futures.ProcessPoolExecutor`
(``forkserver`` start method, nml2lut preloaded).  With a dask scheduler
each dask worker thread keeps a helper subprocess of its own (dask's worker
processes are daemons and may not start multiprocessing children), fed one
task at a time over a pipe, with the same limits.
"""

from __future__ import annotations

import atexit
import collections
import concurrent.futures as cf
import contextlib
import importlib.machinery
import logging
import multiprocessing
import os
import pickle
import selectors
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from .report import describe_error, error

__all__ = ["run_tasks", "execute", "DEFAULT_TIMEOUT", "DEFAULT_MEMORY", "GRACE"]

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 120.0
"""Seconds one file may take (``--timeout``)."""
DEFAULT_MEMORY = 4 * 1024**3
"""Address-space cap of a worker process in bytes (``--memory``)."""
GRACE = 15.0
"""Seconds past the timeout before a worker that has not answered is killed."""


class Deadline(BaseException):
    """Raised inside a worker when its task runs out of time.

    A BaseException, so that ``except Exception`` in the code it interrupts
    does not swallow it.
    """


def _on_alarm(signum, frame):
    raise Deadline


def _limit_memory(limit: int | None) -> None:
    import resource

    if limit:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _init_worker(memory: int | None) -> None:
    # The parent decides what an interrupt stops; workers are told by it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _limit_memory(memory)


def timeout_error(timeout: float) -> dict:
    return error("TimeoutError", f"took longer than the time limit of {timeout:g} s; stopped", "timeout")


def crash_error(detail: str) -> dict:
    return error("WorkerCrashError", f"the worker process died while working on this file ({detail})", "crash")


def execute(task: Any, timeout: float | None) -> Any:
    """Run ``task`` here, with a soft time limit; never raises for the task's own failures."""
    alarm = bool(timeout) and threading.current_thread() is threading.main_thread()
    if alarm:
        signal.signal(signal.SIGALRM, _on_alarm)
        signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        return task.run()
    except Deadline:
        return task.failure(timeout_error(timeout))
    except Exception as err:  # a task reports its own failures; this is the last resort
        return task.failure(describe_error(err))
    finally:
        if alarm:
            signal.setitimer(signal.ITIMER_REAL, 0)


# ---------------------------------------------------------------- local process pool
def _context():
    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        # Workers fork from a server that has imported nml2lut (and Brian2) once.
        context.set_forkserver_preload(["nml2lut.batch"])
        return context
    return multiprocessing.get_context("spawn")


@contextlib.contextmanager
def _main_not_rerun():
    """Start workers without running the ``__main__`` script again in them.

    With the forkserver and spawn start methods, multiprocessing imports the
    parent's main script in every worker, so a script without an ``if
    __name__ == "__main__":`` guard would start a batch in each.  Workers
    need nothing from ``__main__`` (tasks are nml2lut classes); giving it a
    module spec named ``__main__`` makes multiprocessing skip that import.
    """
    main = sys.modules.get("__main__")
    if main is None or getattr(main, "__spec__", None) is not None:
        yield
        return
    main.__spec__ = importlib.machinery.ModuleSpec("__main__", None)
    try:
        yield
    finally:
        main.__spec__ = None


def _stop(pool: cf.ProcessPoolExecutor) -> None:
    """Kill every worker of ``pool`` and let it go."""
    processes = list(getattr(pool, "_processes", {}).values())
    for process in processes:
        try:
            process.kill()
        except (OSError, AttributeError, ValueError):
            pass
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        process.join(timeout=5)


class _Local:
    def __init__(self, jobs: int, timeout: float | None, memory: int | None):
        self.jobs, self.timeout, self.memory = jobs, timeout, memory
        self.pool: cf.ProcessPoolExecutor | None = None
        self.pending: collections.deque = collections.deque()
        self.solo: collections.deque = collections.deque()  # suspects of a crash: run one at a time
        self.running: dict[cf.Future, tuple[Any, float, bool]] = {}

    def _submit(self, task: Any, alone: bool) -> None:
        if self.pool is None:
            self.pool = cf.ProcessPoolExecutor(
                self.jobs, mp_context=_context(), initializer=_init_worker, initargs=(self.memory,)
            )
        deadline = time.monotonic() + self.timeout + GRACE if self.timeout else float("inf")
        with _main_not_rerun():  # workers start on submit
            future = self.pool.submit(execute, task, self.timeout)
        self.running[future] = (task, deadline, alone)

    def _fill(self) -> None:
        if self.solo:
            if not self.running:
                self._submit(self.solo.popleft(), True)
            return
        while self.pending and len(self.running) < self.jobs:
            self._submit(self.pending.popleft(), False)

    def _restart(self, requeue: collections.deque) -> None:
        """Stop the pool; tasks still running go to ``requeue``."""
        if self.pool is not None:
            _stop(self.pool)
            self.pool = None
        requeue.extend(task for task, _, _ in self.running.values())
        self.running.clear()

    def run(self, tasks: Iterable[Any], done: Callable[[Any, Any], Iterable[Any]]) -> None:
        self.pending.extend(tasks)
        try:
            while self.pending or self.solo or self.running:
                self._fill()
                self._step(done)
        finally:
            if self.pool is not None:
                _stop(self.pool) if self.running else self.pool.shutdown(wait=True)
                self.pool = None

    def _step(self, done: Callable[[Any, Any], Iterable[Any]]) -> None:
        wait = max(0.0, min(deadline for _, deadline, _ in self.running.values()) - time.monotonic())
        finished, _ = cf.wait(list(self.running), timeout=min(wait, 3600.0), return_when=cf.FIRST_COMPLETED)
        broken = False
        for future in finished:
            task, _, alone = self.running.pop(future)
            try:
                outcome = future.result()
            except BrokenProcessPool:
                broken = True
                if not alone:
                    self.solo.append(task)
                    continue
                outcome = task.failure(crash_error("killed by a signal or out of memory"))
            except Exception as err:  # e.g. an outcome that could not be sent back
                outcome = task.failure(describe_error(err))
            self.pending.extend(done(task, outcome))
        if broken:
            log.info("a worker process died; rebuilding the pool")
            self._restart(self.solo)
            return
        now = time.monotonic()
        expired = [f for f, (_, deadline, _) in self.running.items() if deadline <= now]
        if expired:
            for future in expired:
                task, _, _ = self.running.pop(future)
                self.pending.extend(done(task, task.failure(timeout_error(self.timeout))))
            log.info("a worker did not answer within the time limit; rebuilding the pool")
            self._restart(self.pending)


# ---------------------------------------------------------------- dask.distributed
_HELPER = "import nml2lut.workers as w; w.helper_main()"


def helper_main() -> None:
    """The loop of a helper subprocess: read a pickled (task, timeout), write back the outcome."""
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # anything printed goes to stderr, not into the answers
    _init_worker(int(sys.argv[1]) if len(sys.argv) > 1 and sys.argv[1] != "0" else None)
    source = sys.stdin.buffer
    while True:
        header = source.read(8)
        if len(header) < 8:
            return
        task, timeout = pickle.loads(source.read(int.from_bytes(header, "big")))
        data = pickle.dumps(execute(task, timeout))
        out.write(len(data).to_bytes(8, "big") + data)
        out.flush()


class _Helper:
    """A helper subprocess that runs tasks one at a time; killed on a timeout and started again when needed."""

    def __init__(self, memory: int | None):
        self.memory = memory
        self.process: subprocess.Popen | None = None
        with _helpers_lock:
            _all_helpers.append(self)

    def close(self) -> None:
        """End the subprocess (it leaves its loop when its input closes)."""
        process, self.process = self.process, None
        if process is None:
            return
        process.stdin.close()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        process.stdout.close()

    def _start(self) -> subprocess.Popen:
        if self.process is None or self.process.poll() is not None:
            command = [sys.executable, "-c", _HELPER, str(self.memory or 0)]
            self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        return self.process

    def _read(self, count: int, deadline: float) -> bytes | None:
        chunks, fd = [], self.process.stdout.fileno()
        with selectors.DefaultSelector() as selector:
            selector.register(fd, selectors.EVENT_READ)
            while count > 0:
                if not selector.select(timeout=max(0.0, min(deadline - time.monotonic(), 3600.0))):
                    if time.monotonic() >= deadline:
                        return None
                    continue
                chunk = os.read(fd, min(count, 1 << 20))
                if not chunk:
                    raise EOFError
                chunks.append(chunk)
                count -= len(chunk)
        return b"".join(chunks)

    def _discard(self, process: subprocess.Popen) -> None:
        for pipe in (process.stdin, process.stdout):
            try:
                pipe.close()
            except OSError:
                pass
        self.process = None

    def run(self, task: Any, timeout: float | None) -> Any:
        process = self._start()
        deadline = time.monotonic() + timeout + GRACE if timeout else float("inf")
        try:
            payload = pickle.dumps((task, timeout))
            process.stdin.write(len(payload).to_bytes(8, "big") + payload)
            process.stdin.flush()
            header = self._read(8, deadline)
            data = None if header is None else self._read(int.from_bytes(header, "big"), deadline)
        except (EOFError, OSError):
            code = process.wait()
            self._discard(process)
            return task.failure(crash_error(f"exit status {code}"))
        if data is None:
            process.kill()
            process.wait()
            self._discard(process)
            return task.failure(timeout_error(timeout))
        return pickle.loads(data)


_helpers = threading.local()
_helpers_lock = threading.Lock()
_all_helpers: list[_Helper] = []


@atexit.register
def close_helpers() -> None:
    """End every helper subprocess of this process (run at exit)."""
    with _helpers_lock:
        helpers = list(_all_helpers)
        _all_helpers.clear()
    for helper in helpers:
        helper.close()


def run_in_helper(task: Any, timeout: float | None, memory: int | None) -> Any:
    """Run ``task`` in this thread's helper subprocess (the function dask workers call)."""
    helper = getattr(_helpers, "helper", None)
    if helper is None or helper.memory != memory:
        helper = _helpers.helper = _Helper(memory)
    return helper.run(task, timeout)


def _run_dask(scheduler: Any, tasks, done, timeout, memory) -> None:
    try:
        from distributed import Client, as_completed
    except ImportError as err:
        raise RuntimeError("--scheduler needs dask.distributed: pip install 'nml2lut[dask]'") from err
    client = scheduler if isinstance(scheduler, Client) else Client(scheduler)
    try:
        futures = {}

        def submit(task):
            future = client.submit(run_in_helper, task, timeout, memory, pure=False)
            futures[future] = task
            return future

        queue = as_completed([submit(task) for task in tasks])
        for future in queue:
            task = futures.pop(future)
            try:
                outcome = future.result()
            except Exception as err:  # the dask worker itself died (KilledWorker) or the task was lost
                outcome = task.failure(crash_error(f"{type(err).__name__}: {err}"))
            for extra in done(task, outcome):
                queue.add(submit(extra))
    finally:
        if client is not scheduler:
            client.close()


def run_tasks(
    tasks: Iterable[Any],
    done: Callable[[Any, Any], Iterable[Any]],
    *,
    jobs: int = 1,
    timeout: float | None = DEFAULT_TIMEOUT,
    memory: int | None = DEFAULT_MEMORY,
    scheduler: Any = None,
) -> None:
    """Run every task in a worker process; call ``done(task, outcome)`` in this process as each finishes.

    ``done`` may return further tasks, which are run too.

    Parameters
    ----------
    tasks : iterable
        Objects with ``run()`` and ``failure(error)``; picklable.
    done : callable
        Called once per task, in completion order, in the calling thread.
    jobs : int
        Worker processes (ignored with ``scheduler``).
    timeout : float or None
        Seconds a task may take; None for no limit.
    memory : int or None
        Address-space cap of each worker in bytes; None for no cap.
    scheduler : str or distributed.Client, optional
        A dask.distributed scheduler address (or client): run there instead.
    """
    if jobs < 1:
        raise ValueError(f"jobs must be at least 1, got {jobs}")
    if scheduler is not None:
        _run_dask(scheduler, list(tasks), done, timeout, memory)
    else:
        _Local(jobs, timeout, memory).run(tasks, done)
