"""Celery for this project, as the project template maintains it.

Everything that ties Celery to Django beyond Celery's own "First steps with
Django" lives here, each part named in settings.py or celery.py:

- broker.py: the embedded broker that ``filesystem://`` names (message files
  under .broker/, safe from crashes, woken by inotify), and redis_broker.py:
  kombu's Redis transport, for ``redis://``, with a fix that keeps a worker up
  when its Redis connection drops;
- results.py: the result backend, django-celery-results' TaskResult rows
  written in one statement per state change;
- task_backend.py: Django's own task API (``@task``) run on the Celery workers;
- celery.py: the class of every task, which retries one whose database
  connection was lost, and the workers' database connections;
- beat.py: beat's database scheduler, with a heartbeat for health checks
  (``manage.py checkbeat``), and admin.py: who may start periodic tasks;
- health.py: the web process's ``/health/`` view;
- logs.py, metrics.py, tracing.py, in a project generated with them: JSON
  logs, Prometheus metrics and OpenTelemetry traces (docs/observability.md).

You rarely need to open it: write tasks in your apps' tasks.py, and change
behaviour through the settings. Its tests, in tests/, check what each part
guarantees.
"""
