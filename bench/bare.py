"""Baseline (a): Celery alone, Redis broker and Redis results, every other setting Celery's default.

No Django: the ceiling of this machine for the benchmark's task. Celery reads the broker and
the result backend from CELERY_BROKER_URL and CELERY_RESULT_BACKEND in the environment.
The worker is `celery -A bare worker` with bench/ on PYTHONPATH.

The limit row (a'): the same with CELERY_RESULT_BACKEND=bare:UpsertBackend, results in the
PostgreSQL database BARE_DATABASE_URL names, one hand-written upsert per state change,
STARTED included: what the database allows, next to the generated project's backend.
"""

import json
import os
from functools import cached_property

from celery import Celery, states
from celery.backends.base import BaseDictBackend

app = Celery("bare")
if os.environ.get("BARE_DATABASE_URL"):
    app.conf.task_track_started = True


class UpsertBackend(BaseDictBackend):
    @cached_property
    def database(self):
        import psycopg

        connection = psycopg.connect(os.environ["BARE_DATABASE_URL"], autocommit=True)
        connection.execute(
            "CREATE TABLE IF NOT EXISTS bare_result (task_id varchar(191) PRIMARY KEY, "
            "status varchar(50) NOT NULL, meta text NOT NULL, date_done timestamptz NOT NULL)"
        )
        return connection

    def _store_result(self, task_id, result, state, traceback=None, request=None, **kwargs):
        meta = self._get_result_meta(result, state, traceback, request, format_date=True)
        self.database.execute(
            "INSERT INTO bare_result VALUES (%s, %s, %s, now()) ON CONFLICT (task_id) DO UPDATE "
            "SET status = excluded.status, meta = excluded.meta, date_done = excluded.date_done",
            (task_id, state, json.dumps(meta)),
        )
        return result

    def _get_task_meta_for(self, task_id):
        row = self.database.execute(
            "SELECT meta FROM bare_result WHERE task_id = %s", (task_id,)
        ).fetchone()
        return json.loads(row[0]) if row else {"status": states.PENDING, "result": None}


@app.task
def add(x, y):
    """The same task as the generated project's demoapp.tasks.add."""
    return x + y
