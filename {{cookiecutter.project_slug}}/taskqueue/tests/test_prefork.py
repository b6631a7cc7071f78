"""The generated prefork pool (taskqueue/prefork.py)."""

import os
import time

import billiard
import pytest
from billiard.connection import wait
from celery import current_app as celery_app
from celery.utils.imports import symbol_by_name

from taskqueue.prefork import AsynPool


def close_sentinel_then_exit(pipes):
    """In a pool process: close the pipe whose closing tells the pool it exited, as the
    kernel does on exit, then take a moment to exit."""
    os.close(pipes[-1][1])
    time.sleep(0.005)


# The child only closes a pipe and sleeps, which is safe beside the test worker's threads.
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_the_pool_replaces_a_process_as_soon_as_it_exits(monkeypatch):
    # The pool hears of an exit when the process's sentinel pipe closes, just before
    # the process can be reaped, and then looks for exited processes to replace.
    pipes = []
    monkeypatch.setattr(os, "pipe", lambda pipe=os.pipe: pipes.append(pipe()) or pipes[-1])
    pool = AsynPool.__new__(AsynPool)  # only its exit handler, on real processes
    pool.REAP_WITHIN = 10
    pool._untrack_child_process = lambda proc, hub: None
    pool.maintain_pool = lambda: exit_codes.append(process.exitcode)
    exit_codes = []
    process = billiard.Process(target=close_sentinel_then_exit, args=(pipes,))
    process.start()
    wait([process.sentinel])
    pool._event_process_exit(None, process)
    assert exit_codes == [0]
    assert symbol_by_name(celery_app.conf.worker_pool).Pool is AsynPool
