import pytest
from django.conf import settings
from django.test import override_settings

from {{ cookiecutter.project_slug }}.celery import app

# celery_session_worker: a real Celery worker, in a thread of the test process.
pytest_plugins = ("celery.contrib.pytest",)


@pytest.fixture(scope="session", autouse=True)
def in_memory_broker():
    """Send tasks through kombu's in-memory broker: no broker server needed, and
    nothing reaches a development worker. The worker looks for tasks every 10 ms
    rather than every second.

    Celery reads CELERY_BROKER_URL from the environment (where .env put it)
    before its settings: change both, so that they agree.
    """
    options = settings.CELERY_BROKER_TRANSPORT_OPTIONS | {"polling_interval": 0.01}
    with (
        pytest.MonkeyPatch.context() as mp,
        override_settings(
            CELERY_BROKER_URL="memory://",
            CELERY_BROKER_TRANSPORT_OPTIONS=options,
            # Fast password hashing: a secure hasher takes most of a second per user.
            PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"],
        ),
    ):
        mp.setenv("CELERY_BROKER_URL", "memory://")
        yield


@pytest.fixture(scope="session")
def celery_session_app():
    """The project's own Celery app, so the worker runs with its settings."""
    return app


@pytest.fixture(scope="session")
def celery_worker_parameters():
    # The default check pings the worker with a test-only task this app lacks.
    return {"perform_ping_check": False}
