"""A tiny Django project for the Django peers (PEER: django-q2 or django-tasks-db).

One SQLite file (PEER_DB) with the generated project's SQLite options, so the database is
set up as ours is; each peer's settings as its docs give them for one machine.
"""

import os

PEER = os.environ["PEER"]
SECRET_KEY = "bench"
DEBUG = False
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ["PEER_DB"],
        "OPTIONS": {  # as the generated settings.py sets them for SQLite
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;",
        },
    }
}
INSTALLED_APPS = ["counter"] + {"django-q2": ["django_q"], "django-tasks-db": ["django_tasks_db"]}[
    PEER
]
# django-q2's ORM broker as its broker docs configure it, with 2 workers; save_limit 0:
# keep every result (the default, 250, deletes older ones before they are read back).
Q_CLUSTER = {
    "name": "bench",
    "orm": "default",
    "workers": 2,
    "timeout": 90,
    "retry": 120,
    "queue_limit": 50,
    "bulk": 10,
    "save_limit": 0,
}
TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": ["default"]}}
