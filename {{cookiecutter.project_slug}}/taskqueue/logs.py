"""Log lines that say which request or task wrote them.

Every process logs through settings.LOGGING: one JSON object a line, which
carries ``request_id`` in a request, ``task_id`` and ``task_name`` in a task,
and in a task sent from a request the id of that request too. The id crosses
the broker in a header of the task's message.

- RequestIdMiddleware gives each request an id: the one the proxy in front
  sent in ``X-Request-ID`` (Heroku, nginx's ``$request_id``) or a new one, and
  sends it back in the response's ``X-Request-ID``;
- ContextFilter, on the handler, adds the ids to each record;
- log_as_json() makes the worker and beat log the same way, and carries
  the id from the sender to its tasks.
"""

import contextvars
import logging.config
import re
import uuid

from celery import current_task
from celery.signals import before_task_publish, setup_logging, task_postrun, task_prerun
from django.conf import settings

HEADER = "request_id"  # in the task message

request_id = contextvars.ContextVar("request_id", default=None)


class RequestIdMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        given = request.headers.get("X-Request-ID", "")
        # Taken as it comes only when it cannot mangle a log line.
        value = given if re.fullmatch(r"[\w.-]{1,64}", given, re.ASCII) else uuid.uuid4().hex
        token = request_id.set(value)
        try:
            response = self.get_response(request)
        finally:
            request_id.reset(token)
        response["X-Request-ID"] = value
        return response


class ContextFilter(logging.Filter):
    """Adds the current request's id, and the current task's id and name, to a record."""

    def filter(self, record):
        if value := request_id.get():
            record.request_id = value
        task = current_task
        if task and task.request.id:
            record.task_id = task.request.id
            record.task_name = task.name
        return True


def use_django_logging(loglevel=None, **kwargs):
    """Celery's setup_logging: log as settings.LOGGING says, at the level of `-l`."""
    logging.config.dictConfig(settings.LOGGING)
    if loglevel:
        logging.getLogger().setLevel(loglevel)


def send_request_id(headers=None, **kwargs):
    if value := request_id.get():
        headers[HEADER] = value


def receive_request_id(task=None, **kwargs):
    # An eager task runs inside its sender's context, which already holds the id.
    if not task.request.is_eager:
        request_id.set(getattr(task.request, HEADER, None))


def forget_request_id(task=None, **kwargs):
    if not task.request.is_eager:
        request_id.set(None)


def log_as_json():
    """Log as settings.LOGGING says in workers and beat; pass the request id to tasks."""
    setup_logging.connect(use_django_logging)
    before_task_publish.connect(send_request_id)
    task_prerun.connect(receive_request_id)
    task_postrun.connect(forget_request_id)
