"""procrastinate on PostgreSQL (PEER_DATABASE_URL): the `add` task and the adapter
bench/peer/client.py drives.

procrastinate keeps no results: a job's status is what can be read back ("succeeded").
The worker is `procrastinate --app=procrastinate_app.app worker --concurrency 2`.
"""

import asyncio
import os

from procrastinate import App, PsycopgConnector

URL = os.environ["PEER_DATABASE_URL"]
app = App(connector=PsycopgConnector(conninfo=URL))
STORES_RESULTS = False


@app.task(name="add")
def add(x, y):
    """The same task as the generated project's demoapp.tasks.add."""
    return x + y


def start():
    app.open()  # the sync connection pool the client's defer() and reads use


def send(x, y):
    return add.defer(x=x, y=y)


def read(job_id):
    jobs = app.job_manager.list_jobs(id=job_id)
    return True if jobs and jobs[0].status == "succeeded" else None


def reset():
    app.connector.get_sync_connector().execute_query("TRUNCATE procrastinate_jobs CASCADE")


def recover():
    """procrastinate's recipe for a worker that died: retry the jobs of workers whose
    heartbeat is older than 30 s (its docs run it as a periodic task)."""

    async def retry_stalled():
        # An app of its own: closing it does not close the one the client reads with.
        async with app.with_connector(PsycopgConnector(conninfo=URL)).open_async() as own:
            for job in await own.job_manager.get_stalled_jobs():
                await own.job_manager.retry_job(job)

    asyncio.run(retry_stalled())
