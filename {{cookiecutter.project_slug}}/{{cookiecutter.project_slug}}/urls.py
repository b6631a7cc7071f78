"""
URL configuration for {{ cookiecutter.project_name }}.

https://docs.djangoproject.com/en/5.2/topics/http/urls/
"""

from django.contrib import admin
from django.urls import {% if cookiecutter.include_demoapp == "y" %}include, {% endif %}path

from taskqueue.health import health
{%- if cookiecutter.use_prometheus == "y" %}
from taskqueue.metrics import queue_metrics
{%- endif %}

urlpatterns = [
    path("admin/", admin.site.urls),
    path("health/", health, name="health"),
{%- if cookiecutter.use_prometheus == "y" %}
    path("metrics/", queue_metrics, name="metrics"),
{%- endif %}
{%- if cookiecutter.include_demoapp == "y" %}
    path("", include("demoapp.urls")),
{%- endif %}
]
