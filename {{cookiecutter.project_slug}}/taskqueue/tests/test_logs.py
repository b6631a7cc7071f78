"""Log lines name the request or the task that wrote them (taskqueue/logs.py)."""

import json
import logging

import pytest
from celery import shared_task
from django.http import HttpResponse

from taskqueue.logs import ContextFilter, RequestIdMiddleware


def context_of_a_line():
    """The fields ContextFilter adds to a line logged here and now."""
    record = logging.LogRecord("test", logging.INFO, __file__, 1, "a line", None, None)
    ContextFilter().filter(record)
    fields = ("request_id", "task_id", "task_name")
    return {name: getattr(record, name) for name in fields if hasattr(record, name)}


@shared_task
def context_in_a_task():
    return context_of_a_line()


def in_a_request(rf, view, **headers):
    """Run `view` behind RequestIdMiddleware; return its response and its return value."""
    returned = []

    def wrapped(request):
        returned.append(view())
        return HttpResponse()

    response = RequestIdMiddleware(wrapped)(rf.get("/", headers=headers))
    return response, returned[0]


def test_each_request_gets_an_id_it_sends_back(rf):
    first, context = in_a_request(rf, context_of_a_line)
    second, _ = in_a_request(rf, context_of_a_line)
    assert context == {"request_id": first["X-Request-ID"]}
    assert len(first["X-Request-ID"]) == 32
    assert first["X-Request-ID"] != second["X-Request-ID"]
    assert context_of_a_line() == {}  # outside any request


@pytest.mark.parametrize(
    ("given", "kept"), [("5f0c-a1b2.c3", True), ("two words", False), ("x" * 65, False)]
)
def test_a_proxy_s_request_id_is_kept_when_it_is_plain(rf, given, kept):
    response, context = in_a_request(rf, context_of_a_line, x_request_id=given)
    assert (response["X-Request-ID"] == given) == kept
    assert context["request_id"] == response["X-Request-ID"]


@pytest.mark.django_db(transaction=True)
def test_a_task_s_lines_name_it_and_the_request_that_sent_it(rf, celery_session_worker):
    response, result = in_a_request(rf, context_in_a_task.delay)
    assert result.get(timeout=10) == {
        "request_id": response["X-Request-ID"],
        "task_id": result.id,
        "task_name": context_in_a_task.name,
    }
    # Sent from no request, the task names none.
    result = context_in_a_task.delay()
    assert result.get(timeout=10) == {"task_id": result.id, "task_name": context_in_a_task.name}


def test_lines_are_json(rf):
    [handler] = [each for each in logging.getLogger().handlers if each.name == "json"]
    record = logging.LogRecord("demo", logging.WARNING, __file__, 1, "%s widgets", (3,), None)
    in_a_request(rf, lambda: handler.filter(record), x_request_id="r1")
    line = json.loads(handler.format(record))
    assert line | {"asctime": "..."} == {
        "asctime": "...",
        "levelname": "WARNING",
        "name": "demo",
        "message": "3 widgets",
        "request_id": "r1",
    }
