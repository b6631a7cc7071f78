"""The "Can run periodic tasks now" permission that admin.py asks for.

Until 2026.12.07 this migration lived in the project package. `replaces` tells
Django that a database which ran it there has run this one; get_or_create keeps
the permission, and who holds it, either way.
"""

from django.db import migrations


def create_permission(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    Permission = apps.get_model("auth", "Permission")
    periodic_task, _ = ContentType.objects.get_or_create(
        app_label="django_celery_beat", model="periodictask"
    )
    Permission.objects.get_or_create(
        content_type=periodic_task,
        codename="run_periodictask",
        defaults={"name": "Can run periodic tasks now"},
    )


class Migration(migrations.Migration):
    replaces = [("{{ cookiecutter.project_slug }}", "0001_run_periodic_tasks_permission")]

    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("django_celery_beat", "0001_initial"),
    ]

    operations = [
        migrations.RunPython(create_permission, migrations.RunPython.noop),
    ]
