from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("taskqueue", "0001_run_periodic_tasks_permission"),
    ]

    operations = [
        migrations.CreateModel(
            name="BeatLease",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("holder", models.CharField(max_length=255)),
                ("expires", models.DateTimeField()),
            ],
        ),
    ]
