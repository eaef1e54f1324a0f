"""The pooled engine every job body runs on: each item's Convai call in a thread pool, its
result handled (and stored) in the worker's own thread, in completion order, between the job's
stop checks.

How it works: the worker's thread keeps the database; a pool of CONVAI_JOB_CONCURRENCY threads
makes the Convai calls. Each pool thread talks through its own keep-alive session (the client's
sessions are per thread). Reads are retried by the client (429 with a short Retry-After, 5xx and
connection errors, with backoff, CONVAI_JOB_READ_RETRIES times) and by `patiently` once more for
a longer Retry-After, up to CONVAI_JOB_MAX_RETRY_WAIT seconds. At most twice the concurrency is
in flight, so a cancel stops within a second and memory stays flat.

Nothing here knows what an item is: the job body gives the calls and handles the results.
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, TypeVar

import requests
from django.conf import settings
from django.db import connection, transaction

from convai.client import MAX_RETRY_WAIT_SECONDS, ConvaiClient, thread_session
from convai.errors import ConvaiRateLimitError
from keys.models import ApiKey
from keys.services import client_for
from teams.models import Membership

from . import running
from .models import JobItem

T = TypeVar("T")


def job_client(api_key: ApiKey, actor: Membership) -> ConvaiClient:
    """A client for a job: the key opened once (in the worker's thread), reads retried more
    patiently than a page would. Its session is whichever thread calls it: each pool thread
    has its own."""
    client = client_for(api_key, actor=actor.user)
    client.read_retries = settings.CONVAI_JOB_READ_RETRIES
    return client


def wait_out(seconds: float) -> None:
    time.sleep(seconds)


def patiently(call: Callable[[], T]) -> T:
    """`call()` (a Convai read), waiting out a 429's Retry-After longer than the client would
    inside a page (up to CONVAI_JOB_MAX_RETRY_WAIT seconds in all)."""
    waited = 0.0
    while True:
        try:
            return call()
        except ConvaiRateLimitError as error:
            pause = error.retry_after
            if (
                pause is None
                or pause <= MAX_RETRY_WAIT_SECONDS  # short ones: the client's retries had them
                or waited + pause > settings.CONVAI_JOB_MAX_RETRY_WAIT
            ):
                raise
            wait_out(pause)
            waited += pause


@dataclass
class Fetched:
    """What a pool thread brings back for one item."""

    value: Any = None
    error: BaseException | None = None
    started: float = field(default_factory=time.perf_counter)


Work = Iterable[tuple[JobItem, Callable[[], Any]]]
Handle = Callable[[JobItem, Fetched], None]


def run_pooled(
    run: running.JobRun, work: Work, handle: Handle, *, uses_database: bool = False
) -> None:
    """Run each item's Convai call in the pool and `handle` its result in this thread, in
    completion order, while asking the job whether to stop.

    A call runs in the audit context of the job (origin "task <kind> #<id>"). With
    `uses_database` the call may also write through the services (a bundle's create or update:
    each commits on its own, never holding a transaction across its Convai call); the pool
    thread's database connection is closed after each item."""
    pool, concurrency = _executor(run, uses_database)
    sessions: set[requests.Session] = set()
    call = _item_call(sessions, close_connection=uses_database and not _in_this_thread(pool))
    pending: Iterator[tuple[JobItem, Callable[[], Any]]] = iter(work)
    exhausted = False
    in_flight: dict[Future[Fetched], JobItem] = {}
    try:
        while True:
            while not exhausted and len(in_flight) < 2 * concurrency and not run.should_stop():
                try:
                    item, fetch = next(pending)
                except StopIteration:
                    exhausted = True
                    break
                # A copy of this thread's context: the audit origin reaches the pool thread.
                in_flight[pool.submit(contextvars.copy_context().run, call, fetch)] = item
            if not in_flight:
                break
            finished, _ = wait(in_flight, timeout=1.0, return_when=FIRST_COMPLETED)
            _store_batch(run, [(in_flight.pop(f), f) for f in finished], handle)
            if run.should_stop():
                exhausted = True  # take no more; those in flight are still stored
                if run.lost:
                    for future in list(in_flight):
                        future.cancel()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        for session in sessions:
            session.close()


def _item_call(
    sessions: set[requests.Session], *, close_connection: bool
) -> Callable[[Callable[[], Any]], Fetched]:
    """What a pool thread runs for one item: the call, its outcome caught as a Fetched."""

    def call(fetch: Callable[[], Any]) -> Fetched:
        sessions.add(thread_session())
        result = Fetched()
        try:
            result.value = fetch()
        except Exception as error:  # handled per item by the caller
            result.error = error
        finally:
            if close_connection:
                connection.close()
        return result

    return call


def _store_batch(
    run: running.JobRun, finished: list[tuple[JobItem, Future[Fetched]]], handle: Handle
) -> None:
    """The results at hand are stored in one transaction (one commit and one update of the
    job's totals, not one per item); each item keeps its own savepoint, so one that fails
    leaves the others. The batch commits only if this run still owns the job."""
    try:
        with transaction.atomic():
            for item, future in finished:
                if not run.lost:
                    handle(item, future.result())
            run.flush()
    except running.LostJob:
        run.discard()
    except BaseException:
        run.discard()
        raise


def _executor(
    run: running.JobRun, uses_database: bool
) -> tuple[ThreadPoolExecutor | _InThisThread, int]:
    if uses_database and connection.vendor == "sqlite":
        # SQLite has one writer at a time: writing items are done here, one after another.
        return _InThisThread(), 1
    concurrency = max(1, settings.CONVAI_JOB_CONCURRENCY)
    return ThreadPoolExecutor(concurrency, thread_name_prefix=f"job-{run.job.pk}"), concurrency


def _in_this_thread(pool: ThreadPoolExecutor | _InThisThread) -> bool:
    return isinstance(pool, _InThisThread)


class _InThisThread:
    """An executor that runs each call at once in the calling thread (run_pooled on SQLite)."""

    def submit(self, fn: Callable[..., Fetched], *args: Any) -> Future[Fetched]:
        future: Future[Fetched] = Future()
        future.set_result(fn(*args))
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        return None
