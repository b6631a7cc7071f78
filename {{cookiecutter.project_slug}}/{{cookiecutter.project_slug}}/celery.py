import os

from celery import Celery

# Set the default Django settings module for the 'celery' program.
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "{{ cookiecutter.project_slug }}.settings")

app = Celery("{{ cookiecutter.project_slug }}")

# Read every CELERY_-prefixed setting from Django's settings.
app.config_from_object("django.conf:settings", namespace="CELERY")

# Load tasks.py from every installed Django app.
app.autodiscover_tasks()


@app.task(bind=True, ignore_result=True)
def debug_task(self):
    print(f"Request: {self.request!r}")
