"""The single worker through which all model work passes, one job at a time.

One pipeline instance serves every visitor, and its sampler is not safe to enter twice at
once, so jobs run strictly in submission order on one thread. Each job carries a cancel
flag that its step callback reads (so Stop takes effect between denoising steps) and a
stream of progress events that the submitting thread can relay to its user.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Generic, TypeVar

import torch

from uvigu import Cancelled

logger = logging.getLogger(__name__)

T = TypeVar("T")


class StudioBusy(RuntimeError):
    """The queue is full; the message says so in words a visitor understands."""


class OutOfMemory(RuntimeError):
    """A job's model run ran out of memory (torch's ``OutOfMemoryError`` or Python's ``MemoryError``,
    its cause): a failure of the host's size, not of the visitor's input."""


@dataclass(frozen=True)
class ProgressEvent:
    """One finished denoising step of one stage of a job (``index`` is 0-based)."""

    stage: str
    index: int
    num_steps: int
    text: str | None = None


_DONE = object()


class Job(Generic[T]):
    """A unit of model work; ``result()`` blocks until it has run (or was cancelled)."""

    def __init__(self, owner: str, work: Callable[[Job[T]], T]) -> None:
        self.owner = owner
        self._work = work
        self._cancel = threading.Event()
        self._done = threading.Event()
        self._events: queue.Queue[object] = queue.Queue()
        self._result: T | None = None
        self._error: BaseException | None = None
        self.submitted = time.monotonic()
        self.started: float | None = None
        self.finished: float | None = None

    # -- the submitting side ---------------------------------------------------------------

    def cancel(self) -> None:
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def events(self) -> Iterator[ProgressEvent]:
        """Progress events as they happen, ending when the job ends."""
        while True:
            event = self._events.get()
            if event is _DONE:
                self._events.put(_DONE)  # a second reader also ends
                return
            assert isinstance(event, ProgressEvent)
            yield event

    def result(self, timeout: float | None = None) -> T:
        """The work's return value; re-raises its exception (``Cancelled`` when stopped)."""
        if not self._done.wait(timeout):
            raise TimeoutError("the job did not finish in time")
        if self._error is not None:
            raise self._error
        return self._result  # type: ignore[return-value]

    # -- the worker side -------------------------------------------------------------------

    def report(self, event: ProgressEvent) -> None:
        """Publish progress and stop here if the job was cancelled (raises ``Cancelled``)."""
        self._events.put(event)
        self.raise_if_cancelled()

    def raise_if_cancelled(self) -> None:
        if self._cancel.is_set():
            raise Cancelled("stopped by the user")

    @property
    def waited_s(self) -> float:
        return (self.started or time.monotonic()) - self.submitted

    def _run(self) -> None:
        self.started = time.monotonic()
        try:
            self.raise_if_cancelled()
            self._result = self._work(self)
        except BaseException as error:  # handed to the submitter, never kills the worker
            self._error = error
            if isinstance(error, (torch.OutOfMemoryError, MemoryError)):
                self._error = OutOfMemory(str(error))
                self._error.__cause__ = error
        finally:
            self.finished = time.monotonic()
            self._events.put(_DONE)
            self._done.set()


@contextmanager
def one_torch_thread() -> Iterator[None]:
    """Torch work inside runs on the calling thread alone (``torch.set_num_threads(1)``, put back
    after). Load the studio's model inside it: the model then runs on the queue's worker thread,
    and torch's OpenMP thread pools belong to the thread that calls — a pool the loading thread
    leaves behind counts against the cores, so the worker's parallel regions wait on throttled,
    sleeping threads and every take runs slower (most of all in bfloat16, whose element-wise
    casts are many short parallel regions). With no pool of its own on the loading thread, the
    worker's takes run as fast as the same calls on the main thread of a script."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


class JobQueue:
    """A bounded FIFO of jobs run by one daemon thread."""

    def __init__(self, max_size: int, max_per_owner: int | None = None) -> None:
        self.max_size = max_size
        self.max_per_owner = max_per_owner or max_size
        self._pending: queue.Queue[Job | None] = queue.Queue()
        self._lock = threading.Lock()
        self._active: list[Job] = []  # queued or running, in order
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name="uvigu-studio-worker", daemon=True)
        self._thread.start()

    def submit(self, owner: str, work: Callable[[Job[T]], T]) -> Job[T]:
        """Queue ``work(job)``; raises ``StudioBusy`` when the queue or the owner's share is full."""
        job: Job[T] = Job(owner, work)
        with self._lock:
            if self._closed:
                raise StudioBusy("The studio is shutting down; try again in a moment.")
            if len(self._active) >= self.max_size:
                raise StudioBusy(
                    f"The studio is busy ({len(self._active)} jobs waiting); try again in a minute."
                )
            if sum(j.owner == owner for j in self._active) >= self.max_per_owner:
                raise StudioBusy(
                    f"You already have {self.max_per_owner} unfinished job(s); let them finish first."
                )
            self._active.append(job)
        self._pending.put(job)
        return job

    def cancel(self, owner: str) -> int:
        """Cancel every queued or running job of ``owner``; returns how many."""
        with self._lock:
            jobs = [job for job in self._active if job.owner == owner]
        for job in jobs:
            job.cancel()
        return len(jobs)

    def unfinished(self, owner: str) -> int:
        """How many of ``owner``'s jobs are queued or running."""
        with self._lock:
            return sum(job.owner == owner for job in self._active)

    def position(self, job: Job) -> int:
        """How many jobs run before this one (0 when it is running or done)."""
        with self._lock:
            return self._active.index(job) if job in self._active else 0

    def __len__(self) -> int:
        with self._lock:
            return len(self._active)

    def close(self, timeout: float | None = None) -> None:
        """Cancel what is waiting, let the running job stop, and end the worker."""
        with self._lock:
            self._closed = True
            jobs = list(self._active)
        for job in jobs:
            job.cancel()
        self._pending.put(None)
        self._thread.join(timeout)

    def _loop(self) -> None:
        while True:
            job = self._pending.get()
            if job is None:
                return
            try:
                job._run()
            finally:
                with self._lock:
                    self._active.remove(job)
            if job._error is not None and not isinstance(job._error, (Cancelled, ValueError)):
                logger.error("studio job failed", exc_info=job._error)
