"""huey with SqliteHuey: the `add` task and the adapter bench/peer/client.py drives.

Queue and results in one SQLite file (PEER_DB), as SqliteHuey keeps them: WAL, huey's
defaults. The consumer is `huey_consumer huey_app.huey -w 2 -k thread` (bench/peers.py).
"""

import os
import time

from huey import SqliteHuey

huey = SqliteHuey("bench", filename=os.environ["PEER_DB"])


@huey.task()
def add(x, y):
    """The same task as the generated project's demoapp.tasks.add."""
    return x + y


@huey.task()
def nap():
    """The I/O-bound task: 50 ms asleep."""
    time.sleep(0.05)
    return True


def send(x, y):
    return add(x, y).id


def send_nap():
    return nap().id


def read(task_id):
    # preserve: read without deleting, so a result can be read again (by settle)
    return huey.result(task_id, preserve=True)


def stored():
    return huey.result_count()


def reset():
    huey.flush()
