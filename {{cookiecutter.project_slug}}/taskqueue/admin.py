"""django-celery-beat's admin, with starting tasks by hand behind a permission.

Staff who may edit periodic tasks could otherwise run any of them at once
("Run selected tasks") or type any task name. Both now need the
"Can run periodic tasks now" permission (django_celery_beat.run_periodictask),
which this app's migration creates; superusers have it.
"""

from django import forms
from django.contrib import admin
from django_celery_beat.admin import PeriodicTaskAdmin, PeriodicTaskForm
from django_celery_beat.models import PeriodicTask

RUN_PERMISSION = "django_celery_beat.run_periodictask"

# The import above registered beat's own admin, whatever the order of INSTALLED_APPS.
admin.site.unregister(PeriodicTask)


class RegisteredTaskForm(PeriodicTaskForm):
    """Only registered tasks can be chosen; the free-text task name is read-only."""

    task = forms.CharField(label="Task (custom)", required=False, disabled=True)


@admin.register(PeriodicTask)
class GuardedPeriodicTaskAdmin(PeriodicTaskAdmin):
    def get_actions(self, request):
        actions = super().get_actions(request)
        if not request.user.has_perm(RUN_PERMISSION):
            actions.pop("run_tasks", None)
        return actions

    def get_form(self, request, obj=None, change=False, **kwargs):
        if not request.user.has_perm(RUN_PERMISSION):
            kwargs["form"] = RegisteredTaskForm
        return super().get_form(request, obj, change, **kwargs)
