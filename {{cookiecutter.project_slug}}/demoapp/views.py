"""
A dashboard for the demo tasks: start them, follow their state, list recent results.
"""

import functools
import uuid

from celery import states
from celery.result import AsyncResult
from django import forms
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F
from django.http import JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST
{%- if cookiecutter.use_celery_beat == "y" %}
from django_celery_beat.models import PeriodicTask
{%- endif %}
from django_celery_results.backends import DatabaseBackend
from django_celery_results.models import TaskResult
from kombu.exceptions import OperationalError

from . import tasks
from .models import Widget

RECENT_RESULTS = 20


class NumbersField(forms.CharField):
    """Whole numbers separated by commas or spaces, e.g. "1, 2, 3"."""

    def to_python(self, value):
        text = super().to_python(value)
        try:
            numbers = [int(number) for number in text.replace(",", " ").split()]
        except ValueError:
            raise ValidationError("Enter whole numbers separated by commas.") from None
        if len(numbers) > tasks.MAX_NUMBERS:
            raise ValidationError(f"Enter at most {tasks.MAX_NUMBERS} numbers.")
        return numbers


class TwoNumbersForm(forms.Form):
    x = forms.IntegerField(initial=2)
    y = forms.IntegerField(initial=3)


class NumbersForm(forms.Form):
    numbers = NumbersField(initial="1, 2, 3, 4")


class RenameWidgetForm(forms.Form):
    # Any id is accepted: a missing widget makes the task fail, which the page shows.
    widget_id = forms.IntegerField(min_value=1, initial=1, label="Widget id")
    name = forms.CharField(max_length=Widget._meta.get_field("name").max_length, initial="renamed")


class LongTaskForm(forms.Form):
    # One second a step: 120 steps stay within CELERY_TASK_SOFT_TIME_LIMIT.
    steps = forms.IntegerField(min_value=1, max_value=120, initial=10)


class TextForm(forms.Form):
    text = forms.CharField(max_length=10_000, initial="Tasks run on Celery workers.")


# The tasks this page starts, by the name the start form posts: the call that
# sends each one, and the form whose fields are its keyword arguments.
STARTABLE = {
    "add": (tasks.add.delay, TwoNumbersForm),
    "mul": (tasks.mul.delay, TwoNumbersForm),
    "xsum": (tasks.xsum.delay, NumbersForm),
    "count_widgets": (tasks.count_widgets.delay, forms.Form),
    "rename_widget": (tasks.rename_widget.delay, RenameWidgetForm),
    "long_task": (tasks.long_task.delay, LongTaskForm),
    "count_words": (tasks.count_words.enqueue, TextForm),
}


def bad_request(errors):
    """A 400 answer whose message names each field that is wrong (e.g. form.errors)."""
    errors = {field: list(texts) for field, texts in errors.items()}
    message = "; ".join(f"{field}: {' '.join(texts)}" for field, texts in errors.items())
    return JsonResponse({"error": message, "fields": errors}, status=400)


def staff_only(action):
    """Let staff through to the view; answer others 403, saying that `action` needs staff."""

    def decorator(view):
        @functools.wraps(view)
        def wrapper(request, *args, **kwargs):
            if not request.user.is_staff:
                return JsonResponse({"error": f"{action} needs a staff account."}, status=403)
            return view(request, *args, **kwargs)

        return wrapper

    return decorator


@login_required
def dashboard(request):
    context = {}
    if request.user.is_staff:
        context["forms"] = {
            name: form_class(auto_id=f"{name}_%s") for name, (_, form_class) in STARTABLE.items()
        }
    # Only a database result backend keeps rows that can be listed.
    if isinstance(tasks.add.backend, DatabaseBackend):
        context["results"] = TaskResult.objects.annotate(
            runtime=F("date_done") - F("date_created")
        ).order_by("-date_done")[:RECENT_RESULTS]
    context["ready_states"] = states.READY_STATES
{%- if cookiecutter.use_celery_beat == "y" %}
    context["periodic_tasks"] = PeriodicTask.objects.select_related(
        "interval", "crontab", "solar", "clocked"
    ).order_by("name")
{%- endif %}
    return render(request, "demoapp/tasks.html", context)


@login_required
@require_POST
@staff_only("Starting tasks")
def start_task(request):
    name = request.POST.get("task", "")
    if name not in STARTABLE:
        return bad_request({"task": [f"Unknown task {name!r}; one of {', '.join(STARTABLE)}."]})
    send, form_class = STARTABLE[name]
    form = form_class(request.POST)
    if not form.is_valid():
        return bad_request(form.errors)
    try:
        result = send(**form.cleaned_data)
    except OperationalError as exc:
        return JsonResponse({"error": f"The broker cannot be reached: {exc}"}, status=503)
    return JsonResponse(
        {
            "id": result.id,
            "task": name,
            "kwargs": form.cleaned_data,
            "status_url": reverse("demoapp:task_status", args=[result.id]),
        },
        status=202,
    )


def is_known(result):
    """Whether the result backend holds a state for this task.

    Celery answers PENDING for an id it never saw as well as for a task still in
    the queue: a task is known once a worker has started it.
    """
    if isinstance(result.backend, DatabaseBackend):
        return TaskResult.objects.filter(task_id=result.id).exists()
    # django-cache: an id never stored reads as a bare {"status": ..., "result": ...}.
    return "task_id" in result.backend.get_task_meta(result.id)


@login_required
@require_GET
def task_status(request, task_id):
    try:
        task_id = str(uuid.UUID(task_id))
    except ValueError:
        return bad_request({"id": [f"{task_id!r} is not a task id (a UUID)."]})
    result = AsyncResult(task_id)
    state = result.state
    progress = None
    if state == "PROGRESS" and isinstance(info := result.info, dict):
        progress = {"current": info.get("current"), "total": info.get("total")}
    error = None
    if state in states.PROPAGATE_STATES:
        error = f"{type(result.result).__name__}: {result.result}"
    return JsonResponse(
        {
            "id": task_id,
            "state": state,
            "known": state != states.PENDING or is_known(result),
            "progress": progress,
            "result": result.result if state == states.SUCCESS else None,
            "error": error,
        }
    )


class WidgetForm(forms.Form):
    name = forms.CharField(max_length=Widget._meta.get_field("name").max_length)


@login_required
@require_POST
@staff_only("Creating widgets")
def create_widget(request):
    """Create a widget; a task then tidies its name."""
    form = WidgetForm(request.POST)
    if not form.is_valid():
        return bad_request(form.errors)
    with transaction.atomic():
        widget = Widget.objects.create(name=form.cleaned_data["name"])
        # Sent once the row is committed, and never if it is rolled back: a task
        # sent now could reach a worker before the widget exists for it.
        tasks.tidy_widget_name.delay_on_commit(widget.pk)
    return JsonResponse({"id": widget.pk, "name": widget.name}, status=201)
