from django.apps import AppConfig


class DemoappConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "demoapp"
    verbose_name = "Celery demo"
