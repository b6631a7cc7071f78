import os

from celery import Celery

from taskqueue.celery import RetryOnLostDatabaseTask, set_up_django
{%- if cookiecutter.use_json_logs == "y" %}
from taskqueue.logs import log_as_json
{%- endif %}
{%- if cookiecutter.use_prometheus == "y" %}
from taskqueue.metrics import measure_tasks
{%- endif %}
{%- if cookiecutter.use_opentelemetry == "y" %}
from taskqueue.tracing import trace_tasks
{%- endif %}

# Set the default Django settings module for the 'celery' program.
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "{{ cookiecutter.project_slug }}.settings")

# A task whose database connection was lost runs again on a new one.
app = Celery("{{ cookiecutter.project_slug }}", task_cls=RetryOnLostDatabaseTask)

# Read every CELERY_-prefixed setting from Django's settings, then set Django
# up, which some celery commands would not do.
app.config_from_object("django.conf:settings", namespace="CELERY")
app.on_after_configure.connect(set_up_django)

# Load tasks.py from every installed Django app.
app.autodiscover_tasks()
{%- if cookiecutter.use_json_logs == "y" %}

# Workers and beat log JSON lines too, each naming its task and the request that sent it.
log_as_json()
{%- endif %}
{%- if cookiecutter.use_prometheus == "y" %}

# Workers count their tasks for Prometheus, served with --metrics-port.
measure_tasks(app)
{%- endif %}
{%- if cookiecutter.use_opentelemetry == "y" %}

# Each pool process, and beat, traces its tasks (taskqueue/tracing.py).
trace_tasks()
{%- endif %}


@app.task(bind=True, ignore_result=True)
def debug_task(self):
    print(f"Request: {self.request!r}")
