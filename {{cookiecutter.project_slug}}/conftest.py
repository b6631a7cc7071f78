import pytest

# A real Celery worker, in a thread of the test process, on an in-memory
# broker: tasks run as they would in production, without a broker server.
pytest_plugins = ("celery.contrib.pytest",)


@pytest.fixture(scope="session")
def celery_config():
    return {"broker_url": "memory://", "result_backend": "django-db"}
