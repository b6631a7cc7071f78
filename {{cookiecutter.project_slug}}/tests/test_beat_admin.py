import pytest
from django.contrib.auth.models import Permission, User
from django.urls import reverse
from django_celery_beat.models import IntervalSchedule, PeriodicTask

CHANGELIST = reverse("admin:django_celery_beat_periodictask_changelist")
ADD = reverse("admin:django_celery_beat_periodictask_add")


@pytest.fixture
def periodic_task(db):
    every = IntervalSchedule.objects.create(every=1, period=IntervalSchedule.HOURS)
    return PeriodicTask.objects.create(name="hourly", task="celery.backend_cleanup", interval=every)


def log_in_staff(client, *codenames):
    codenames = ("view_periodictask", "change_periodictask", "add_periodictask", *codenames)
    user = User.objects.create_user("staff", password="unused", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename__in=codenames))
    client.force_login(user)


def run_selected(client, task):
    response = client.post(
        CHANGELIST, {"action": "run_tasks", "_selected_action": [task.pk]}, follow=True
    )
    return [str(message) for message in response.context["messages"]]


def test_staff_without_the_permission_cannot_start_a_task(client, periodic_task):
    log_in_staff(client)
    actions = dict(client.get(CHANGELIST).context["action_form"].fields["action"].choices)
    assert "run_tasks" not in actions
    assert run_selected(client, periodic_task) == ["No action selected."]
    assert client.get(ADD).context["adminform"].form.fields["task"].disabled


def test_the_permission_allows_starting_a_task(client, periodic_task):
    log_in_staff(client, "run_periodictask")
    assert run_selected(client, periodic_task) == ["1 task was successfully run"]
    assert not client.get(ADD).context["adminform"].form.fields["task"].disabled
