import warnings

from celery.exceptions import CPendingDeprecationWarning
from django.apps import AppConfig
from kombu.transport import TRANSPORT_ALIASES


class TaskqueueConfig(AppConfig):
    name = "taskqueue"
    verbose_name = "Task queue"

    def ready(self):
        from celery.signals import task_postrun, task_prerun

        from .celery import close_old_database_connections

        # kombu picks a transport by the broker URL's scheme: in every process that
        # sets Django up, filesystem:// is the embedded broker and redis:// kombu's
        # with a fix (redis_broker.py). Named by their paths, so a project imports
        # only the one it uses.
        TRANSPORT_ALIASES["filesystem"] = "taskqueue.broker:Transport"
        TRANSPORT_ALIASES["redis"] = TRANSPORT_ALIASES["rediss"] = (
            "taskqueue.redis_broker:Transport"
        )
        # Celery warns at each lost broker connection that it will cancel running
        # late-ack tasks by default in 6.0; settings.py says why this project does not.
        warnings.filterwarnings(
            "ignore", r"\s*In Celery 5\.1 we introduced", CPendingDeprecationWarning
        )
        task_prerun.connect(close_old_database_connections)
        task_postrun.connect(close_old_database_connections)
