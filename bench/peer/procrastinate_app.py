"""procrastinate on PostgreSQL (PEER_DATABASE_URL): the tasks and the adapter
bench/peer/client.py drives.

procrastinate keeps no results: a job's status is what can be read back ("succeeded").
The worker is `procrastinate --app=procrastinate_app.app worker --concurrency 2`.
"""

import asyncio
import os
import threading
import time

import psycopg
from procrastinate import App, PsycopgConnector

URL = os.environ["PEER_DATABASE_URL"]
app = App(connector=PsycopgConnector(conninfo=URL))
STORES_RESULTS = False
connections = threading.local()  # the counter's, one per worker thread


@app.task(name="add")
def add(x, y):
    """The same task as the generated project's demoapp.tasks.add."""
    return x + y


@app.task(name="nap")
def nap():
    """The I/O-bound task: 50 ms asleep."""
    time.sleep(0.05)
    return True


@app.task(name="increment_counter")
def increment_counter(name):
    """demoapp.tasks.increment_counter in SQL: read the row locked until the transaction
    ends, write it back plus one. Each worker thread (sync tasks run in threads) keeps its
    own connection."""
    if not hasattr(connections, "own"):
        connections.own = psycopg.connect(URL, autocommit=True)
    execute = connections.own.execute
    with connections.own.transaction():
        execute("INSERT INTO counter VALUES (%s, 0) ON CONFLICT DO NOTHING", (name,))
        query = "SELECT value FROM counter WHERE name = %s FOR UPDATE"
        (count,) = execute(query, (name,)).fetchone()
        execute("UPDATE counter SET value = %s WHERE name = %s", (count + 1, name))
    return count + 1


def start():
    app.open()  # the sync connection pool the client's defer() and reads use
    with psycopg.connect(URL, autocommit=True) as connection:
        connection.execute("CREATE TABLE IF NOT EXISTS counter (name text PRIMARY KEY, value int)")


def send(x, y):
    return add.defer(x=x, y=y)


def send_counter(name):
    return increment_counter.defer(name=name)


def send_nap():
    return nap.defer()


def read(job_id):
    jobs = app.job_manager.list_jobs(id=job_id)
    return True if jobs and jobs[0].status == "succeeded" else None


def value(name):
    with psycopg.connect(URL) as connection:
        query = "SELECT value FROM counter WHERE name = %s"
        return connection.execute(query, (name,)).fetchone()[0]


def stored():
    query = "SELECT count(*) AS n FROM procrastinate_jobs WHERE status = 'succeeded'"
    return app.connector.get_sync_connector().execute_query_one(query)["n"]


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
