"""
URL configuration for {{ cookiecutter.project_name }}.

https://docs.djangoproject.com/en/5.2/topics/http/urls/
"""

from django.contrib import admin
from django.urls import {% if cookiecutter.include_demoapp == "y" %}include, {% endif %}path

from taskqueue.health import health

urlpatterns = [
    path("admin/", admin.site.urls),
    path("health/", health, name="health"),
{%- if cookiecutter.include_demoapp == "y" %}
    path("", include("demoapp.urls")),
{%- endif %}
]
