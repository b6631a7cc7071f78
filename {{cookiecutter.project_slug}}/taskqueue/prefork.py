"""Celery's prefork pool (CELERY_WORKER_POOL), where a pool process that exits, after
CELERY_WORKER_MAX_TASKS_PER_CHILD tasks or killed, is replaced at once."""

import time

from celery.concurrency import asynpool, prefork


class AsynPool(asynpool.AsynPool):
    # Seconds to wait for an exiting process to become reapable.
    REAP_WITHIN = 0.1

    def _event_process_exit(self, hub, proc):
        # Called once the process's sentinel pipe is closed, which the kernel does
        # just before the process can be reaped. Celery 5.7 then looks for exited
        # processes at once, finds this one still running, and replaces it only at
        # its next check, up to 5 s later, while a task may wait for a free process
        # (celery/celery#9588). Reap it first.
        deadline = time.monotonic() + self.REAP_WITHIN
        while proc.exitcode is None and time.monotonic() < deadline:
            time.sleep(0.001)
        super()._event_process_exit(hub, proc)


class TaskPool(prefork.TaskPool):
    Pool = AsynPool
