import time

import pytest
from celery.signals import before_task_publish
from django.contrib.auth.models import User
from django.db import transaction
from django.urls import reverse

from demoapp.models import Widget
from demoapp.tasks import rename_widget

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def published():
    """Names of the tasks published to the broker while the test runs."""
    names = []

    def record(sender, **kwargs):
        names.append(sender)

    before_task_publish.connect(record)
    yield names
    before_task_publish.disconnect(record)


@pytest.fixture
def staff(client):
    client.force_login(User.objects.create_user("staff", is_staff=True))
    return client


def wait_for_name(widget, name, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        widget.refresh_from_db()
        if widget.name == name:
            return
        time.sleep(0.05)
    raise AssertionError(f"{widget} was not renamed to {name!r}")


def test_the_task_is_sent_only_when_the_widget_is_committed(
    celery_session_worker, staff, published
):
    with transaction.atomic():
        response = staff.post(reverse("demoapp:create_widget"), {"name": "big   blue"})
        assert response.status_code == 201
        assert published == []  # the row is not committed yet
    assert published == ["demoapp.tasks.tidy_widget_name"]
    wait_for_name(Widget.objects.get(pk=response.json()["id"]), "big blue")


def test_nothing_is_sent_when_the_transaction_rolls_back(celery_session_worker, staff, published):
    with pytest.raises(RuntimeError), transaction.atomic():
        staff.post(reverse("demoapp:create_widget"), {"name": "never"})
        raise RuntimeError("roll back")
    assert published == []
    assert not Widget.objects.filter(name="never").exists()


def test_a_task_applied_eagerly_runs_in_the_callers_transaction():
    with transaction.atomic():
        widget = Widget.objects.create(name="eager")
        assert rename_widget.apply((widget.pk, "applied here")).get() == "applied here"
        widget.refresh_from_db()  # the connection is still open
        assert widget.name == "applied here"


def test_only_staff_create_widgets(client):
    client.force_login(User.objects.create_user("visitor"))
    response = client.post(reverse("demoapp:create_widget"), {"name": "x"})
    assert response.status_code == 403
