"""Django's task API (django.tasks) on the project's Celery workers: real worker processes,
on Django 5.2 with the django-tasks backport and on Django 6 with django.tasks itself."""

from support.project import install_on_python


def check_django_tasks(project):
    """Enqueue from `manage.py shell` and through the dashboard's view; read results back."""
    project.manage("migrate", "--no-input")
    project.start_worker("worker", "--concurrency", "1")
    imported = "from demoapp.tasks import count_words; "
    task_id = project.manage("shell", "-c", imported + "print(count_words.enqueue('a b').id)")
    outcome = project.drive("django-tasks")
    # The last line: Django 5.2's shell first says what it imported.
    read = f"r = count_words.get_result({task_id.split()[-1]!r}); print(r.status, r.return_value)"
    assert project.manage("shell", "-c", imported + read).split()[-2:] == ["SUCCESSFUL", "2"]

    assert outcome["from_view"]["status"] == "SUCCESSFUL"
    assert outcome["from_view"]["value"] == 3
    assert outcome["from_view"]["workers"][0].startswith("worker@")
    assert outcome["failed"]["status"] == "FAILED"
    assert outcome["failed"]["errors"] == ["builtins.TypeError"]
    assert "expected a text, got int" in outcome["failed"]["traceback"]
    assert outcome["deferred"] == {"status": "SUCCESSFUL", "waited": True}
    return outcome


def test_on_the_embedded_broker_with_django_5_2(bake):
    project = bake()
    version = project.run("-c", "import django; print(django.__version__)")
    assert version.startswith("5.2"), version
    outcome = check_django_tasks(project)
    assert outcome["supports_priority"] is False  # files are taken in the order they came


def test_on_redis_with_django_6_1(bake, server, tmp_path):
    project = bake(broker="redis", use_celery_beat="n")  # django-celery-beat holds Django < 6.1
    install_on_python(project, "3.12", tmp_path / "venv312")
    version = project.run("-c", "import django; print(django.__version__)")
    assert version.startswith("6.1"), version
    project.env["CELERY_BROKER_URL"] = server("redis").url.rsplit("/", 1)[0] + "/14"
    outcome = check_django_tasks(project)
    assert outcome["supports_priority"] is True
    assert outcome["order"] == ["high", "low 0", "low 1", "low 2"]
