from django.apps import AppConfig
from kombu.transport import TRANSPORT_ALIASES


class TaskqueueConfig(AppConfig):
    name = "taskqueue"
    verbose_name = "Task queue"

    def ready(self):
        from celery.signals import task_postrun, task_prerun

        from .celery import close_old_database_connections

        # kombu picks a transport by the broker URL's scheme: in every process that
        # sets Django up, filesystem:// is the embedded broker. Named by its path, so
        # projects on Redis or RabbitMQ never import it.
        TRANSPORT_ALIASES["filesystem"] = "taskqueue.broker:Transport"
        task_prerun.connect(close_old_database_connections)
        task_postrun.connect(close_old_database_connections)
