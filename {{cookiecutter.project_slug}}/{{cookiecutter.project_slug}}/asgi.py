"""
ASGI config for {{ cookiecutter.project_name }}.

It exposes the ASGI callable as a module-level variable named ``application``.

https://docs.djangoproject.com/en/5.2/howto/deployment/asgi/
"""

import os

from django.core.asgi import get_asgi_application
{%- if cookiecutter.use_opentelemetry == "y" %}

from taskqueue.tracing import start_tracing
{%- endif %}

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "{{ cookiecutter.project_slug }}.settings")
{%- if cookiecutter.use_opentelemetry == "y" %}
# Before the application loads its middleware: tracing adds its own.
start_tracing()
{%- endif %}

application = get_asgi_application()
